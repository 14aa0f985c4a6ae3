//! Turns a position-carrying YAML tree into a [`PipelineSpec`], collecting every problem.
//!
//! The checker never stops at the first problem: each rule reports and moves on, and the typed
//! spec is built only when nothing was reported.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::model::{DEFAULT_REVISION, ModelIndexOverride, PipelineSpec, RepoId};
use crate::source::Source;
use crate::tree::{Kind, Node, Pos};
use crate::validators::{validate_revision, validate_spec_name, validate_variant};

mod components;

/// The keys allowed at the top of a spec.
pub(crate) const TOP_KEYS: &[&str] = &[
    "name",
    "repo_id",
    "revision",
    "variant",
    "model_index",
    "components",
];

/// The keys that choose where a component comes from; exactly one must be present.
pub(crate) const SOURCE_KEYS: &[&str] = &["hf_repo", "source", "local_path", "urls"];

/// Every key allowed in a component.
pub(crate) const COMPONENT_KEYS: &[&str] = &[
    "hf_repo",
    "source",
    "local_path",
    "urls",
    "variant",
    "revision",
    "sha256",
];

const REPO_ID_HELP: &str = "repo ids look like `stabilityai/stable-diffusion-xl-base-1.0`";
const REVISION_HELP: &str = "use a branch, a tag or a 40-hex commit hash, such as `main`";
const VARIANT_HELP: &str = "a variant is a token such as `fp16`, `bf16` or `non_ema`";

/// Where relative paths are resolved and what the spec is called when it has no `name`.
pub(crate) struct Context<'a> {
    pub base_dir: &'a Path,
    pub stem: Option<&'a str>,
    /// Extra URL schemes some registered source serves (lowercase).
    pub url_schemes: &'a [String],
}

pub(crate) struct Checker<'s> {
    source: &'s Source<'s>,
    context: Context<'s>,
    diagnostics: Vec<Diagnostic>,
}

/// One key of a mapping, after duplicate and type checks.
struct Entry<'n> {
    key: &'n str,
    key_node: &'n Node,
    value: &'n Node,
}

impl<'s> Checker<'s> {
    pub fn new(source: &'s Source<'s>, context: Context<'s>) -> Self {
        Checker {
            source,
            context,
            diagnostics: Vec::new(),
        }
    }

    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }

    fn error(&mut self, pos: Pos, message: impl Into<String>, help: impl Into<Option<String>>) {
        let diagnostic = self.source.error(pos, message, help.into());
        self.diagnostics.push(diagnostic);
    }

    /// Checks the whole document; returns the spec when no problem was found.
    pub fn spec(&mut self, root: Option<&Node>) -> Option<PipelineSpec> {
        let Some(root) = root.filter(|node| !node.is_null()) else {
            let pos = Pos {
                line: 1,
                column: 1,
                width: 1,
            };
            self.error(
                pos,
                "the spec is empty",
                Some(
                    "a spec needs at least `repo_id: ORG/NAME`, the base repo of the pipeline"
                        .to_owned(),
                ),
            );
            return None;
        };
        if !matches!(root.kind, Kind::Map(_)) {
            self.error(
                root.pos,
                format!(
                    "a spec must be a mapping of keys such as `repo_id:`, found {}",
                    root.describe()
                ),
                Some("start with `repo_id: ORG/NAME` on its own line".to_owned()),
            );
            return None;
        }
        let mut name = None;
        let mut repo_id = None;
        let mut repo_id_seen = false;
        let mut revision = None;
        let mut variant = None;
        let mut model_index = None;
        let mut components = BTreeMap::new();
        for entry in self.entries(root, "") {
            let value = entry.value;
            match entry.key {
                "name" => {
                    if let Some(text) = self.string(value, "`name`") {
                        match validate_spec_name(text) {
                            Ok(()) => name = Some(text.to_owned()),
                            Err(reason) => self.error(
                                value.pos,
                                format!("invalid name `{text}`: {reason}"),
                                Some(
                                    "a name is used as a folder name, such as `sdxl-fp16`"
                                        .to_owned(),
                                ),
                            ),
                        }
                    }
                }
                "repo_id" => {
                    repo_id_seen = true;
                    if let Some(text) = self.string(value, "`repo_id`") {
                        repo_id = self.repo_id(text, value.pos, "");
                    }
                }
                "revision" => revision = self.revision(value),
                "variant" => variant = self.top_variant(value),
                "model_index" => model_index = self.model_index(value),
                "components" => components = self.components(value),
                _ => {
                    // A misspelt `repo_id` already says what is wrong; "missing `repo_id`"
                    // on top would only repeat it.
                    repo_id_seen |= suggest(entry.key, TOP_KEYS) == Some("repo_id");
                    self.unknown_key(&entry, TOP_KEYS, "");
                }
            }
        }
        if !repo_id_seen {
            self.error(
                root.pos,
                "missing `repo_id`",
                Some("add `repo_id: ORG/NAME`, the base repo of the pipeline".to_owned()),
            );
        }
        let repo_id = repo_id?;
        if !self.diagnostics.is_empty() {
            return None;
        }
        Some(PipelineSpec {
            name: name.unwrap_or_else(|| default_name(self.context.stem, &repo_id)),
            repo_id,
            revision: revision.unwrap_or_else(|| DEFAULT_REVISION.to_owned()),
            variant,
            model_index,
            components,
        })
    }

    /// The entries of a mapping node, reporting non-string and duplicate keys.
    ///
    /// `context` is appended to messages, such as " in component `vae`".
    fn entries<'n>(&mut self, node: &'n Node, context: &str) -> Vec<Entry<'n>> {
        let Kind::Map(pairs) = &node.kind else {
            return Vec::new();
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut entries = Vec::new();
        for (key_node, value) in pairs {
            let Kind::Scalar { value: key, .. } = &key_node.kind else {
                self.error(
                    key_node.pos,
                    format!(
                        "a key must be plain text, found {}{context}",
                        key_node.describe()
                    ),
                    None,
                );
                continue;
            };
            if let Some(first_line) = seen.get(key.as_str()) {
                self.error(
                    key_node.pos,
                    format!("duplicate key `{key}`{context}"),
                    Some(format!(
                        "`{key}` is already set on line {first_line}; keep only one"
                    )),
                );
                continue;
            }
            seen.insert(key, key_node.pos.line);
            entries.push(Entry {
                key,
                key_node,
                value,
            });
        }
        entries
    }

    fn unknown_key(&mut self, entry: &Entry<'_>, known: &[&str], context: &str) {
        let key = entry.key;
        let help = if let Some(suggestion) = suggest(key, known) {
            format!("did you mean `{suggestion}`?")
        } else if context.is_empty() && COMPONENT_KEYS.contains(&key) {
            format!("`{key}` belongs to a component, under `components:`")
        } else if context.is_empty() && looks_like_component(entry.value) {
            format!("`{key}` looks like a component; put it under `components:`")
        } else {
            format!("expected one of {}", list(known))
        };
        self.error(
            entry.key_node.pos,
            format!("unknown key `{key}`{context}"),
            Some(help),
        );
    }

    /// A non-null scalar, or a reported problem.
    fn string<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match &node.kind {
            Kind::Scalar { .. } if node.is_null() => {
                self.error(node.pos, format!("{what} needs a value"), None);
                None
            }
            Kind::Scalar { value, .. } => Some(value),
            _ => {
                self.error(
                    node.pos,
                    format!("{what} must be a string, found {}", node.describe()),
                    None,
                );
                None
            }
        }
    }

    fn repo_id(&mut self, text: &str, pos: Pos, context: &str) -> Option<RepoId> {
        match RepoId::new(text) {
            Ok(repo_id) => Some(repo_id),
            Err(reason) => {
                // People paste the repo's web address; tell them which part to keep.
                let help = match hub_address(text) {
                    Some(address) => format!("write only ORG/NAME: `{}`", address.repo),
                    None => REPO_ID_HELP.to_owned(),
                };
                self.error(
                    pos,
                    format!("invalid repo id `{text}`{context}: {reason}"),
                    Some(help),
                );
                None
            }
        }
    }

    fn revision(&mut self, node: &Node) -> Option<String> {
        let text = self.string(node, "`revision`")?;
        match validate_revision(text) {
            Ok(()) => Some(text.to_owned()),
            Err(reason) => {
                self.error(
                    node.pos,
                    format!("invalid revision `{text}`: {reason}"),
                    Some(REVISION_HELP.to_owned()),
                );
                None
            }
        }
    }

    fn variant_name(&mut self, text: &str, pos: Pos) -> Option<String> {
        match validate_variant(text) {
            Ok(()) => Some(text.to_owned()),
            Err(reason) => {
                self.error(
                    pos,
                    format!("invalid variant `{text}`: {reason}"),
                    Some(VARIANT_HELP.to_owned()),
                );
                None
            }
        }
    }

    fn top_variant(&mut self, node: &Node) -> Option<String> {
        match &node.kind {
            Kind::Scalar { .. } if node.is_null() => None,
            Kind::Scalar { value, .. } => self.variant_name(value, node.pos),
            _ => {
                self.error(
                    node.pos,
                    format!(
                        "the top-level `variant` is a single name, found {}",
                        node.describe()
                    ),
                    Some(
                        "preference lists such as `[bf16, fp16, null]` go on a component's `variant`"
                            .to_owned(),
                    ),
                );
                None
            }
        }
    }

    fn model_index(&mut self, node: &Node) -> Option<ModelIndexOverride> {
        match &node.kind {
            Kind::Scalar { .. } if node.is_null() => None,
            Kind::Scalar { value, .. } => {
                let (raw, resolved) = self.local_path(value, node.pos, "model_index")?;
                Some(ModelIndexOverride::Path {
                    raw: raw.to_string_lossy().into_owned(),
                    resolved,
                })
            }
            Kind::Map(_) => match self.json(node, "model_index")? {
                serde_json::Value::Object(map) => Some(ModelIndexOverride::Inline(map)),
                _ => None,
            },
            Kind::Seq(_) => {
                self.error(
                    node.pos,
                    "`model_index` must be a path or a mapping, found a list",
                    Some(
                        "give a path to a JSON file, or write the content inline as a mapping"
                            .to_owned(),
                    ),
                );
                None
            }
        }
    }

    /// Converts a node into JSON, typing plain scalars like the YAML core schema.
    fn json(&mut self, node: &Node, what: &str) -> Option<serde_json::Value> {
        use serde_json::Value;
        match &node.kind {
            Kind::Scalar { .. } if node.is_null() => Some(Value::Null),
            Kind::Scalar {
                value,
                plain: false,
            } => Some(Value::String(value.clone())),
            Kind::Scalar { value, plain: true } => match plain_scalar(value) {
                Ok(json) => Some(json),
                Err(reason) => {
                    self.error(node.pos, format!("`{value}` in `{what}`: {reason}"), None);
                    None
                }
            },
            Kind::Seq(items) => {
                let mut array = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match self.json(item, what) {
                        Some(value) => array.push(value),
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Array(array))
            }
            Kind::Map(_) => {
                let mut object = serde_json::Map::new();
                let mut ok = true;
                for entry in self.entries(node, &format!(" in `{what}`")) {
                    match self.json(entry.value, what) {
                        Some(value) => {
                            object.insert(entry.key.to_owned(), value);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Object(object))
            }
        }
    }

    /// Validates a local path and resolves it: `~` is the home folder, a relative path is
    /// relative to the spec's folder.
    fn local_path(&mut self, text: &str, pos: Pos, what: &str) -> Option<(PathBuf, PathBuf)> {
        let problem = if text.is_empty() {
            Some(("it is empty".to_owned(), None))
        } else if text.contains('\0') {
            Some(("it contains a NUL character".to_owned(), None))
        } else if text.contains("://") {
            let help = if what == "local_path" {
                "to download files from URLs, use `urls:`"
            } else {
                "download the file and give its local path, or write the content inline"
            };
            Some((
                "it is a URL, not a local path".to_owned(),
                Some(help.to_owned()),
            ))
        } else if text.starts_with('~') && text != "~" && !text.starts_with("~/") {
            Some((
                "`~user` paths are not supported".to_owned(),
                Some("write `~/...` for your own home folder, or the full path".to_owned()),
            ))
        } else {
            None
        };
        if let Some((reason, help)) = problem {
            self.error(
                pos,
                format!("invalid `{what}` path `{text}`: {reason}"),
                help,
            );
            return None;
        }
        let raw = PathBuf::from(text);
        let resolved = if let Some(rest) = text.strip_prefix('~') {
            let Some(home) = home_dir() else {
                self.error(
                    pos,
                    format!("cannot expand `~` in `{what}`: the home folder is unknown"),
                    Some("set HOME, or write the full path".to_owned()),
                );
                return None;
            };
            home.join(rest.trim_start_matches('/'))
        } else if raw.is_absolute() {
            raw.clone()
        } else {
            self.context.base_dir.join(&raw)
        };
        Some((raw, resolved))
    }
}

/// Types a plain scalar like the YAML 1.2 core schema: null, booleans, numbers, else a string.
fn plain_scalar(text: &str) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    match text {
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "-.inf" | "-.Inf" | "-.INF"
        | "+.inf" | "+.Inf" | "+.INF" => {
            return Err("infinities and NaN cannot be written in JSON".to_owned());
        }
        _ => {}
    }
    if let Ok(int) = text.parse::<i64>() {
        return Ok(Value::from(int));
    }
    if let Ok(int) = text.parse::<u64>() {
        return Ok(Value::from(int));
    }
    let numeric = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'))
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        && text.chars().any(|c| c.is_ascii_digit());
    if numeric
        && let Ok(float) = text.parse::<f64>()
        && let Some(number) = serde_json::Number::from_f64(float)
    {
        return Ok(Value::Number(number));
    }
    Ok(Value::String(text.to_owned()))
}

/// A close known word for a misspelt key, if there is one.
pub(crate) fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = key.to_ascii_lowercase();
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|candidate| (strsim::osa_distance(&lower, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The parts of a pasted Hub web address such as
/// `https://huggingface.co/ORG/NAME/blob/REV/path/in/repo`.
struct HubAddress {
    repo: String,
    revision: Option<String>,
    path: Option<String>,
}

impl HubAddress {
    /// "write `KEY: ORG/NAME/path`", plus the revision when it is not `main`.
    fn suggestion(&self, key: &str) -> String {
        let mut value = self.repo.clone();
        if let Some(path) = &self.path {
            value = format!("{value}/{path}");
        }
        let separator = if key.ends_with(' ') { "" } else { ": " };
        match self.revision.as_deref() {
            Some(revision) if revision != DEFAULT_REVISION => {
                format!("write `{key}{separator}{value}` and `revision: {revision}`")
            }
            _ => format!("write `{key}{separator}{value}`"),
        }
    }
}

fn hub_address(text: &str) -> Option<HubAddress> {
    let rest = text
        .strip_prefix("https://huggingface.co/")
        .or_else(|| text.strip_prefix("https://hf.co/"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let mut parts = rest.splitn(5, '/');
    let (Some(org), Some(name)) = (parts.next(), parts.next()) else {
        return None;
    };
    if org.is_empty() || name.is_empty() {
        return None;
    }
    let (revision, path) = match (parts.next(), parts.next(), parts.next()) {
        (Some("tree" | "blob" | "resolve"), Some(revision), path) => (
            Some(revision.to_owned()),
            path.filter(|p| !p.is_empty()).map(str::to_owned),
        ),
        _ => (None, None),
    };
    Some(HubAddress {
        repo: format!("{org}/{name}"),
        revision,
        path,
    })
}

/// The string keys of a mapping node, as written.
fn scalar_keys(node: &Node) -> Vec<&str> {
    match &node.kind {
        Kind::Map(pairs) => pairs
            .iter()
            .filter_map(|(key, _)| match &key.kind {
                Kind::Scalar { value, .. } => Some(value.as_str()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// True when a mapping holds one of the source keys, as a component would.
fn looks_like_component(node: &Node) -> bool {
    match &node.kind {
        Kind::Map(pairs) => pairs.iter().any(|(key, _)| {
            matches!(&key.kind, Kind::Scalar { value, .. } if SOURCE_KEYS.contains(&value.as_str()))
        }),
        _ => false,
    }
}

fn list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|word| format!("`{word}`")).collect();
    quoted.join(", ")
}

/// The name of a spec without `name:`: the file's stem made safe, else the repo's name.
fn default_name(stem: Option<&str>, repo_id: &RepoId) -> String {
    let sanitized: String = stem
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    let trimmed = sanitized.trim_matches(['-', '.']);
    if validate_spec_name(trimmed).is_ok() {
        trimmed.to_owned()
    } else {
        repo_id.name().to_owned()
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("hf_rpo", COMPONENT_KEYS), Some("hf_repo"));
        assert_eq!(suggest("reop_id", TOP_KEYS), Some("repo_id"));
        assert_eq!(suggest("Components", TOP_KEYS), Some("components"));
        assert_eq!(suggest("weights", COMPONENT_KEYS), None);
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        assert_eq!(plain_scalar("true"), Ok(serde_json::Value::Bool(true)));
        assert_eq!(plain_scalar("12"), Ok(serde_json::json!(12)));
        assert_eq!(plain_scalar("1.5"), Ok(serde_json::json!(1.5)));
        assert_eq!(plain_scalar("0.30.1"), Ok(serde_json::json!("0.30.1")));
        assert_eq!(plain_scalar("e5"), Ok(serde_json::json!("e5")));
        assert!(plain_scalar(".nan").is_err());
    }

    #[test]
    fn default_names() {
        let repo = RepoId::new("org/base-model").unwrap();
        assert_eq!(default_name(Some("sdxl fp16"), &repo), "sdxl-fp16");
        assert_eq!(default_name(Some("<inline>"), &repo), "inline");
        assert_eq!(default_name(None, &repo), "base-model");
    }
}
