//! The Hub source: the base pipeline of a spec, `hf_repo` components (a repo's folder, selected like
//! diffusers selects) and `source` components (exactly listed files), all from Hub repos at a
//! commit, landing in the HF cache under huggingface_hub's own names.
//!
//! Planning costs at most one request per repo and branch revision (to learn the commit) and none
//! for a commit: listings come from `trees/<commit>.json`, `model_index.json` and shard indexes from
//! the snapshot. A planned Hub file is cached when its snapshot pointer resolves, or when its blob
//! is present (the pull then only links it).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pipefetch_hub_cache::{CacheRepo, FileState, Lookup};
use pipefetch_hub_client::{Repo, RepoId, RepoType};
use pipefetch_spec::ComponentSource;
use serde::{Deserialize, Serialize};

use super::{
    ComponentRequest, FetchContext, FileOrigin, LandingPlace, Origin, PlanContext, Source,
};
use crate::engine::{HubBlob, blocking};
use crate::error::{Error, Result};
use crate::hf::Listed;
use crate::lock::{LockedFile, LockedSource};
use crate::pipeline::check::{ProblemKind, verify_file};
use crate::pipeline::plan::{PlanFile, Presence, Transform, canonicalize_weights};
use crate::pipeline::select::{
    self, ComponentEntry, ComponentSelection, FileRole, Listing, ModelIndex, SelectOptions,
    SelectedFile,
};
use crate::url_source::expects_weights;
use crate::verify::Expected;
use crate::{Fetcher, FileRequest, cache_repo_type};

/// The Hub as a source of pipeline files.
#[derive(Debug, Default)]
pub struct HubSource;

/// One repo at one revision during planning.
pub(crate) struct RepoState {
    pub(crate) commit: String,
    pub(crate) listing: Listing,
    pub(crate) repo: Repo,
    revision: String,
}

/// The Hub repos met while planning one spec, by repo id and revision.
#[derive(Default)]
pub(crate) struct HubRepos {
    repos: HashMap<(String, String), RepoState>,
}

impl PlanContext<'_> {
    /// A repo at a revision: its commit and listing (one request at most for a branch, none for a
    /// commit or when the tree cache has it).
    pub(crate) async fn hub_repo(&mut self, repo_id: &str, revision: &str) -> Result<&RepoState> {
        let key = (repo_id.to_string(), revision.to_string());
        if !self.hub.repos.contains_key(&key) {
            let fetcher = self.fetcher();
            let id = RepoId::new(repo_id)
                .map_err(|e| Error::hub(format!("`{repo_id}` is not a valid repo id"), e))?;
            let repo = Repo::new(RepoType::Model, id);
            let cache_repo = fetcher.cache_repo(&repo)?;
            let commit = fetcher
                .resolve_commit(&cache_repo, &repo, revision, self.offline())
                .await?;
            if !self.offline() {
                crate::hf::record_ref(&cache_repo, revision, &commit).await?;
            }
            let listing: Listing = fetcher
                .listing(&cache_repo, &repo, &commit, self.offline())
                .await?
                .into_iter()
                .map(|(path, l)| (path, l.size, l.etag))
                .collect();
            self.hub.repos.insert(
                key.clone(),
                RepoState {
                    commit,
                    listing,
                    repo,
                    revision: revision.to_string(),
                },
            );
        }
        self.hub
            .repos
            .get(&key)
            .ok_or_else(|| Error::Internal("repo state vanished".into()))
    }

    /// The bytes of a small file of a repo at a commit (cached in the snapshot like any other
    /// file; no progress events: metadata reads are not the transfer the user watches).
    pub(crate) async fn read_hub_file(
        &self,
        repo: &Repo,
        commit: &str,
        path: &str,
    ) -> Result<Vec<u8>> {
        let mut req = FileRequest::new(repo.clone(), path).revision(commit);
        req.local_files_only = self.offline();
        let local = self.fetcher().quiet().download_file(&req).await?;
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

/// The base repo's files: its root files (but `model_index.json`, which the folder gets from the
/// plan) and every component the spec does not override or drop. Problems are collected, not
/// returned at the first: the user sees them all.
pub(crate) async fn plan_base(
    cx: &mut PlanContext<'_>,
    model_index: &ModelIndex,
    files: &mut Vec<PlanFile>,
    errors: &mut Vec<String>,
) -> Result<()> {
    let spec = cx.spec();
    let (base_id, base_revision) = (spec.repo_id.as_str(), spec.revision.as_str());
    let options = SelectOptions {
        skip: spec.components.keys().cloned().collect(),
        variant: spec.variant.clone(),
        component_variants: BTreeMap::new(),
    };
    let selection = {
        let state = cx.hub_repo(base_id, base_revision).await?;
        select::select_pipeline(&state.listing, model_index, &options)
    };
    match selection {
        Ok(selection) => {
            for file in &selection.root_files {
                if file.target == "model_index.json" {
                    continue;
                }
                let state = cx.hub_repo(base_id, base_revision).await?;
                files.push(hub_file(state, None, file.clone(), Transform::Link));
            }
            for component in selection.components {
                match add_component(cx, base_id, base_revision, component).await {
                    Ok(mut found) => files.append(&mut found),
                    Err(e) => errors.push(crate::render_chain(&e)),
                }
            }
        }
        Err(errs) => errors.extend(errs.iter().map(|e| crate::render_chain(e))),
    }
    Ok(())
}

#[async_trait]
impl Source for HubSource {
    fn kind(&self) -> &'static str {
        "hub"
    }

    fn spec_keys(&self) -> &[&'static str] {
        &["hf_repo", "source"]
    }

    async fn resolve_component(
        &self,
        cx: &mut PlanContext<'_>,
        component: &ComponentRequest<'_>,
    ) -> Result<Vec<PlanFile>> {
        let spec = cx.spec();
        let name = component.name;
        match component.source {
            ComponentSource::HfRepo {
                repo_id,
                subfolder,
                revision,
                variant,
            } => {
                let rev = spec.revision_for(repo_id, revision.as_deref()).to_string();
                let prefs = variant.resolve(spec.variant.as_deref());
                let library = component.library.unwrap_or("diffusers");
                let state = cx.hub_repo(repo_id.as_str(), &rev).await?;
                let selected = select_in(state, name, subfolder.as_deref(), library, &prefs)?;
                add_component(cx, repo_id.as_str(), &rev, selected).await
            }
            ComponentSource::Files {
                files: list,
                revision,
            } => {
                let mut out = Vec::new();
                let mut weights = Vec::new();
                for file in list {
                    let rev = spec
                        .revision_for(&file.repo_id, revision.as_deref())
                        .to_string();
                    let state = cx.hub_repo(file.repo_id.as_str(), &rev).await?;
                    let Some(listed) = state.listing.get(&file.path) else {
                        return Err(Error::Invalid(format!(
                            "component `{name}`: `{}` does not exist in {} at {}",
                            file.path,
                            file.repo_id,
                            &state.commit[..8]
                        )));
                    };
                    let base = file.path.rsplit('/').next().unwrap_or(&file.path);
                    let selected = SelectedFile {
                        repo_path: file.path.clone(),
                        target: base.to_string(),
                        size: listed.size,
                        etag: listed.etag.clone(),
                        role: FileRole::Other,
                    };
                    if expects_weights(base) {
                        weights.push(out.len());
                    }
                    out.push(hub_file(state, Some(name), selected, Transform::Link));
                }
                canonicalize_weights(&mut out, &weights, name, component.library);
                Ok(out)
            }
            other => Err(Error::Invalid(format!(
                "component `{name}`: the hub source cannot resolve `{}` entries",
                other.kind()
            ))),
        }
    }

    fn unlock(&self, _fetcher: &Fetcher, locked: &LockedFile) -> Result<Origin> {
        let fields: HubFields = locked.source.fields()?;
        RepoId::new(fields.repo.as_str()).map_err(|e| {
            Error::hub(
                format!("`{}`: bad repo id in the lockfile", locked.target),
                e,
            )
        })?;
        pipefetch_hub_cache::validate_repo_path(&fields.path)?;
        if !pipefetch_hub_client::is_commit_sha(&fields.commit) {
            return Err(Error::Invalid(format!(
                "`{}`: the lockfile's commit `{}` is not a 40-hex commit id",
                locked.target, fields.commit
            )));
        }
        Ok(Origin::new(HubFile {
            repo_type: RepoType::Model,
            fields,
        }))
    }
}

/// What a lockfile records of a Hub file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HubFields {
    /// `ORG/NAME`.
    pub(crate) repo: String,
    /// The revision the spec asked for (a branch, a tag or the commit itself).
    pub(crate) revision: String,
    /// The commit it resolved to.
    pub(crate) commit: String,
    /// The file's path in the repo.
    pub(crate) path: String,
    /// Its blob name (sha256 for LFS files, git blob sha1 for the others).
    pub(crate) etag: String,
}

/// A file of a Hub repo at a commit.
#[derive(Debug, Clone)]
pub struct HubFile {
    repo_type: RepoType,
    fields: HubFields,
}

impl HubFile {
    fn cache_repo(&self, fetcher: &Fetcher) -> Result<CacheRepo> {
        Ok(fetcher
            .cache()
            .repo(cache_repo_type(self.repo_type), &self.fields.repo)?)
    }

    fn repo_handle(&self) -> Result<Repo> {
        let id = RepoId::new(self.fields.repo.as_str())
            .map_err(|e| Error::hub(format!("`{}` is not a valid repo id", self.fields.repo), e))?;
        Ok(Repo::new(self.repo_type, id))
    }

    /// Records the branch the file was resolved from, on a cache that has no ref for it yet: a
    /// locked or mirrored pull on a fresh cache lets tools resolving the branch offline
    /// (huggingface_hub, diffusers) find the files. An existing ref is left alone (it may point at
    /// a newer commit someone pulled since).
    async fn record_ref(&self, cache_repo: &CacheRepo) -> Result<()> {
        let (r, rev, c) = (
            cache_repo.clone(),
            self.fields.revision.clone(),
            self.fields.commit.clone(),
        );
        blocking(move || {
            if rev != c && r.resolve_revision(&rev)?.is_none() {
                r.ensure_layout()?;
                r.write_ref(&rev, &c)?;
            }
            Ok(())
        })
        .await
    }

    /// Whether the blob is in the cache with the plan's size.
    fn blob_ok(cache_repo: &CacheRepo, etag: &str, size: Option<u64>) -> bool {
        cache_repo
            .blob_path(etag)
            .ok()
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.is_file() && size.is_none_or(|s| s == m.len()))
    }
}

#[async_trait]
impl FileOrigin for HubFile {
    fn kind(&self) -> &'static str {
        "hub"
    }

    fn describe(&self) -> String {
        let f = &self.fields;
        format!(
            "{}/{}@{}",
            f.repo,
            f.path,
            &f.commit[..f.commit.len().min(8)]
        )
    }

    fn to_json(&self) -> serde_json::Value {
        let f = &self.fields;
        serde_json::json!({
            "kind": "hub",
            "repo": f.repo,
            "commit": f.commit,
            "path": f.path,
            "etag": f.etag,
        })
    }

    fn hub_repo(&self) -> Option<&str> {
        Some(&self.fields.repo)
    }

    fn presence(&self, fetcher: &Fetcher, file: &PlanFile) -> Result<Presence> {
        let f = &self.fields;
        let cache_repo = self.cache_repo(fetcher)?;
        Ok(
            match cache_repo.check_file(&f.commit, &f.path, file.size)? {
                FileState::Ok { .. } => Presence::Cached,
                _ if Self::blob_ok(&cache_repo, &f.etag, file.size) => Presence::Cached,
                _ => match partial_bytes(&cache_repo, &f.etag) {
                    Some(bytes) if bytes > 0 => Presence::Partial { bytes },
                    _ => Presence::Missing,
                },
            },
        )
    }

    fn problem(&self, fetcher: &Fetcher, file: &PlanFile, verify: bool) -> Option<ProblemKind> {
        let f = &self.fields;
        let cache_repo = self.cache_repo(fetcher).ok()?;
        match cache_repo.check_file(&f.commit, &f.path, file.size) {
            Ok(FileState::Ok { path, .. }) => verify
                .then(|| verify_file(&path, &file.expected, file.size.unwrap_or(0)))
                .flatten(),
            Ok(FileState::Dangling) => Some(ProblemKind::DanglingLink),
            Ok(FileState::WrongSize { actual }) => Some(ProblemKind::WrongSize {
                actual,
                expected: file.size.unwrap_or(0),
            }),
            Ok(_) | Err(_) => Some(match partial_bytes(&cache_repo, &f.etag) {
                Some(bytes) => ProblemKind::Incomplete {
                    bytes,
                    size: file.size.unwrap_or(0),
                },
                None => ProblemKind::Missing,
            }),
        }
    }

    async fn fetch(&self, cx: &FetchContext<'_>, file: &PlanFile) -> Result<Option<u64>> {
        let f = &self.fields;
        let fetcher = cx.fetcher();
        let cache_repo = self.cache_repo(fetcher)?;
        let (r, c, p, size) = (
            cache_repo.clone(),
            f.commit.clone(),
            f.path.clone(),
            file.size,
        );
        let state = blocking(move || Ok(r.check_file(&c, &p, size)?)).await?;
        if matches!(state, FileState::Ok { .. }) {
            self.record_ref(&cache_repo).await?;
            return Ok(None);
        }
        let listed = Listed {
            size: file.size.unwrap_or(0),
            etag: f.etag.clone(),
        };
        // The engine finds a good blob itself (and replaces a damaged one).
        let job = fetcher
            .hub_job(
                cx.engine,
                cx.file,
                &self.repo_handle()?,
                &cache_repo,
                &f.commit,
                &f.path,
                &listed,
            )
            .await?;
        let downloaded = cx.engine.fetch(&job).await?.downloaded;
        self.landed(cx, file).await?;
        Ok(Some(downloaded))
    }

    fn landing(&self, fetcher: &Fetcher, _file: &PlanFile) -> Result<Option<LandingPlace>> {
        let blob = HubBlob::new(self.cache_repo(fetcher)?, self.fields.etag.clone());
        Ok(Some(LandingPlace(Arc::new(blob))))
    }

    /// The snapshot link (and, on a cache without it, the branch ref) of a blob now in place.
    async fn landed(&self, cx: &FetchContext<'_>, _file: &PlanFile) -> Result<()> {
        let f = &self.fields;
        let cache_repo = self.cache_repo(cx.fetcher())?;
        self.record_ref(&cache_repo).await?;
        let (r, c, p, e) = (cache_repo, f.commit.clone(), f.path.clone(), f.etag.clone());
        blocking(move || Ok(r.link_snapshot(&c, &p, &e)?)).await?;
        Ok(())
    }

    fn local_path(&self, fetcher: &Fetcher) -> Result<Option<PathBuf>> {
        let f = &self.fields;
        Ok(
            match self.cache_repo(fetcher)?.lookup(&f.commit, &f.path)? {
                Lookup::Found(p) => Some(p),
                _ => None,
            },
        )
    }

    fn lock(&self) -> LockedSource {
        LockedSource::new("hub", &self.fields)
    }
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
    let origin = Origin::new(HubFile {
        repo_type: state.repo.repo_type,
        fields: HubFields {
            repo: state.repo.id.to_string(),
            revision: state.revision.clone(),
            commit: state.commit.clone(),
            path: file.repo_path,
            etag: file.etag,
        },
    });
    let mut planned = PlanFile::new(target, origin, Some(file.size), expected);
    planned.component = component.map(str::to_string);
    planned.transform = transform;
    planned
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
async fn add_component(
    cx: &mut PlanContext<'_>,
    repo_id: &str,
    revision: &str,
    mut component: ComponentSelection,
) -> Result<Vec<PlanFile>> {
    let (repo, commit) = {
        let state = cx.hub_repo(repo_id, revision).await?;
        (state.repo.clone(), state.commit.clone())
    };
    let variant = match &component.kind {
        select::ComponentKind::Model { variant, .. } => variant.clone(),
        _ => None,
    };
    if let Some(index) = component.index.clone() {
        let bytes = cx.read_hub_file(&repo, &commit, &index.repo_path).await?;
        let shards = select::shards_from_index(&bytes)?;
        let state = cx.hub_repo(repo_id, revision).await?;
        component.add_shards(&state.listing, &shards)?;
    }
    let state = cx.hub_repo(repo_id, revision).await?;
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

/// Whether a component of `model_index.json` is listed with a library (it can be selected).
pub(crate) fn library_of(model_index: &ModelIndex, name: &str) -> Option<String> {
    match model_index.components.get(name) {
        Some(ComponentEntry::Present { library, .. }) => Some(library.clone()),
        _ => None,
    }
}
