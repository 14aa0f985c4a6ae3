//! The file format as serde types: used to write specs back to YAML and to generate the JSON
//! Schema, so that both follow the same description of the format.
//!
//! Reading does not go through these types: the checker walks a position-carrying tree
//! instead, to report every problem with its line. A round-trip test keeps the two in step.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::model::{ComponentSource, ModelIndexOverride, PipelineSpec, VariantPref};

/// A diffusers pipeline for pipefetch: a base Hub repo plus per-component overrides.
#[derive(Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pipefetch pipeline spec")]
pub(crate) struct SpecFile {
    /// The spec's name; defaults to the file's stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", pattern(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))]
    name: Option<String>,
    /// The base repo, `ORG/NAME`; components not listed come from it.
    #[schemars(pattern(
        r"^(?![^/]*(?:--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?/(?![^/]*(?:--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$"
    ))]
    repo_id: String,
    /// The base repo's branch, tag or 40-hex commit; defaults to `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", pattern(r"^[^\s~^:?*\[\\]{1,255}$"))]
    revision: Option<String>,
    /// The default variant (such as `fp16`) for components that do not choose one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[A-Za-z0-9_-]{1,64}$"))]
    variant: Option<String>,
    /// Replaces the base repo's `model_index.json`: a path relative to the spec file, or the
    /// content inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    model_index: Option<ModelIndexFile>,
    /// Components that do not come from the base repo, by name; `null` drops a component.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$" }))]
    components: BTreeMap<String, Option<ComponentFile>>,
}

/// A path to a JSON file, or the content of `model_index.json` inline.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
enum ModelIndexFile {
    /// A path, relative to the spec file, absolute, or starting with `~/`.
    Path(String),
    /// The content of `model_index.json`.
    Inline(serde_json::Map<String, serde_json::Value>),
}

/// Where one component comes from: exactly one of `hf_repo`, `source`, `local_path`, `urls`.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
enum ComponentFile {
    HfRepo(HfRepoComponent),
    Files(FilesComponent),
    LocalPath(LocalPathComponent),
    Urls(UrlsComponent),
}

/// A folder of a Hub repo, with diffusers' file selection.
#[derive(Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HfRepoComponent {
    /// `ORG/NAME[/subfolder]`.
    #[schemars(pattern(
        r"^(?![^/]*(?:--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?/(?![^/]*(?:--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?(?:/[^/\\]+)*$"
    ))]
    hf_repo: String,
    /// A variant name, `null` for no variant, or a preference list such as `[bf16, fp16, null]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<VariantFile>,
    /// Branch, tag or commit of that repo; defaults to the spec's revision for the base repo,
    /// else `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", pattern(r"^[^\s~^:?*\[\\]{1,255}$"))]
    revision: Option<String>,
}

/// A variant name, `null`, or a preference list of them.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
enum VariantFile {
    /// One variant, or `null` for the files without a variant.
    One(#[schemars(pattern(r"^[A-Za-z0-9_-]{1,64}$"))] Option<String>),
    /// Variants to try in order; `null` stands for the files without a variant.
    Many(
        #[schemars(length(min = 1), inner(pattern(r"^[A-Za-z0-9_-]{1,64}$")))] Vec<Option<String>>,
    ),
}

/// Exactly these files, each `ORG/NAME/path/in/repo`.
#[derive(Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FilesComponent {
    /// The files, each `ORG/NAME/path/in/repo`.
    #[schemars(length(min = 1), inner(pattern(
        r"^(?![^/]*(?:--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?/(?![^/]*(?:--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?(?:/[^/\\]+)+$"
    )))]
    source: Vec<String>,
    /// Branch, tag or commit for every file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", pattern(r"^[^\s~^:?*\[\\]{1,255}$"))]
    revision: Option<String>,
}

/// A local folder: relative to the spec file, absolute, or starting with `~/`.
#[derive(Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LocalPathComponent {
    /// The folder.
    #[schemars(length(min = 1))]
    local_path: String,
}

/// Files downloaded from URLs.
#[derive(Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UrlsComponent {
    /// File name (a relative path) to URL; `https`, or `http` only to localhost.
    #[schemars(inner(pattern(
        r"^(?:https://|http://(?:localhost|127\.[0-9.]+|\[::1\])(?:[:/?#]|$))"
    )))]
    #[schemars(extend("minProperties" = 1))]
    urls: BTreeMap<String, String>,
    /// SHA-256 pins (64 hex digits) by file name, checked after download.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(inner(pattern(r"^[0-9a-fA-F]{64}$")))]
    sha256: BTreeMap<String, String>,
}

impl SpecFile {
    pub(crate) fn from_spec(spec: &PipelineSpec) -> Self {
        SpecFile {
            name: Some(spec.name.clone()),
            repo_id: spec.repo_id.to_string(),
            revision: Some(spec.revision.clone()),
            variant: spec.variant.clone(),
            model_index: spec.model_index.as_ref().map(|index| match index {
                ModelIndexOverride::Path { raw, .. } => ModelIndexFile::Path(raw.clone()),
                ModelIndexOverride::Inline(map) => ModelIndexFile::Inline(map.clone()),
            }),
            components: spec
                .components
                .iter()
                .map(|(name, source)| (name.clone(), ComponentFile::from_source(source)))
                .collect(),
        }
    }
}

impl ComponentFile {
    fn from_source(source: &ComponentSource) -> Option<Self> {
        Some(match source {
            ComponentSource::HfRepo {
                repo_id,
                subfolder,
                revision,
                variant,
            } => ComponentFile::HfRepo(HfRepoComponent {
                hf_repo: match subfolder {
                    Some(subfolder) => format!("{repo_id}/{subfolder}"),
                    None => repo_id.to_string(),
                },
                variant: match variant {
                    VariantPref::Inherit => None,
                    VariantPref::Prefer(list) => Some(match list.as_slice() {
                        [one] => VariantFile::One(one.clone()),
                        _ => VariantFile::Many(list.clone()),
                    }),
                },
                revision: revision.clone(),
            }),
            ComponentSource::Files { files, revision } => ComponentFile::Files(FilesComponent {
                source: files.iter().map(ToString::to_string).collect(),
                revision: revision.clone(),
            }),
            ComponentSource::LocalPath { path, .. } => {
                ComponentFile::LocalPath(LocalPathComponent {
                    local_path: path.to_string_lossy().into_owned(),
                })
            }
            ComponentSource::Urls { files, sha256 } => ComponentFile::Urls(UrlsComponent {
                urls: files.clone(),
                sha256: sha256.clone(),
            }),
            ComponentSource::Removed => return None,
        })
    }
}

/// Writes the spec as YAML.
pub(crate) fn to_yaml(spec: &PipelineSpec) -> String {
    let file = SpecFile::from_spec(spec);
    match serde_saphyr::to_string(&file) {
        Ok(yaml) => yaml,
        // Serialising plain strings and maps does not fail; should it ever, JSON is valid YAML
        // and carries the same content, so the caller still gets a readable spec.
        Err(_) => serde_json::to_string_pretty(&file).unwrap_or_default() + "\n",
    }
}

/// The JSON Schema of the format, pretty-printed with a final newline.
pub(crate) fn json_schema() -> String {
    let schema = schemars::schema_for!(SpecFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}
