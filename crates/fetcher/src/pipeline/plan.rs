//! Planning: from a spec to the exact list of files a pipeline needs, where each comes from, its size
//! and hash, and whether it is already here.
//!
//! The planner knows no source kind. The base pipeline comes from the spec's Hub repo (selected
//! like diffusers selects, in [`crate::sources::hub`]); every component the spec overrides is
//! resolved by the [`Source`](crate::sources::Source) registered for its spec key, and every URL by
//! the source of its scheme; what is already here is each file's [`Origin`]'s answer. The same
//! planner runs online (for `plan` and `pull`) and cache-only (for `check`): sources read through a
//! [`PlanContext`] that says which.

use std::collections::BTreeSet;
use std::path::PathBuf;

use pipefetch_hub_client::Repo;
use pipefetch_spec::{ComponentSource, ModelIndexOverride, PipelineSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::select::{self, ModelIndex, WeightFormat, WeightName};
use crate::Fetcher;
use crate::engine::blocking;
use crate::error::{Error, Result};
use crate::sources::{ComponentRequest, Origin, PlanContext, hub};
use crate::verify::Expected;

/// Where a spec was read from: a local file, or a file in a Hub repo (a hosted spec).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SpecOrigin {
    /// A local file (relative paths in it resolve against its folder).
    Local(PathBuf),
    /// `ORG/NAME/path/spec.yaml` at a revision: relative paths resolve within that repo.
    Hosted {
        /// The repo.
        repo: Repo,
        /// The revision it was read at.
        revision: String,
        /// The spec's path in the repo.
        path: String,
    },
}

/// How a planned file is written into the assembled folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Transform {
    /// A link to the cached bytes.
    #[default]
    Link,
    /// A sharded variant's index, written with its `weight_map` renamed to canonical shard names.
    RewriteIndex {
        /// The variant chosen for that component.
        variant: Option<String>,
    },
}

impl Transform {
    /// Whether the file is simply linked (the lockfile leaves that out).
    pub fn is_link(&self) -> bool {
        *self == Transform::Link
    }
}

/// Whether a planned file is on disk already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Presence {
    /// Complete and in place.
    Cached,
    /// Part of it is on disk from an interrupted download.
    Partial {
        /// Bytes already on disk.
        bytes: u64,
    },
    /// Not on disk.
    Missing,
}

/// One file of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanFile {
    /// Its path in the assembled folder (`unet/diffusion_pytorch_model.safetensors`).
    pub target: String,
    /// The component it belongs to (`None` for root files).
    pub component: Option<String>,
    /// Where its bytes come from.
    pub origin: Origin,
    /// Its size, when known before downloading.
    pub size: Option<u64>,
    /// What its bytes must hash to (`sha256:<hex>`, `git-sha1:<hex>`), when known.
    pub digest: Option<String>,
    /// How it lands in the folder.
    pub transform: Transform,
    /// Whether it is here already.
    pub presence: Presence,
    /// What its bytes must hash to, as a value.
    #[serde(skip)]
    pub expected: Expected,
}

impl PlanFile {
    /// A file to land at `target` (a path in the folder) from `origin`, linked, not known to be
    /// here yet.
    pub fn new(
        target: impl Into<String>,
        origin: Origin,
        size: Option<u64>,
        expected: Expected,
    ) -> PlanFile {
        PlanFile {
            target: target.into(),
            component: None,
            origin,
            size,
            digest: None,
            transform: Transform::Link,
            presence: Presence::Missing,
            expected,
        }
    }

    /// `sha256:<hex>` / `git-sha1:<hex>`, when the digest is known.
    fn digest_label(&self) -> Option<String> {
        self.expected
            .hex()
            .map(|h| format!("{}:{h}", self.expected.algorithm()))
    }

    /// Bytes still to transfer (0 when cached; the whole size when unknown counts as 0).
    pub fn missing_bytes(&self) -> u64 {
        match self.presence {
            Presence::Cached => 0,
            Presence::Partial { bytes } => self.size.unwrap_or(0).saturating_sub(bytes),
            Presence::Missing => self.size.unwrap_or(0),
        }
    }
}

/// Everything a pipeline needs.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The pipeline's name (folder name).
    pub name: String,
    /// The `model_index.json` the folder gets (overrides applied, dropped components `[null, null]`).
    pub model_index: Map<String, Value>,
    /// Every file, in target order.
    pub files: Vec<PlanFile>,
}

impl Plan {
    /// Bytes of all files whose size is known.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }

    /// Bytes still to transfer (known sizes).
    pub fn missing_bytes(&self) -> u64 {
        self.files.iter().map(PlanFile::missing_bytes).sum()
    }

    /// Files whose size is unknown until downloaded (URLs not cached yet).
    pub fn unknown_sizes(&self) -> usize {
        self.files
            .iter()
            .filter(|f| f.size.is_none() && f.presence != Presence::Cached)
            .count()
    }
}

impl Fetcher {
    /// Works out every file `spec` needs, where from, and what is already here. With `offline`,
    /// nothing but the cache is read (used by availability checks).
    pub async fn plan(
        &self,
        spec: &PipelineSpec,
        origin: &SpecOrigin,
        offline: bool,
    ) -> Result<Plan> {
        let mut cx = PlanContext::new(self, spec, origin, offline);
        let plan = plan_with(&mut cx).await?;
        self.with_presence(plan).await
    }

    /// Fills in what of `plan` is already here (stat calls only).
    pub(crate) async fn with_presence(&self, mut plan: Plan) -> Result<Plan> {
        let fetcher = self.clone();
        plan.files = blocking(move || {
            let mut files = plan.files;
            for f in &mut files {
                f.presence = f.origin.presence(&fetcher, f)?;
            }
            Ok(files)
        })
        .await?;
        Ok(plan)
    }
}

async fn plan_with(cx: &mut PlanContext<'_>) -> Result<Plan> {
    let spec = cx.spec();
    let model_index = read_model_index(cx).await?;

    let mut errors: Vec<String> = Vec::new();
    let mut files: Vec<PlanFile> = Vec::new();
    let mut final_index = model_index.raw.clone();

    // Components from the base repo: everything the spec does not override or drop.
    hub::plan_base(cx, &model_index, &mut files, &mut errors).await?;

    // Overrides, each from the source registered for its spec key.
    let sources = cx.fetcher().sources().clone();
    for (name, source) in &spec.components {
        let library = hub::library_of(&model_index, name);
        let result = if matches!(source, ComponentSource::Removed) {
            final_index.insert(name.clone(), Value::Array(vec![Value::Null, Value::Null]));
            Ok(Vec::new())
        } else {
            let request = ComponentRequest {
                name,
                source,
                library: library.as_deref(),
            };
            sources.resolve_component(cx, &request).await
        };
        match result {
            Ok(mut found) => files.append(&mut found),
            Err(e) => errors.push(crate::render_chain(&e)),
        }
        if !matches!(source, ComponentSource::Removed) && !model_index.components.contains_key(name)
        {
            errors.push(format!(
                "component `{name}` is not in model_index.json (its library and class are unknown); add it with a `model_index` override"
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Plan { problems: errors });
    }

    // Two files under one name would make the folder ambiguous.
    files.sort_by(|a, b| a.target.cmp(&b.target));
    for pair in files.windows(2) {
        if pair[0].target == pair[1].target {
            return Err(Error::Plan {
                problems: vec![format!(
                    "two files would be `{}`: {} and {}",
                    pair[0].target,
                    pair[0].origin.describe(),
                    pair[1].origin.describe()
                )],
            });
        }
    }
    for file in &mut files {
        file.digest = file.digest_label();
    }
    final_index.remove("_name_or_path");
    Ok(Plan {
        name: spec.name.clone(),
        model_index: final_index,
        files,
    })
}

/// `model_index.json`: the spec's override (inline, or a file beside the spec), or the base repo's.
async fn read_model_index(cx: &mut PlanContext<'_>) -> Result<ModelIndex> {
    let spec = cx.spec();
    let bytes = match &spec.model_index {
        None => {
            let (repo, commit) = {
                let state = cx.hub_repo(spec.repo_id.as_str(), &spec.revision).await?;
                (state.repo.clone(), state.commit.clone())
            };
            cx.read_hub_file(&repo, &commit, "model_index.json").await?
        }
        Some(ModelIndexOverride::Inline(map)) => serde_json::to_vec(map)
            .map_err(|e| Error::Invalid(format!("inline model_index: {e}")))?,
        Some(ModelIndexOverride::Path { raw, resolved }) => match cx.spec_origin() {
            SpecOrigin::Local(_) => {
                let p = resolved.clone();
                blocking(move || {
                    std::fs::read(&p).map_err(|e| Error::io("read model_index", &p, e))
                })
                .await?
            }
            SpecOrigin::Hosted {
                repo,
                revision,
                path,
            } => {
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let joined = if dir.is_empty() {
                    raw.clone()
                } else {
                    format!("{dir}/{raw}")
                };
                pipefetch_hub_cache::validate_repo_path(&joined)?;
                let (r, c) = {
                    let state = cx.hub_repo(repo.id.as_str(), revision).await?;
                    (state.repo.clone(), state.commit.clone())
                };
                cx.read_hub_file(&r, &c, &joined).await?
            }
        },
        Some(_) => {
            return Err(Error::Invalid(
                "this kind of model_index override is not supported".into(),
            ));
        }
    };
    Ok(select::parse_model_index(&bytes)?)
}

/// A component given as loose files (a local folder, URLs, `source:` files) with exactly one
/// weights file under a non-canonical name gets the canonical name of its library, so diffusers
/// finds it; variant-named weights lose their variant.
pub(crate) fn canonicalize_weights(
    files: &mut [PlanFile],
    weight_indexes: &[usize],
    component: &str,
    library: Option<&str>,
) {
    for &i in weight_indexes {
        let Some(f) = files.get_mut(i) else { continue };
        let base = f.target.rsplit('/').next().unwrap_or(&f.target).to_string();
        let canonical = match WeightName::parse(&base) {
            Some(name) => name.canonical(),
            None if weight_indexes.len() == 1 => {
                let format = if base.ends_with(".bin") {
                    WeightFormat::Bin
                } else {
                    WeightFormat::Safetensors
                };
                select::canonical_weights_name(library.unwrap_or("diffusers"), format).to_string()
            }
            None => base.clone(),
        };
        f.target = format!("{component}/{canonical}");
    }
}

/// Hub repos a plan touches, for messages.
pub fn repos_of(plan: &Plan) -> BTreeSet<String> {
    plan.files
        .iter()
        .filter_map(|f| f.origin.hub_repo().map(str::to_string))
        .collect()
}
