//! The `components:` section: each component's source (`hf_repo`, `local_path`, `urls`), its
//! variant preference, its files and their sha256 pins.

use std::collections::{BTreeMap, HashSet};

use super::{
    COMPONENT_KEYS, Checker, Entry, SOURCE_KEYS, VARIANT_HELP, hub_address, list, scalar_keys,
    suggest,
};
use crate::model::{ComponentSource, RepoFile, RepoId, VariantPref};
use crate::tree::{Kind, Node};
use crate::validators::{
    validate_component_name, validate_relative_path, validate_sha256, validate_url,
};

impl Checker<'_> {
    pub(super) fn components(&mut self, node: &Node) -> BTreeMap<String, ComponentSource> {
        let mut components = BTreeMap::new();
        match &node.kind {
            Kind::Map(_) => {}
            Kind::Scalar { .. } if node.is_null() => return components,
            _ => {
                self.error(
                    node.pos,
                    format!(
                        "`components` must be a mapping from component name to source, found {}",
                        node.describe()
                    ),
                    Some("for example `components: {vae: {hf_repo: ORG/NAME/vae}}`".to_owned()),
                );
                return components;
            }
        }
        for entry in self.entries(node, " in `components`") {
            if COMPONENT_KEYS.contains(&entry.key) {
                // Usually a line indented two spaces too little, under a component whose
                // body therefore looks empty.
                self.error(
                    entry.key_node.pos,
                    format!("`{}` is not a component name", entry.key),
                    Some(format!(
                        "`{}` belongs inside a component; indent it under the component's name",
                        entry.key
                    )),
                );
                continue;
            }
            if let Err(reason) = validate_component_name(entry.key) {
                self.error(
                    entry.key_node.pos,
                    format!("invalid component name `{}`: {reason}", entry.key),
                    Some(
                        "component names are the pipeline's folders, such as `unet` or `text_encoder_2`"
                            .to_owned(),
                    ),
                );
            }
            if let Some(source) = self.component(&entry) {
                components.insert(entry.key.to_owned(), source);
            }
        }
        components
    }

    fn component(&mut self, component: &Entry<'_>) -> Option<ComponentSource> {
        let name = component.key;
        let node = component.value;
        // `vae:` with nothing after it is YAML's null, but far more often a body that was
        // forgotten or mis-indented than a wish to drop the component, so it must be spelt out.
        if matches!(&node.kind, Kind::Scalar { value, plain: true } if value.is_empty()) {
            self.error(
                component.key_node.pos,
                format!("component `{name}` is empty"),
                Some(format!(
                    "give it a source, indented under `{name}:`, or write `{name}: null` to drop it"
                )),
            );
            return None;
        }
        if node.is_null() {
            return Some(ComponentSource::Removed);
        }
        if !matches!(node.kind, Kind::Map(_)) {
            self.error(
                node.pos,
                format!(
                    "component `{name}` must be a mapping with one source, or `null` to drop it; found {}",
                    node.describe()
                ),
                Some(format!("for example `{name}: {{hf_repo: ORG/NAME/{name}}}`")),
            );
            return None;
        }
        let context = format!(" in component `{name}`");
        let mut sources = Vec::new();
        let mut modifiers: Vec<Entry<'_>> = Vec::new();
        let mut misspelt_source = false;
        for entry in self.entries(node, &context) {
            if SOURCE_KEYS.contains(&entry.key) {
                sources.push(entry);
            } else if COMPONENT_KEYS.contains(&entry.key) {
                modifiers.push(entry);
            } else {
                misspelt_source |= suggest(entry.key, COMPONENT_KEYS)
                    .is_some_and(|suggestion| SOURCE_KEYS.contains(&suggestion));
                self.unknown_key(&entry, COMPONENT_KEYS, &context);
            }
        }
        let source = match sources.as_slice() {
            // The misspelt key's own message ("did you mean `hf_repo`?") says it all.
            [] if misspelt_source => return None,
            [] => {
                self.error(
                    component.key_node.pos,
                    format!("component `{name}` has no source"),
                    Some(format!(
                        "give one of `hf_repo`, `source`, `local_path` or `urls`, or write `{name}: null` to drop the component"
                    )),
                );
                return None;
            }
            [source] => source,
            [first, second, ..] => {
                self.error(
                    second.key_node.pos,
                    format!(
                        "component `{name}` has more than one source: `{}` and `{}`",
                        first.key, second.key
                    ),
                    Some("a component comes from exactly one place; keep one of them".to_owned()),
                );
                return None;
            }
        };
        let allowed: &[&str] = match source.key {
            "hf_repo" => &["variant", "revision"],
            "source" => &["revision"],
            "urls" => &["sha256"],
            _ => &[],
        };
        let mut misplaced = false;
        for entry in &modifiers {
            let key = entry.key;
            if !allowed.contains(&key) {
                misplaced = true;
                let help = match key {
                    "variant" => "`variant` applies only to `hf_repo` components",
                    "revision" => "`revision` applies to `hf_repo` and `source` components",
                    _ => "`sha256` pins the files of a `urls` component",
                };
                self.error(
                    entry.key_node.pos,
                    format!(
                        "`{key}` does not apply to a `{}` component (`{name}`)",
                        source.key
                    ),
                    Some(help.to_owned()),
                );
            }
        }
        // Every part is checked before any is combined, so that all problems are reported.
        let revision = match modifiers.iter().find(|entry| entry.key == "revision") {
            Some(entry) if allowed.contains(&"revision") => self.revision(entry.value).map(Some),
            _ => Some(None),
        };
        let result = match source.key {
            "hf_repo" => {
                let variant = match modifiers.iter().find(|entry| entry.key == "variant") {
                    Some(entry) => self.variant_pref(entry.value),
                    None => Some(VariantPref::Inherit),
                };
                let repo = self.hf_repo(source.value);
                let ((repo_id, subfolder), variant, revision) = (repo?, variant?, revision?);
                ComponentSource::HfRepo {
                    repo_id,
                    subfolder,
                    revision,
                    variant,
                }
            }
            "source" => {
                let files = self.files(source.value);
                ComponentSource::Files {
                    files: files?,
                    revision: revision?,
                }
            }
            "local_path" => {
                let text = self.string(source.value, "`local_path`")?;
                let (path, resolved) = self.local_path(text, source.value.pos, "local_path")?;
                ComponentSource::LocalPath { path, resolved }
            }
            _ => {
                let files = self.urls(source.value);
                let sha256 = match modifiers.iter().find(|entry| entry.key == "sha256") {
                    Some(entry) => self.sha256(entry.value, &scalar_keys(source.value)),
                    None => Some(BTreeMap::new()),
                };
                ComponentSource::Urls {
                    files: files?,
                    sha256: sha256?,
                }
            }
        };
        (!misplaced).then_some(result)
    }

    fn hf_repo(&mut self, node: &Node) -> Option<(RepoId, Option<String>)> {
        let text = self.string(node, "`hf_repo`")?;
        if text.contains("://") {
            let help = match hub_address(text) {
                Some(address) => address.suggestion("hf_repo"),
                None => "to download files from URLs, use `urls:`".to_owned(),
            };
            self.error(
                node.pos,
                "`hf_repo` takes ORG/NAME[/subfolder], not a URL",
                Some(help),
            );
            return None;
        }
        let mut parts = text.splitn(3, '/');
        let (Some(org), Some(name)) = (parts.next(), parts.next()) else {
            self.error(
                node.pos,
                format!("invalid `hf_repo` `{text}`: expected ORG/NAME, optionally followed by /subfolder"),
                Some("for example `hf_repo: stabilityai/stable-diffusion-xl-base-1.0/text_encoder`".to_owned()),
            );
            return None;
        };
        let repo_id = self.repo_id(&format!("{org}/{name}"), node.pos, " in `hf_repo`");
        let subfolder = match parts.next() {
            None => None,
            Some(subfolder) => match validate_relative_path(subfolder) {
                Ok(()) => Some(subfolder.to_owned()),
                Err(reason) => {
                    self.error(
                        node.pos,
                        format!("invalid subfolder `{subfolder}` in `hf_repo`: {reason}"),
                        Some("write ORG/NAME/folder, such as `org/name/text_encoder`".to_owned()),
                    );
                    return None;
                }
            },
        };
        Some((repo_id?, subfolder))
    }

    fn variant_pref(&mut self, node: &Node) -> Option<VariantPref> {
        match &node.kind {
            // An empty value would mean "no variant"; that choice must be written out.
            Kind::Scalar { value, plain: true } if value.is_empty() => {
                self.error(
                    node.pos,
                    "`variant` needs a value",
                    Some(
                        "write a name such as `fp16`, or `null` for the files without a variant"
                            .to_owned(),
                    ),
                );
                None
            }
            Kind::Scalar { .. } if node.is_null() => Some(VariantPref::Prefer(vec![None])),
            Kind::Scalar { value, .. } => {
                let variant = self.variant_name(value, node.pos)?;
                Some(VariantPref::Prefer(vec![Some(variant)]))
            }
            Kind::Seq(items) if items.is_empty() => {
                self.error(
                    node.pos,
                    "`variant` lists no variant",
                    Some(
                        "list at least one, such as `[fp16, null]` (null = no variant)".to_owned(),
                    ),
                );
                None
            }
            Kind::Seq(items) => {
                let mut list: Vec<Option<String>> = Vec::with_capacity(items.len());
                let mut seen: HashSet<Option<String>> = HashSet::new();
                let mut ok = true;
                for item in items {
                    let variant = match &item.kind {
                        Kind::Scalar { .. } if item.is_null() => None,
                        Kind::Scalar { value, .. } => match self.variant_name(value, item.pos) {
                            Some(variant) => Some(variant),
                            None => {
                                ok = false;
                                continue;
                            }
                        },
                        _ => {
                            self.error(
                                item.pos,
                                format!(
                                    "a `variant` entry must be a name or null, found {}",
                                    item.describe()
                                ),
                                Some(VARIANT_HELP.to_owned()),
                            );
                            ok = false;
                            continue;
                        }
                    };
                    if !seen.insert(variant.clone()) {
                        let shown = variant.as_deref().unwrap_or("null");
                        self.error(
                            item.pos,
                            format!("variant `{shown}` is listed twice"),
                            Some("each variant is tried once; remove the repetition".to_owned()),
                        );
                        ok = false;
                        continue;
                    }
                    list.push(variant);
                }
                ok.then_some(VariantPref::Prefer(list))
            }
            Kind::Map(_) => {
                self.error(
                    node.pos,
                    "`variant` must be a name or a list of names, found a mapping",
                    Some(VARIANT_HELP.to_owned()),
                );
                None
            }
        }
    }

    fn files(&mut self, node: &Node) -> Option<Vec<RepoFile>> {
        let items = match &node.kind {
            Kind::Seq(items) if items.is_empty() => {
                self.error(
                    node.pos,
                    "`source` lists no file",
                    Some(
                        "list ORG/NAME/path entries, or drop the component with `null`".to_owned(),
                    ),
                );
                return None;
            }
            Kind::Seq(items) => items,
            Kind::Scalar { value, .. } if !node.is_null() => {
                self.error(
                    node.pos,
                    "`source` must be a list of ORG/NAME/path entries, found a string",
                    Some(format!("write `source: [{value}]`")),
                );
                return None;
            }
            _ => {
                self.error(
                    node.pos,
                    format!(
                        "`source` must be a list of ORG/NAME/path entries, found {}",
                        node.describe()
                    ),
                    None,
                );
                return None;
            }
        };
        let mut files: Vec<RepoFile> = Vec::with_capacity(items.len());
        let mut seen: HashSet<RepoFile> = HashSet::new();
        let mut ok = true;
        for item in items {
            let Some(text) = self.string(item, "a `source` entry") else {
                ok = false;
                continue;
            };
            if text.contains("://") {
                let help = match hub_address(text) {
                    Some(address) if address.path.is_some() => address.suggestion("- "),
                    _ => "to download files from URLs, use `urls:`".to_owned(),
                };
                self.error(
                    item.pos,
                    "`source` entries are ORG/NAME/path/in/repo, not URLs",
                    Some(help),
                );
                ok = false;
                continue;
            }
            let mut parts = text.splitn(3, '/');
            let (Some(org), Some(name), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                self.error(
                    item.pos,
                    format!("`source` entry `{text}` needs ORG/NAME/path/in/repo"),
                    Some("for a whole folder, use `hf_repo: ORG/NAME/folder`".to_owned()),
                );
                ok = false;
                continue;
            };
            let repo_id = self.repo_id(&format!("{org}/{name}"), item.pos, " in `source`");
            if let Err(reason) = validate_relative_path(path) {
                self.error(
                    item.pos,
                    format!("invalid path `{path}` in `source` entry `{text}`: {reason}"),
                    Some("paths inside a repo look like `vae/config.json`".to_owned()),
                );
                ok = false;
                continue;
            }
            let Some(repo_id) = repo_id else {
                ok = false;
                continue;
            };
            let file = RepoFile {
                repo_id,
                path: path.to_owned(),
            };
            if !seen.insert(file.clone()) {
                self.error(
                    item.pos,
                    format!("`source` entry `{text}` is listed twice"),
                    Some("remove the repetition".to_owned()),
                );
                ok = false;
                continue;
            }
            files.push(file);
        }
        ok.then_some(files)
    }

    fn urls(&mut self, node: &Node) -> Option<BTreeMap<String, String>> {
        if !matches!(node.kind, Kind::Map(_)) {
            self.error(
                node.pos,
                format!(
                    "`urls` must be a mapping from file name to URL, found {}",
                    node.describe()
                ),
                Some("for example `urls: {model.safetensors: https://example.com/model.safetensors}`".to_owned()),
            );
            return None;
        }
        let entries = self.entries(node, " in `urls`");
        if entries.is_empty() {
            self.error(
                node.pos,
                "`urls` lists no file",
                Some("add `filename: https://...` entries".to_owned()),
            );
            return None;
        }
        let mut files = BTreeMap::new();
        let mut ok = true;
        for entry in entries {
            if let Err(reason) = validate_relative_path(entry.key) {
                self.error(
                    entry.key_node.pos,
                    format!("invalid file name `{}` in `urls`: {reason}", entry.key),
                    Some("a file name is a relative path such as `model.safetensors`".to_owned()),
                );
                ok = false;
            }
            let Some(url) = self.string(entry.value, &format!("the URL of `{}`", entry.key)) else {
                ok = false;
                continue;
            };
            if let Err(reason) = self.check_url(url) {
                let also: String = self
                    .context
                    .url_schemes
                    .iter()
                    .map(|s| format!(", `{s}://`"))
                    .collect();
                self.error(
                    entry.value.pos,
                    format!("invalid URL `{url}`: {reason}"),
                    Some(format!(
                        "URLs must use `https://` (plain `http://` only to localhost){also}"
                    )),
                );
                ok = false;
                continue;
            }
            files.insert(entry.key.to_owned(), url.to_owned());
        }
        ok.then_some(files)
    }

    /// [`validate_url`], plus the schemes of registered sources (any well-formed URL of theirs).
    fn check_url(&self, url: &str) -> Result<(), String> {
        let registered = url.split_once("://").is_some_and(|(scheme, _)| {
            self.context
                .url_schemes
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme))
        });
        if registered && !url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return url::Url::parse(url)
                .map(drop)
                .map_err(|err| format!("it is not a valid URL ({err})"));
        }
        validate_url(url)
    }

    fn sha256(&mut self, node: &Node, files: &[&str]) -> Option<BTreeMap<String, String>> {
        if !matches!(node.kind, Kind::Map(_)) {
            self.error(
                node.pos,
                format!(
                    "`sha256` must be a mapping from file name to hash, found {}",
                    node.describe()
                ),
                Some(
                    "for example `sha256: {model.safetensors: 0f1e...}` (64 hex digits)".to_owned(),
                ),
            );
            return None;
        }
        let mut pins = BTreeMap::new();
        let mut ok = true;
        let known: HashSet<&str> = files.iter().copied().collect();
        for entry in self.entries(node, " in `sha256`") {
            if !known.contains(entry.key) {
                // Suggestions compare against every file name; a huge list gets none.
                let suggestion = if files.len() <= 100 {
                    suggest(entry.key, files)
                } else {
                    None
                };
                let help = match suggestion {
                    Some(name) => format!("did you mean `{name}`?"),
                    None if files.len() <= 100 => format!(
                        "the keys of `sha256` are file names from `urls`: {}",
                        list(files)
                    ),
                    None => "the keys of `sha256` are file names from `urls`".to_owned(),
                };
                self.error(
                    entry.key_node.pos,
                    format!(
                        "`sha256` pins `{}`, which is not a file of `urls`",
                        entry.key
                    ),
                    Some(help),
                );
                ok = false;
            }
            let Some(hash) = self.string(entry.value, &format!("the SHA-256 of `{}`", entry.key))
            else {
                ok = false;
                continue;
            };
            if let Err(reason) = validate_sha256(hash) {
                self.error(
                    entry.value.pos,
                    format!("invalid SHA-256 for `{}`: {reason}", entry.key),
                    Some("copy the full hash, such as the one `sha256sum` prints".to_owned()),
                );
                ok = false;
                continue;
            }
            pins.insert(entry.key.to_owned(), hash.to_ascii_lowercase());
        }
        ok.then_some(pins)
    }
}
