//! Planning: from a spec to the exact list of files a pipeline needs, where each comes from, its size
//! and hash, and whether it is already here.
//!
//! The same planner runs online (for `plan` and `pull`) and cache-only (for `check`): every read
//! goes through [`Resolver`], which either may use the network or must answer from disk. Online, a
//! warm plan costs at most one request per repo and branch revision (to learn the commit) and none
//! for commits: listings come from `trees/<commit>.json`, `model_index.json` and shard indexes from
//! the snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use pipefetch_hub_cache::{CacheRepo, FileState, Lookup};
use pipefetch_hub_client::{Repo, RepoId, RepoType, Url};
use pipefetch_spec::{ComponentSource, ModelIndexOverride, PipelineSpec};
use serde::Serialize;
use serde_json::{Map, Value};

use super::select::{
    self, ComponentEntry, ComponentSelection, FileRole, Listing, SelectOptions, SelectedFile,
    WeightFormat, WeightName,
};
use crate::engine::blocking;
use crate::error::{Error, Result};
use crate::url_source::{self, UrlCache};
use crate::verify::Expected;
use crate::{Fetcher, FileRequest};

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

/// Where the bytes of a planned file come from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Origin {
    /// A file of a Hub repo at a commit.
    Hub {
        /// `ORG/NAME`.
        repo: String,
        /// `model`, `dataset`, …
        #[serde(skip)]
        repo_type: RepoType,
        /// The commit.
        commit: String,
        /// Its path in the repo.
        path: String,
        /// Its blob name (sha256 or git sha1).
        etag: String,
    },
    /// A URL.
    Url {
        /// The URL.
        url: String,
    },
    /// A local file.
    Local {
        /// Its absolute path.
        path: PathBuf,
    },
}

impl Origin {
    /// A short description for tables and messages.
    pub fn describe(&self) -> String {
        match self {
            Origin::Hub {
                repo, path, commit, ..
            } => format!("{repo}/{path}@{}", &commit[..commit.len().min(8)]),
            Origin::Url { url } => url.clone(),
            Origin::Local { path } => path.display().to_string(),
        }
    }
}

/// How a planned file is written into the assembled folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Transform {
    /// A link to the cached bytes.
    Link,
    /// A sharded variant's index, written with its `weight_map` renamed to canonical shard names.
    RewriteIndex {
        /// The variant chosen for that component.
        variant: Option<String>,
    },
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
    #[serde(skip)]
    pub(crate) expected: Expected,
    #[serde(skip)]
    pub(crate) url_pin: Option<String>,
}

impl PlanFile {
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

/// State of one Hub repo at one revision during planning.
struct RepoState {
    commit: String,
    listing: Listing,
    cache_repo: CacheRepo,
    repo: Repo,
}

/// Reads what planning needs, from the network when allowed, else from the cache only.
pub(crate) struct Resolver<'a> {
    fetcher: &'a Fetcher,
    offline: bool,
    repos: HashMap<(String, String), RepoState>,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(fetcher: &'a Fetcher, offline: bool) -> Resolver<'a> {
        Resolver {
            fetcher,
            offline: offline || fetcher.is_offline(),
            repos: HashMap::new(),
        }
    }

    /// A repo at a revision: its commit and listing (one request at most for a branch, none for a
    /// commit or when the tree cache has it).
    async fn repo(&mut self, repo_id: &str, revision: &str) -> Result<&RepoState> {
        let key = (repo_id.to_string(), revision.to_string());
        if !self.repos.contains_key(&key) {
            let id = RepoId::new(repo_id)
                .map_err(|e| Error::hub(format!("`{repo_id}` is not a valid repo id"), e))?;
            let repo = Repo::new(RepoType::Model, id);
            let cache_repo = self.fetcher.cache_repo(&repo)?;
            let commit = self
                .fetcher
                .resolve_commit(&cache_repo, &repo, revision, self.offline)
                .await?;
            if !self.offline {
                crate::hf::record_ref(&cache_repo, revision, &commit).await?;
            }
            let listed = self
                .fetcher
                .listing(&cache_repo, &repo, &commit, self.offline)
                .await?;
            let listing: Listing = listed
                .into_iter()
                .map(|(path, l)| (path, l.size, l.etag))
                .collect();
            self.repos.insert(
                key.clone(),
                RepoState {
                    commit,
                    listing,
                    cache_repo,
                    repo,
                },
            );
        }
        self.repos
            .get(&key)
            .ok_or_else(|| Error::Internal("repo state vanished".into()))
    }

    /// The bytes of a small file of a repo at a commit (cached in the snapshot like any other file).
    async fn read_small(&self, repo: &Repo, commit: &str, path: &str) -> Result<Vec<u8>> {
        let mut req = FileRequest::new(repo.clone(), path).revision(commit);
        req.local_files_only = self.offline;
        // Metadata reads are part of planning, not of the transfer the user watches: no events.
        let local = self.fetcher.quiet().download_file(&req).await?;
        let p = local.clone();
        let bytes =
            blocking(move || std::fs::read(&p).map_err(|e| Error::io("read", &p, e))).await?;
        if bytes.len() > 64 << 20 {
            return Err(Error::Invalid(format!(
                "{}: `{path}` is {} bytes, too big for a metadata file",
                repo.id,
                bytes.len()
            )));
        }
        Ok(bytes)
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
        let mut resolver = Resolver::new(self, offline);
        plan_with(self, &mut resolver, spec, origin).await
    }
}

async fn plan_with(
    fetcher: &Fetcher,
    resolver: &mut Resolver<'_>,
    spec: &PipelineSpec,
    origin: &SpecOrigin,
) -> Result<Plan> {
    let base_id = spec.repo_id.as_str().to_string();
    let base_revision = spec.revision.clone();
    let (base_commit, base_repo) = {
        let state = resolver.repo(&base_id, &base_revision).await?;
        (state.commit.clone(), state.repo.clone())
    };

    // model_index.json: the spec's override, or the base repo's.
    let index_bytes = match &spec.model_index {
        None => {
            resolver
                .read_small(&base_repo, &base_commit, "model_index.json")
                .await?
        }
        Some(ModelIndexOverride::Inline(map)) => serde_json::to_vec(map)
            .map_err(|e| Error::Invalid(format!("inline model_index: {e}")))?,
        Some(ModelIndexOverride::Path { raw, resolved }) => match origin {
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
                let state = resolver.repo(repo.id.as_str(), revision).await?;
                let (r, c) = (state.repo.clone(), state.commit.clone());
                resolver.read_small(&r, &c, &joined).await?
            }
        },
        Some(_) => {
            return Err(Error::Invalid(
                "this kind of model_index override is not supported".into(),
            ));
        }
    };
    let model_index = select::parse_model_index(&index_bytes).map_err(Error::from)?;

    let mut errors: Vec<String> = Vec::new();
    let mut files: Vec<PlanFile> = Vec::new();
    let mut final_index = model_index.raw.clone();

    // Components from the base repo: everything the spec does not override or drop.
    let options = SelectOptions {
        skip: spec.components.keys().cloned().collect(),
        variant: spec.variant.clone(),
        component_variants: BTreeMap::new(),
    };
    let base_selection = {
        let state = resolver.repo(&base_id, &base_revision).await?;
        select::select_pipeline(&state.listing, &model_index, &options)
    };
    match base_selection {
        Ok(selection) => {
            for file in &selection.root_files {
                if file.target == "model_index.json" {
                    continue;
                }
                let state = resolver.repo(&base_id, &base_revision).await?;
                files.push(hub_file(state, None, file.clone(), Transform::Link));
            }
            for component in selection.components {
                match add_hub_component(resolver, &base_id, &base_revision, component).await {
                    Ok(mut fs) => files.append(&mut fs),
                    Err(e) => errors.push(crate::render_chain(&e)),
                }
            }
        }
        Err(errs) => errors.extend(errs.iter().map(|e| crate::render_chain(e))),
    }

    // Overrides.
    for (name, source) in &spec.components {
        let library = match model_index.components.get(name) {
            Some(ComponentEntry::Present { library, .. }) => Some(library.clone()),
            _ => None,
        };
        let result = match source {
            ComponentSource::Removed => {
                final_index.insert(name.clone(), Value::Array(vec![Value::Null, Value::Null]));
                Ok(Vec::new())
            }
            ComponentSource::HfRepo {
                repo_id,
                subfolder,
                revision,
                variant,
            } => {
                let rev = spec.revision_for(repo_id, revision.as_deref()).to_string();
                let prefs = variant.resolve(spec.variant.as_deref());
                let library = library.clone().unwrap_or_else(|| "diffusers".to_string());
                match resolver.repo(repo_id.as_str(), &rev).await {
                    Ok(state) => {
                        match select_in(state, name, subfolder.as_deref(), &library, &prefs) {
                            Ok(component) => {
                                add_hub_component(resolver, repo_id.as_str(), &rev, component).await
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            ComponentSource::Files {
                files: list,
                revision,
            } => {
                let mut out = Vec::new();
                let mut weights = Vec::new();
                let mut failed = None;
                for file in list {
                    let rev = spec
                        .revision_for(&file.repo_id, revision.as_deref())
                        .to_string();
                    match resolver.repo(file.repo_id.as_str(), &rev).await {
                        Ok(state) => match state.listing.get(&file.path) {
                            Some(listed) => {
                                let base = file.path.rsplit('/').next().unwrap_or(&file.path);
                                let selected = SelectedFile {
                                    repo_path: file.path.clone(),
                                    target: base.to_string(),
                                    size: listed.size,
                                    etag: listed.etag.clone(),
                                    role: FileRole::Other,
                                };
                                if is_weights_name(base) {
                                    weights.push(out.len());
                                }
                                out.push(hub_file(state, Some(name), selected, Transform::Link));
                            }
                            None => {
                                failed = Some(Error::Invalid(format!(
                                    "component `{name}`: `{}` does not exist in {} at {}",
                                    file.path,
                                    file.repo_id,
                                    &state.commit[..8]
                                )));
                                break;
                            }
                        },
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => Err(e),
                    None => {
                        canonicalize_weights(&mut out, &weights, name, library.as_deref());
                        Ok(out)
                    }
                }
            }
            ComponentSource::LocalPath { resolved, .. } => {
                if matches!(origin, SpecOrigin::Hosted { .. }) {
                    Err(Error::Invalid(format!(
                        "component `{name}`: `local_path` cannot be used in a spec hosted in a repo"
                    )))
                } else {
                    let (dir, name2, lib) = (resolved.clone(), name.clone(), library.clone());
                    blocking(move || local_component(&dir, &name2, lib.as_deref())).await
                }
            }
            ComponentSource::Urls {
                files: urls,
                sha256,
            } => url_component(fetcher, name, urls, sha256, library.as_deref()),
            _ => Err(Error::Invalid(format!(
                "component `{name}`: this kind of source is not supported"
            ))),
        };
        match result {
            Ok(mut fs) => files.append(&mut fs),
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
    final_index.remove("_name_or_path");

    // What is here already (stat calls only).
    let url_cache = fetcher.url_cache();
    let repos: HashMap<String, CacheRepo> = resolver
        .repos
        .values()
        .map(|s| (s.repo.id.to_string(), s.cache_repo.clone()))
        .collect();
    let files = blocking(move || {
        let mut out = files;
        for f in &mut out {
            f.presence = presence(f, &repos, &url_cache)?;
        }
        Ok(out)
    })
    .await?;

    Ok(Plan {
        name: spec.name.clone(),
        model_index: final_index,
        files,
    })
}

fn presence(
    f: &PlanFile,
    repos: &HashMap<String, CacheRepo>,
    url_cache: &UrlCache,
) -> Result<Presence> {
    Ok(match &f.origin {
        Origin::Hub {
            repo,
            commit,
            path,
            etag,
            ..
        } => {
            let Some(cache_repo) = repos.get(repo) else {
                return Ok(Presence::Missing);
            };
            let blob_ok = || {
                cache_repo
                    .blob_path(etag)
                    .ok()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .is_some_and(|m| m.is_file() && f.size.is_none_or(|s| s == m.len()))
            };
            match cache_repo.check_file(commit, path, f.size)? {
                FileState::Ok { .. } => Presence::Cached,
                _ if blob_ok() => Presence::Cached,
                _ => match partial_bytes(cache_repo, etag) {
                    Some(bytes) if bytes > 0 => Presence::Partial { bytes },
                    _ => Presence::Missing,
                },
            }
        }
        Origin::Url { url } => match url_cache.lookup(url)? {
            Some(entry) if f.url_pin.as_deref().is_none_or(|pin| pin == entry.sha256) => {
                Presence::Cached
            }
            _ => match url_cache.partial_bytes(url) {
                0 => Presence::Missing,
                bytes => Presence::Partial { bytes },
            },
        },
        Origin::Local { path } => {
            if path.is_file() {
                Presence::Cached
            } else {
                Presence::Missing
            }
        }
    })
}

/// Bytes on disk of the largest interrupted download of blob `etag`, if there is one.
pub(crate) fn partial_bytes(repo: &CacheRepo, etag: &str) -> Option<u64> {
    repo.find_partials(etag)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .max()
}

/// A Hub file as a plan entry.
fn hub_file(
    state: &RepoState,
    component: Option<&str>,
    file: SelectedFile,
    transform: Transform,
) -> PlanFile {
    let expected = Expected::from_etag(&file.etag);
    let target = match component {
        Some(c) => format!("{c}/{}", file.target),
        None => file.target.clone(),
    };
    PlanFile {
        target,
        component: component.map(str::to_string),
        digest: digest_label(&expected),
        origin: Origin::Hub {
            repo: state.repo.id.to_string(),
            repo_type: state.repo.repo_type,
            commit: state.commit.clone(),
            path: file.repo_path,
            etag: file.etag,
        },
        size: Some(file.size),
        transform,
        presence: Presence::Missing,
        expected,
        url_pin: None,
    }
}

fn digest_label(expected: &Expected) -> Option<String> {
    expected
        .hex()
        .map(|h| format!("{}:{h}", expected.algorithm()))
}

/// Selects a component from `subfolder` of a repo, or from its root when there is none (a repo that
/// is one component, like `madebyollin/sdxl-vae-fp16-fix`).
fn select_in(
    state: &RepoState,
    name: &str,
    subfolder: Option<&str>,
    library: &str,
    prefs: &[Option<String>],
) -> Result<ComponentSelection> {
    match subfolder {
        Some(folder) => Ok(select::select_component(
            &state.listing,
            name,
            folder,
            library,
            prefs,
        )?),
        None => {
            // The selector works on folders: present the root files as one, then map back.
            const ROOT: &str = "__repo_root__";
            let listing: Listing = state
                .listing
                .iter()
                .filter(|(p, _)| !p.contains('/'))
                .map(|(p, f)| (format!("{ROOT}/{p}"), f.size, f.etag.clone()))
                .collect();
            let mut selection = select::select_component(&listing, name, ROOT, library, prefs)?;
            let strip = |f: &mut SelectedFile| {
                if let Some(rest) = f.repo_path.strip_prefix(&format!("{ROOT}/")) {
                    f.repo_path = rest.to_string();
                }
            };
            selection.files.iter_mut().for_each(strip);
            if let Some(index) = selection.index.as_mut() {
                strip(index);
            }
            selection.folder = String::new();
            Ok(selection)
        }
    }
}

/// The plan entries of a selected Hub component; a sharded one has its index read to add shards.
async fn add_hub_component(
    resolver: &mut Resolver<'_>,
    repo_id: &str,
    revision: &str,
    mut component: ComponentSelection,
) -> Result<Vec<PlanFile>> {
    let (repo, commit) = {
        let state = resolver.repo(repo_id, revision).await?;
        (state.repo.clone(), state.commit.clone())
    };
    let variant = match &component.kind {
        select::ComponentKind::Model { variant, .. } => variant.clone(),
        _ => None,
    };
    if let Some(index) = component.index.clone() {
        let bytes = resolver
            .read_small(&repo, &commit, &index.repo_path)
            .await?;
        let shards = select::shards_from_index(&bytes)?;
        let state = resolver.repo(repo_id, revision).await?;
        component.add_shards(&state.listing, &shards)?;
    }
    let state = resolver.repo(repo_id, revision).await?;
    let mut out: Vec<PlanFile> = component
        .files
        .iter()
        .map(|f| hub_file(state, Some(&component.name), f.clone(), Transform::Link))
        .collect();
    if let Some(index) = component.index {
        out.push(hub_file(
            state,
            Some(&component.name),
            index,
            Transform::RewriteIndex { variant },
        ));
    }
    Ok(out)
}

fn is_weights_name(name: &str) -> bool {
    url_source::expects_weights(name)
}

/// A component given as loose files (a local folder, URLs, `source:` files) with exactly one
/// weights file under a non-canonical name gets the canonical name of its library, so diffusers
/// finds it; variant-named weights lose their variant.
fn canonicalize_weights(
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

/// The files of a component in a local folder: it must hold a config and, for a model, weights.
fn local_component(dir: &Path, name: &str, library: Option<&str>) -> Result<Vec<PlanFile>> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        Error::Invalid(format!(
            "component `{name}`: local folder {} cannot be read: {e}",
            dir.display()
        ))
    })?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "component `{name}`: {} is not a folder",
            dir.display()
        )));
    }
    let mut found: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io("list", &d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &d, e))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or(file_name);
                found.push((rel, path, meta.len()));
            }
        }
    }
    found.sort();
    let has = |n: &str| found.iter().any(|(rel, _, _)| rel == n);
    let weights: Vec<usize> = found
        .iter()
        .enumerate()
        .filter(|(_, (rel, _, _))| !rel.contains('/') && is_weights_name(rel))
        .map(|(i, _)| i)
        .collect();
    if !weights.is_empty() && !has("config.json") {
        return Err(Error::Invalid(format!(
            "component `{name}`: {} has weights but no config.json (diffusers needs it to build the model)",
            dir.display()
        )));
    }
    if found.is_empty() {
        return Err(Error::Invalid(format!(
            "component `{name}`: {} is empty",
            dir.display()
        )));
    }
    let is_model = matches!(library, Some("diffusers") | Some("transformers"))
        && !has("scheduler_config.json")
        && !has("tokenizer_config.json")
        && !has("preprocessor_config.json");
    if is_model && weights.is_empty() {
        return Err(Error::Invalid(format!(
            "component `{name}`: {} holds no weights (*.safetensors or *.bin next to config.json)",
            dir.display()
        )));
    }
    let mut out: Vec<PlanFile> = found
        .into_iter()
        .map(|(rel, path, size)| PlanFile {
            target: format!("{name}/{rel}"),
            component: Some(name.to_string()),
            origin: Origin::Local { path },
            size: Some(size),
            digest: None,
            transform: Transform::Link,
            presence: Presence::Missing,
            expected: Expected::Unknown,
            url_pin: None,
        })
        .collect();
    canonicalize_weights(&mut out, &weights, name, library);
    Ok(out)
}

/// The files of a component given as URLs.
fn url_component(
    fetcher: &Fetcher,
    name: &str,
    urls: &BTreeMap<String, String>,
    pins: &BTreeMap<String, String>,
    library: Option<&str>,
) -> Result<Vec<PlanFile>> {
    let cache = fetcher.url_cache();
    let mut out = Vec::new();
    let mut weights = Vec::new();
    for (file, url) in urls {
        let parsed = Url::parse(url)
            .map_err(|e| Error::Invalid(format!("component `{name}`: bad URL {url}: {e}")))?;
        let pin = pins.get(file).map(|p| p.to_ascii_lowercase());
        let cached = cache.lookup(parsed.as_str())?;
        let (size, expected) = match (&cached, &pin) {
            (Some(entry), Some(p)) if &entry.sha256 == p => {
                (Some(entry.size), Expected::Sha256(p.clone()))
            }
            (_, Some(p)) => (None, Expected::Sha256(p.clone())),
            (Some(entry), None) => (Some(entry.size), Expected::Sha256(entry.sha256.clone())),
            (None, None) => (None, Expected::Unknown),
        };
        if is_weights_name(file) {
            weights.push(out.len());
        }
        out.push(PlanFile {
            target: format!("{name}/{file}"),
            component: Some(name.to_string()),
            digest: digest_label(&expected),
            origin: Origin::Url {
                url: parsed.to_string(),
            },
            size,
            transform: Transform::Link,
            presence: Presence::Missing,
            expected,
            url_pin: pin,
        });
    }
    canonicalize_weights(&mut out, &weights, name, library);
    Ok(out)
}

/// Repos a plan touches, for messages.
pub fn repos_of(plan: &Plan) -> BTreeSet<String> {
    plan.files
        .iter()
        .filter_map(|f| match &f.origin {
            Origin::Hub { repo, .. } => Some(repo.clone()),
            _ => None,
        })
        .collect()
}

/// The lookup of a Hub plan file in the cache: its snapshot path.
pub(crate) fn hub_pointer(fetcher: &Fetcher, f: &PlanFile) -> Result<Option<PathBuf>> {
    let Origin::Hub {
        repo,
        repo_type,
        commit,
        path,
        ..
    } = &f.origin
    else {
        return Ok(None);
    };
    let cache_repo = fetcher
        .cache()
        .repo(crate::cache_repo_type(*repo_type), repo)?;
    Ok(match cache_repo.lookup(commit, path)? {
        Lookup::Found(p) => Some(p),
        _ => None,
    })
}
