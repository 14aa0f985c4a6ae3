//! Hub downloads: the equivalents of `hf_hub_download` and `snapshot_download`, with the same cache
//! semantics, plus what they lack: verification of every file, no request for what is cached at a
//! known commit, one connection budget, byte-level progress.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pipefetch_hub_cache::{CacheRepo, Lookup, TreeCache, TreeFile};
use pipefetch_hub_client::{Repo, is_commit_sha};
use serde::Serialize;

use crate::engine::{BlobJob, HubBlob, blocking};
use crate::error::{Error, Result};
use crate::patterns::PathFilter;
use crate::progress::Event;
use crate::verify::Expected;
use crate::{Fetcher, cache_repo_type};

/// One file to download, like `hf_hub_download`'s arguments.
#[derive(Debug, Clone)]
pub struct FileRequest {
    /// The repo.
    pub repo: Repo,
    /// The file's path in the repo (below `subfolder` when one is given).
    pub filename: String,
    /// An optional folder the filename is in.
    pub subfolder: Option<String>,
    /// A branch, tag or commit; `main` by default.
    pub revision: String,
    /// Download again even when cached.
    pub force_download: bool,
    /// Never use the network: answer from the cache or fail.
    pub local_files_only: bool,
}

impl FileRequest {
    /// A request for `filename` of `repo` at `main`.
    pub fn new(repo: Repo, filename: impl Into<String>) -> FileRequest {
        FileRequest {
            repo,
            filename: filename.into(),
            subfolder: None,
            revision: "main".to_string(),
            force_download: false,
            local_files_only: false,
        }
    }

    /// At this revision.
    pub fn revision(mut self, revision: impl Into<String>) -> FileRequest {
        self.revision = revision.into();
        self
    }

    /// The repo path, subfolder included.
    pub fn repo_path(&self) -> String {
        match self.subfolder.as_deref().map(|s| s.trim_matches('/')) {
            Some(sub) if !sub.is_empty() => format!("{sub}/{}", self.filename),
            _ => self.filename.clone(),
        }
    }
}

/// A partial or whole snapshot to download, like `snapshot_download`'s arguments.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    /// The repo.
    pub repo: Repo,
    /// A branch, tag or commit; `main` by default.
    pub revision: String,
    /// fnmatch patterns of files to include (all when empty).
    pub allow_patterns: Vec<String>,
    /// fnmatch patterns of files to leave out.
    pub ignore_patterns: Vec<String>,
    /// Download again even when cached.
    pub force_download: bool,
    /// Never use the network.
    pub local_files_only: bool,
}

impl SnapshotRequest {
    /// All of `repo` at `main`.
    pub fn new(repo: Repo) -> SnapshotRequest {
        SnapshotRequest {
            repo,
            revision: "main".to_string(),
            allow_patterns: Vec::new(),
            ignore_patterns: Vec::new(),
            force_download: false,
            local_files_only: false,
        }
    }
}

/// A snapshot in the cache.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The commit it is at.
    pub commit: String,
    /// `…/snapshots/<commit>`: the folder to load from.
    pub path: PathBuf,
    /// The files selected, in path order.
    pub files: Vec<SnapshotFile>,
    /// Bytes that crossed the network.
    pub downloaded_bytes: u64,
}

/// One file of a [`Snapshot`].
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotFile {
    /// Its repo path.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Whether it was already cached.
    pub cached: bool,
}

/// What the listing says of one file: enough to download and verify it without a HEAD.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) size: u64,
    pub(crate) etag: String,
}

impl Listed {
    fn from_tree(file: &TreeFile) -> Listed {
        match (&file.lfs_sha256, file.lfs_size) {
            (Some(sha), Some(size)) => Listed {
                size,
                etag: sha.clone(),
            },
            _ => Listed {
                size: file.size,
                etag: file.blob_id.clone(),
            },
        }
    }
}

impl Fetcher {
    /// Downloads one file into the cache (unless it is there) and returns its snapshot path, like
    /// `hf_hub_download`. A file cached at a commit costs no request at all.
    pub async fn download_file(&self, req: &FileRequest) -> Result<PathBuf> {
        let path = req.repo_path();
        pipefetch_hub_cache::validate_repo_path(&path)?;
        let repo = self.cache_repo(&req.repo)?;
        let offline = self.is_offline() || req.local_files_only;

        // A commit is immutable: if its pointer exists, we are done without asking anyone.
        if is_commit_sha(&req.revision) && !req.force_download {
            let (r, rev, p) = (repo.clone(), req.revision.clone(), path.clone());
            if let Lookup::Found(found) = blocking(move || Ok(r.lookup(&rev, &p)?)).await? {
                return Ok(found);
            }
        }
        if offline {
            return self.cached_or(&repo, req, &path, None).await;
        }

        let metadata = match self
            .client
            .file_metadata(&req.repo, &req.revision, &path)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                if let pipefetch_hub_client::Error::EntryNotFound {
                    commit: Some(commit),
                    ..
                } = &e
                {
                    // Remember the miss like huggingface_hub does, so offline lookups answer at once.
                    let (r, c, p, rev) = (
                        repo.clone(),
                        commit.clone(),
                        path.clone(),
                        req.revision.clone(),
                    );
                    let _ = blocking(move || {
                        r.ensure_layout()?;
                        r.mark_no_exist(&c, &p)?;
                        r.write_ref(&rev, &c)?;
                        Ok(())
                    })
                    .await;
                }
                let context = format!(
                    "{}: could not get `{path}` at revision `{}`",
                    req.repo.id, req.revision
                );
                // Like huggingface_hub: when the Hub cannot be reached (or refuses), a cached copy
                // still answers; errors that say "this does not exist" are never masked.
                if e.is_network() || matches!(e, pipefetch_hub_client::Error::RateLimited { .. }) {
                    return self
                        .cached_or(&repo, req, &path, Some(Error::hub(context, e)))
                        .await;
                }
                return Err(Error::hub(context, e));
            }
        };

        let commit = metadata.commit.clone();
        let etag = metadata.etag.clone();
        record_ref(&repo, &req.revision, &commit).await?;

        let (r, c, p) = (repo.clone(), commit.clone(), path.clone());
        if !req.force_download
            && let Lookup::Found(found) = blocking(move || Ok(r.lookup(&c, &p)?)).await?
        {
            return Ok(found);
        }

        let url = metadata.location.clone();
        let job = BlobJob {
            file: 0,
            source: req.repo.id.to_string(),
            path: path.clone(),
            url: url.clone(),
            direct_url: Some(url),
            auth: self.client.auth().cloned(),
            size: metadata.size,
            expected: Expected::from_etag(&etag),
            validator: None,
            dest: std::sync::Arc::new(HubBlob::new(repo.clone(), etag.clone())),
        };
        if req.force_download {
            let (r, e) = (repo.clone(), etag.clone());
            blocking(move || {
                if let Ok(p) = r.blob_path(&e) {
                    let _ = std::fs::remove_file(p);
                }
                Ok(())
            })
            .await?;
        }
        let engine = self.begin_run(1, job.size, 0, 0);
        // The file's own end (done or failed) is reported inside the run, so `Done` comes last.
        let work = async {
            let result = async {
                let downloaded = engine.fetch(&job).await?.downloaded;
                let (r, c, p, e) = (repo, commit, path, etag);
                let pointer = blocking(move || Ok(r.link_snapshot(&c, &p, &e)?)).await?;
                Ok((pointer, downloaded))
            }
            .await;
            match &result {
                Ok((_, downloaded)) => self.reporter.report(&Event::FileDone {
                    file: 0,
                    bytes: job.size,
                    downloaded: *downloaded,
                }),
                Err(e) => self.reporter.report(&Event::FileFailed {
                    file: 0,
                    error: crate::render_chain(e),
                }),
            }
            result.map(|(pointer, _)| pointer)
        };
        self.run_with_heartbeat(&engine, work).await
    }

    async fn cached_or(
        &self,
        repo: &CacheRepo,
        req: &FileRequest,
        path: &str,
        error: Option<Error>,
    ) -> Result<PathBuf> {
        let (r, rev, p) = (repo.clone(), req.revision.clone(), path.to_string());
        match blocking(move || Ok(r.lookup(&rev, &p)?)).await? {
            Lookup::Found(found) => {
                if let Some(e) = &error {
                    tracing::warn!("{e}; using the cached copy at {}", found.display());
                }
                Ok(found)
            }
            _ => Err(error.unwrap_or_else(|| {
                self.not_cached(
                    req.repo.id.to_string(),
                    req.revision.clone(),
                    path.to_string(),
                )
            })),
        }
    }

    /// Downloads the files of `req` that match its patterns and returns the snapshot folder, like
    /// `snapshot_download`. Requests: one to resolve a branch to its commit (none for a commit),
    /// the tree listing once per commit (cached in `trees/<commit>.json`), then only the files
    /// that are missing.
    pub async fn snapshot(&self, req: &SnapshotRequest) -> Result<Snapshot> {
        let repo = self.cache_repo(&req.repo)?;
        let filter = PathFilter::new(&req.allow_patterns, &req.ignore_patterns)?;
        let offline = self.is_offline() || req.local_files_only;

        let commit = self
            .resolve_commit(&repo, &req.repo, &req.revision, offline)
            .await?;
        let listing = self.listing(&repo, &req.repo, &commit, offline).await?;
        let selected: BTreeMap<String, Listed> = listing
            .into_iter()
            .filter(|(path, _)| filter.matches(path))
            .collect();
        for path in selected.keys() {
            pipefetch_hub_cache::validate_repo_path(path)?;
        }
        if !offline {
            record_ref(&repo, &req.revision, &commit).await?;
        }

        // What is already there: a pointer that resolves to a file, or a blob we can link.
        let (r, c, sel, force) = (
            repo.clone(),
            commit.clone(),
            selected.clone(),
            req.force_download,
        );
        let states = blocking(move || {
            let mut out = Vec::with_capacity(sel.len());
            for (path, listed) in &sel {
                let state = if force {
                    Presence::Missing
                } else if matches!(r.lookup(&c, path)?, Lookup::Found(_)) {
                    Presence::Linked
                } else if r.has_blob(&listed.etag) {
                    Presence::BlobOnly
                } else {
                    Presence::Missing
                };
                out.push(state);
            }
            Ok(out)
        })
        .await?;

        let mut files = Vec::with_capacity(selected.len());
        let mut jobs = Vec::new();
        let mut cached_bytes = 0;
        let mut cached_files = 0;
        for (index, ((path, listed), state)) in selected.iter().zip(&states).enumerate() {
            let cached = !matches!(state, Presence::Missing);
            if cached {
                cached_bytes += listed.size;
                cached_files += 1;
            }
            files.push(SnapshotFile {
                path: path.clone(),
                size: listed.size,
                cached,
            });
            match state {
                Presence::Linked => {}
                Presence::BlobOnly => jobs.push((index, path.clone(), listed.clone(), false)),
                Presence::Missing => jobs.push((index, path.clone(), listed.clone(), true)),
            }
        }
        let missing: Vec<_> = jobs.iter().filter(|j| j.3).collect();
        if offline && !missing.is_empty() {
            return Err(self.not_cached(
                req.repo.id.to_string(),
                req.revision.clone(),
                missing
                    .iter()
                    .map(|j| j.1.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }

        let total: u64 = selected.values().map(|l| l.size).sum();
        let engine = self.begin_run(selected.len() as u64, total, cached_files, cached_bytes);

        let mut set = tokio::task::JoinSet::new();
        for (index, path, listed, download) in jobs {
            let fetcher = self.clone();
            let engine = engine.clone();
            let repo = repo.clone();
            let commit = commit.clone();
            let hub_repo = req.repo.clone();
            set.spawn(async move {
                let id = index as u64;
                let result = async {
                    let mut downloaded = 0;
                    if download {
                        let job = fetcher
                            .hub_job(&engine, id, &hub_repo, &repo, &commit, &path, &listed)
                            .await?;
                        downloaded = engine.fetch(&job).await?.downloaded;
                    }
                    let (r, c, p, e) = (repo, commit, path.clone(), listed.etag.clone());
                    blocking(move || Ok(r.link_snapshot(&c, &p, &e)?)).await?;
                    Ok::<u64, Error>(downloaded)
                }
                .await;
                match &result {
                    Ok(downloaded) => engine.reporter().report(&Event::FileDone {
                        file: id,
                        bytes: listed.size,
                        downloaded: *downloaded,
                    }),
                    Err(e) => engine.reporter().report(&Event::FileFailed {
                        file: id,
                        error: crate::render_chain(e),
                    }),
                }
                result
            });
        }
        let downloaded_bytes = self
            .run_with_heartbeat(&engine, crate::join_transfers(set))
            .await?;
        let path = repo.snapshot_dir(&commit)?;
        if selected.is_empty() {
            let p = path.clone();
            blocking(move || std::fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e)))
                .await?;
        }
        Ok(Snapshot {
            commit,
            path,
            files,
            downloaded_bytes,
        })
    }

    /// The job for one Hub file at a commit. Big files get their final (CDN) location first, with
    /// one HEAD, so that their ranges go straight there instead of through the resolver.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn hub_job(
        &self,
        engine: &crate::engine::Engine,
        id: u64,
        hub_repo: &Repo,
        repo: &CacheRepo,
        commit: &str,
        path: &str,
        listed: &Listed,
    ) -> Result<BlobJob> {
        let url = pipefetch_hub_client::resolve_url(self.client.endpoint(), hub_repo, commit, path)
            .map_err(|e| Error::hub(format!("{}: bad path `{path}`", hub_repo.id), e))?;
        let mut direct_url = None;
        if self.settings.splits(listed.size) {
            // A metadata request: under the API host's own small budget, not the CDN's.
            let _api = engine.api_permit().await?;
            let meta = engine
                .client()
                .file_metadata(hub_repo, commit, path)
                .await
                .map_err(|e| {
                    Error::hub(
                        format!("{}: could not locate `{path}` at {commit}", hub_repo.id),
                        e,
                    )
                })?;
            direct_url = Some(meta.location);
        }
        Ok(BlobJob {
            file: id,
            source: hub_repo.id.to_string(),
            path: path.to_string(),
            url,
            direct_url,
            auth: self.client.auth().cloned(),
            size: listed.size,
            expected: Expected::from_etag(&listed.etag),
            validator: None,
            dest: std::sync::Arc::new(HubBlob::new(repo.clone(), listed.etag.clone())),
        })
    }

    /// A revision's commit: itself when it is one, else from the Hub (or, offline, from `refs/`).
    pub(crate) async fn resolve_commit(
        &self,
        repo: &CacheRepo,
        hub_repo: &Repo,
        revision: &str,
        offline: bool,
    ) -> Result<String> {
        if is_commit_sha(revision) {
            return Ok(revision.to_string());
        }
        let from_refs = || {
            let (r, rev) = (repo.clone(), revision.to_string());
            blocking(move || Ok(r.resolve_revision(&rev)?))
        };
        if offline {
            return from_refs().await?.ok_or_else(|| {
                self.not_cached(
                    hub_repo.id.to_string(),
                    revision.to_string(),
                    "*".to_string(),
                )
            });
        }
        match self.client.repo_info(hub_repo, revision).await {
            Ok(info) => Ok(info.sha),
            Err(e) if e.is_network() => match from_refs().await? {
                Some(commit) => {
                    tracing::warn!(
                        "{}: the Hub is unreachable ({e}); using cached revision {revision} = {commit}",
                        hub_repo.id
                    );
                    Ok(commit)
                }
                None => Err(Error::hub(
                    format!("{}: could not resolve revision `{revision}`", hub_repo.id),
                    e,
                )),
            },
            Err(e) => Err(Error::hub(
                format!("{}: could not resolve revision `{revision}`", hub_repo.id),
                e,
            )),
        }
    }

    /// The repo's files at `commit`: from `trees/<commit>.json` when cached, else listed once (all
    /// pages) and cached for next time.
    pub(crate) async fn listing(
        &self,
        repo: &CacheRepo,
        hub_repo: &Repo,
        commit: &str,
        offline: bool,
    ) -> Result<BTreeMap<String, Listed>> {
        let (r, c) = (repo.clone(), commit.to_string());
        if let Some(tree) = blocking(move || Ok(r.read_tree(&c)?)).await? {
            return Ok(tree
                .files
                .iter()
                .map(|(p, f)| (p.clone(), Listed::from_tree(f)))
                .collect());
        }
        if offline {
            return Err(self.not_cached(
                hub_repo.id.to_string(),
                commit.to_string(),
                format!("trees/{commit}.json (the file list)"),
            ));
        }
        let entries = self
            .client
            .list_tree(hub_repo, commit, None, true)
            .await
            .map_err(|e| {
                Error::hub(
                    format!("{}: could not list files at {commit}", hub_repo.id),
                    e,
                )
            })?;
        let mut tree = TreeCache::default();
        for entry in entries
            .iter()
            .filter(|e| matches!(e.kind, pipefetch_hub_client::EntryKind::File))
        {
            tree.files.insert(
                entry.path.clone(),
                TreeFile {
                    size: entry.size,
                    blob_id: entry.oid.clone(),
                    lfs_sha256: entry.lfs.as_ref().map(|l| l.sha256.clone()),
                    lfs_size: entry.lfs.as_ref().map(|l| l.size),
                    xet_hash: entry.xet_hash.clone(),
                },
            );
        }
        let out = tree
            .files
            .iter()
            .map(|(p, f)| (p.clone(), Listed::from_tree(f)))
            .collect();
        let (r, c) = (repo.clone(), commit.to_string());
        blocking(move || {
            r.ensure_layout()?;
            Ok(r.write_tree(&c, &tree)?)
        })
        .await?;
        Ok(out)
    }

    /// The error for something the cache lacks while the network is off limits.
    fn not_cached(
        &self,
        repo: impl ToString,
        revision: impl ToString,
        path: impl ToString,
    ) -> Error {
        Error::NotCached {
            repo: repo.to_string(),
            revision: revision.to_string(),
            path: path.to_string(),
            cache: self.cache.root().to_path_buf(),
            why: if self.is_offline() {
                "offline mode"
            } else {
                "local files only"
            },
        }
    }

    pub(crate) fn cache_repo(&self, repo: &Repo) -> Result<CacheRepo> {
        Ok(self
            .cache
            .repo(cache_repo_type(repo.repo_type), repo.id.as_str())?)
    }
}

/// Creates the repo's folders and records `revision → commit` in `refs/` (atomic; nothing when the
/// revision is the commit itself).
pub(crate) async fn record_ref(repo: &CacheRepo, revision: &str, commit: &str) -> Result<()> {
    let (r, rev, c) = (repo.clone(), revision.to_string(), commit.to_string());
    blocking(move || {
        r.ensure_layout()?;
        r.write_ref(&rev, &c)?;
        Ok(())
    })
    .await
}

#[derive(Debug, Clone, Copy)]
enum Presence {
    Linked,
    BlobOnly,
    Missing,
}
