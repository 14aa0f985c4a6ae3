//! The cache root and one repo folder inside it: paths, refs, lookups and snapshot pointers.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::names::{
    RepoType, is_commit_hash, join_repo_path, random_suffix, validate_commit, validate_etag,
    validate_repo_id, validate_repo_path, validate_revision,
};

/// The exact content of `CACHEDIR.TAG`, byte for byte as huggingface_hub writes it.
pub const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by huggingface_hub.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";

/// Whether snapshot entries may be symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SymlinkMode {
    /// Probe once per cache directory whether a relative symlink can be created there (as
    /// huggingface_hub's `are_symlinks_supported`), and copy blobs into snapshots if not.
    #[default]
    Auto,
    /// Never create symlinks; snapshots hold copies (`HF_HUB_DISABLE_SYMLINKS=1`).
    Disabled,
}

/// Options of a [`HfCache`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheOptions {
    /// Whether snapshots use symlinks.
    pub symlinks: SymlinkMode,
    /// How long [`CacheRepo::lock`] waits for another process before proceeding without the lock.
    pub lock_timeout: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            symlinks: SymlinkMode::Auto,
            lock_timeout: Duration::from_secs(600),
        }
    }
}

impl CacheOptions {
    /// Options with the given symlink mode and default everything else.
    pub fn with_symlinks(symlinks: SymlinkMode) -> Self {
        CacheOptions {
            symlinks,
            ..CacheOptions::default()
        }
    }

    /// Sets how long a blocking lock waits before giving up on the lock (not on the download).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }
}

/// A Hugging Face hub cache directory (`$HF_HUB_CACHE`, usually `~/.cache/huggingface/hub`).
///
/// Cheap to clone; clones share the symlink probe result.
#[derive(Debug, Clone)]
pub struct HfCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    options: CacheOptions,
    symlinks_supported: OnceLock<bool>,
}

/// Symlink probe results per cache root, shared by every `HfCache` of the process, so that the probe
/// runs once per directory as in huggingface_hub.
fn probe_results() -> &'static Mutex<HashMap<PathBuf, bool>> {
    static PROBES: OnceLock<Mutex<HashMap<PathBuf, bool>>> = OnceLock::new();
    PROBES.get_or_init(|| Mutex::new(HashMap::new()))
}

impl HfCache {
    /// A cache rooted at `root`, with default options. Nothing is touched on disk.
    pub fn new(root: impl Into<PathBuf>) -> HfCache {
        HfCache::with_options(root, CacheOptions::default())
    }

    /// A cache rooted at `root` with explicit options. Nothing is touched on disk.
    pub fn with_options(root: impl Into<PathBuf>, options: CacheOptions) -> HfCache {
        HfCache {
            inner: Arc::new(Inner {
                root: root.into(),
                options,
                symlinks_supported: OnceLock::new(),
            }),
        }
    }

    /// The cache root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The options this cache was built with.
    pub fn options(&self) -> &CacheOptions {
        &self.inner.options
    }

    /// The folder of one repo. Validates the repo id; touches nothing on disk.
    pub fn repo(&self, repo_type: RepoType, repo_id: &str) -> Result<CacheRepo> {
        validate_repo_id(repo_id)?;
        let folder = repo_folder_name(repo_type, repo_id);
        Ok(CacheRepo {
            path: self.inner.root.join(&folder),
            cache: self.clone(),
            repo_type,
            repo_id: repo_id.to_owned(),
            folder,
        })
    }

    /// Writes `CACHEDIR.TAG` at the root if it is missing. Errors are ignored, as in
    /// huggingface_hub: the tag only helps backup tools.
    pub fn ensure_cachedir_tag(&self) {
        let path = self.inner.root.join("CACHEDIR.TAG");
        if fs::symlink_metadata(&path).is_ok() {
            return;
        }
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(CACHEDIR_TAG.as_bytes()));
        if let Err(e) = written {
            tracing::debug!(path = %path.display(), error = %e, "could not write CACHEDIR.TAG");
        }
    }

    /// Whether snapshot pointers are symlinks in this cache (probing the directory on first use).
    pub fn symlinks_supported(&self) -> bool {
        match self.inner.options.symlinks {
            SymlinkMode::Disabled => false,
            SymlinkMode::Auto => *self
                .inner
                .symlinks_supported
                .get_or_init(|| probe_symlinks(&self.inner.root)),
        }
    }
}

/// The folder name of a repo: `models--org--name`, `datasets--name`, ...
pub fn repo_folder_name(repo_type: RepoType, repo_id: &str) -> String {
    let mut name = repo_type.folder_prefix().to_owned();
    for part in repo_id.split('/') {
        name.push_str("--");
        name.push_str(part);
    }
    name
}

/// Creates a relative symlink in `root` and reports whether that worked. The answer is memoised per
/// directory for the whole process.
fn probe_symlinks(root: &Path) -> bool {
    let key = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if let Some(known) = probe_results()
        .lock()
        .ok()
        .and_then(|m| m.get(&key).copied())
    {
        return known;
    }
    if let Err(e) = fs::create_dir_all(root) {
        // Without a directory there is nothing to probe; assume symlinks and let the real
        // operation report the error. The answer is not memoised.
        tracing::debug!(root = %root.display(), error = %e, "cannot create cache root to probe symlinks");
        return true;
    }
    let link = root.join(format!(".symlink-probe.{}.tmp", random_suffix()));
    let supported = match make_symlink(Path::new("dummy_file_src"), &link) {
        Ok(()) => {
            let _ = fs::remove_file(&link);
            true
        }
        Err(e) => {
            tracing::warn!(
                root = %root.display(),
                error = %e,
                "symlinks are not supported in the cache directory; snapshots will hold copies of blobs"
            );
            false
        }
    };
    if let Ok(mut map) = probe_results().lock() {
        map.insert(key, supported);
    }
    supported
}

#[cfg(unix)]
pub(crate) fn make_symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
pub(crate) fn make_symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(not(any(unix, windows)))]
pub(crate) fn make_symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are not supported on this platform",
    ))
}

/// The result of a cache lookup, with `try_to_load_from_cache` semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// The file is in the snapshot; the path is the snapshot pointer (not the blob).
    Found(PathBuf),
    /// The cache records that the file does not exist at this commit (`.no_exist` marker).
    NoExist,
    /// The cache knows nothing about this file at this revision.
    Missing,
}

/// What is on disk at a snapshot pointer, as seen by stat calls only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileState {
    /// A regular file (possibly through a symlink) of the expected size.
    Ok {
        /// The snapshot pointer path.
        path: PathBuf,
        /// The file size.
        size: u64,
    },
    /// Nothing at the pointer path (or something that is not a file, such as a directory).
    Missing,
    /// A symlink whose blob is gone.
    Dangling,
    /// A file whose size differs from the expected one.
    WrongSize {
        /// The size found on disk.
        actual: u64,
    },
}

/// One repo folder of the cache (`{root}/models--org--name`).
#[derive(Debug, Clone)]
pub struct CacheRepo {
    pub(crate) cache: HfCache,
    pub(crate) repo_type: RepoType,
    pub(crate) repo_id: String,
    pub(crate) folder: String,
    pub(crate) path: PathBuf,
}

impl CacheRepo {
    /// The repo folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The repo type.
    pub fn repo_type(&self) -> RepoType {
        self.repo_type
    }

    /// The repo id (`org/name`).
    pub fn repo_id(&self) -> &str {
        &self.repo_id
    }

    /// The folder name (`models--org--name`).
    pub fn folder_name(&self) -> &str {
        &self.folder
    }

    /// The cache this repo belongs to.
    pub fn cache(&self) -> &HfCache {
        &self.cache
    }

    /// `blobs/`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.path.join("blobs")
    }

    /// `blobs/{etag}`; the etag must be 40 or 64 hex characters.
    pub fn blob_path(&self, etag: &str) -> Result<PathBuf> {
        Ok(self.blobs_dir().join(validate_etag(etag)?))
    }

    /// `snapshots/{commit}`; the commit must be a full hash.
    pub fn snapshot_dir(&self, commit: &str) -> Result<PathBuf> {
        Ok(self.path.join("snapshots").join(validate_commit(commit)?))
    }

    /// `snapshots/{commit}/{repo_path}`, the path users open.
    pub fn pointer_path(&self, commit: &str, repo_path: &str) -> Result<PathBuf> {
        let dir = self.snapshot_dir(commit)?;
        Ok(join_repo_path(&dir, validate_repo_path(repo_path)?))
    }

    /// `refs/{revision}`.
    pub fn ref_path(&self, revision: &str) -> Result<PathBuf> {
        Ok(join_repo_path(
            &self.path.join("refs"),
            validate_revision(revision)?,
        ))
    }

    /// `.no_exist/{commit}/{repo_path}`.
    pub fn no_exist_path(&self, commit: &str, repo_path: &str) -> Result<PathBuf> {
        let dir = self.path.join(".no_exist").join(validate_commit(commit)?);
        Ok(join_repo_path(&dir, validate_repo_path(repo_path)?))
    }

    /// `trees/{commit}.json`.
    pub fn tree_path(&self, commit: &str) -> Result<PathBuf> {
        Ok(self
            .path
            .join("trees")
            .join(format!("{}.json", validate_commit(commit)?)))
    }

    /// `{root}/.locks/{repo folder}/{etag}.lock`.
    pub fn lock_path(&self, etag: &str) -> Result<PathBuf> {
        Ok(self
            .locks_dir()
            .join(format!("{}.lock", validate_etag(etag)?)))
    }

    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.cache.root().join(".locks").join(&self.folder)
    }

    /// Creates `blobs/`, `snapshots/` and `refs/` and the cache root's `CACHEDIR.TAG`.
    ///
    /// `snapshots/` must exist even for a repo that only has `.no_exist` markers, otherwise
    /// `scan_cache_dir` reports the repo as corrupted.
    pub fn ensure_layout(&self) -> Result<()> {
        for dir in ["blobs", "snapshots", "refs"] {
            let path = self.path.join(dir);
            fs::create_dir_all(&path).ctx("create directory", &path)?;
        }
        self.cache.ensure_cachedir_tag();
        Ok(())
    }

    /// Reads `refs/{revision}` raw, as huggingface_hub does, and checks it names a commit.
    ///
    /// Returns `Ok(None)` if there is no such ref. Content with anything besides the 40 hex
    /// characters (a trailing newline included) is reported as [`Error::CorruptRef`]: Python would
    /// look for a snapshot named with the newline and fail.
    pub fn read_ref(&self, revision: &str) -> Result<Option<String>> {
        let path = self.ref_path(revision)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // A directory (`refs/refs` when asked for `refs`) is not a ref either.
            Err(_) if path.is_dir() => return Ok(None),
            Err(e) => return Err(Error::io("read ref", path, e)),
        };
        match String::from_utf8(bytes) {
            Ok(content) if is_commit_hash(&content) => Ok(Some(content)),
            Ok(content) => Err(Error::CorruptRef {
                path,
                content: content.chars().take(100).collect(),
            }),
            Err(e) => Err(Error::CorruptRef {
                path,
                content: String::from_utf8_lossy(e.as_bytes())
                    .chars()
                    .take(100)
                    .collect(),
            }),
        }
    }

    /// Records that `revision` points at `commit` in `refs/{revision}`.
    ///
    /// Does nothing if `revision` is itself a commit hash or the ref already holds `commit`
    /// (a read-only cache then works). Otherwise writes `refs/{revision}.{rand}.tmp` and renames it
    /// over the ref, so readers never see a partial ref. Returns whether the file was written.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<bool> {
        validate_commit(commit)?;
        if is_commit_hash(revision) {
            return Ok(false);
        }
        let path = self.ref_path(revision)?;
        if fs::read(&path).is_ok_and(|current| current == commit.as_bytes()) {
            return Ok(false);
        }
        let parent = path.parent().unwrap_or(&self.path);
        fs::create_dir_all(parent).ctx("create directory", parent)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!("{name}.{}.tmp", random_suffix()));
        let written = fs::write(&tmp, commit.as_bytes())
            .ctx("write temporary ref", &tmp)
            .and_then(|()| fs::rename(&tmp, &path).ctx("rename temporary ref to", &path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| true)
    }

    /// The commit a revision designates in the cache: a commit hash is itself; a branch or tag
    /// is the content of its ref. `Ok(None)` if there is no ref.
    pub fn resolve_revision(&self, revision: &str) -> Result<Option<String>> {
        if is_commit_hash(revision) {
            return Ok(Some(revision.to_owned()));
        }
        self.read_ref(revision)
    }

    /// Looks up a file with the semantics of huggingface_hub's `try_to_load_from_cache`.
    ///
    /// The revision is resolved through `refs/` if such a ref exists; a `.no_exist` marker gives
    /// [`Lookup::NoExist`]; otherwise the file must be a regular file (through its symlink) in
    /// exactly that snapshot. There is no fallback to another snapshot. A corrupt ref is treated
    /// like Python does (no snapshot has that name): [`Lookup::Missing`].
    pub fn lookup(&self, revision: &str, repo_path: &str) -> Result<Lookup> {
        validate_repo_path(repo_path)?;
        let commit = if is_commit_hash(revision) {
            revision.to_owned()
        } else {
            match self.read_ref(revision) {
                Ok(Some(commit)) => commit,
                Ok(None) => return Ok(Lookup::Missing),
                Err(Error::CorruptRef { path, content }) => {
                    tracing::warn!(path = %path.display(), ?content, "ignoring corrupt ref");
                    return Ok(Lookup::Missing);
                }
                Err(e) => return Err(e),
            }
        };
        if self.no_exist_path(&commit, repo_path)?.is_file() {
            return Ok(Lookup::NoExist);
        }
        let pointer = self.pointer_path(&commit, repo_path)?;
        if pointer.is_file() {
            Ok(Lookup::Found(pointer))
        } else {
            Ok(Lookup::Missing)
        }
    }

    /// Records that `repo_path` does not exist at `commit` (an empty `.no_exist/{commit}/{path}`).
    /// Also creates `snapshots/` so the repo stays valid for `scan_cache_dir`.
    pub fn mark_no_exist(&self, commit: &str, repo_path: &str) -> Result<PathBuf> {
        let path = self.no_exist_path(commit, repo_path)?;
        let snapshots = self.path.join("snapshots");
        fs::create_dir_all(&snapshots).ctx("create directory", &snapshots)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).ctx("create directory", parent)?;
        }
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx("create marker", &path)?;
        Ok(path)
    }

    /// Whether `blobs/{etag}` is a regular file (following a symlink into huggingface_hub's
    /// shared blob store). An invalid etag is never present.
    pub fn has_blob(&self, etag: &str) -> bool {
        self.blob_path(etag)
            .is_ok_and(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
    }

    /// Points `snapshots/{commit}/{repo_path}` at `blobs/{etag}` and returns the pointer path.
    ///
    /// The pointer is a relative symlink (`../../blobs/{etag}`, one more `../` per subfolder) so
    /// the cache can be moved. It is created under a temporary name and renamed over any existing
    /// entry, so the pointer path never disappears for a reader. When symlinks are unsupported
    /// (see [`SymlinkMode`]) or refused by the filesystem, the blob is hard-linked (or, failing
    /// that, copied) into place instead, again through a temporary name and a rename; Python
    /// accepts any regular file there.
    pub fn link_snapshot(&self, commit: &str, repo_path: &str, etag: &str) -> Result<PathBuf> {
        let pointer = self.pointer_path(commit, repo_path)?;
        let blob = self.blob_path(etag)?;
        let parent = pointer.parent().unwrap_or(&self.path);
        fs::create_dir_all(parent).ctx("create directory", parent)?;
        let name = pointer
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.{}.tmp", random_suffix()));

        if self.cache.symlinks_supported() {
            let depth = repo_path.split('/').count() + 1;
            let mut target = PathBuf::new();
            for _ in 0..depth {
                target.push("..");
            }
            target.push("blobs");
            target.push(etag);
            match make_symlink(&target, &tmp) {
                Ok(()) => {
                    return match fs::rename(&tmp, &pointer) {
                        Ok(()) => Ok(pointer),
                        Err(e) => {
                            let _ = fs::remove_file(&tmp);
                            Err(Error::io("rename symlink to", pointer, e))
                        }
                    };
                }
                // Windows reports a missing privilege (error 1314) as an uncategorised error, so
                // any failure falls back to a copy there.
                Err(e)
                    if cfg!(windows)
                        || matches!(
                            e.kind(),
                            io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
                        ) =>
                {
                    tracing::warn!(pointer = %pointer.display(), error = %e, "symlink refused; copying the blob instead");
                }
                Err(e) => return Err(Error::io("create symlink", tmp, e)),
            }
        }

        // Without symlinks, a hard link shares the blob's bytes without doubling the disk use
        // (NTFS allows it without the privilege symlinks need); a copy is the last resort.
        // Writing through it would change the blob, exactly as writing through a symlink would.
        let placed = fs::hard_link(&blob, &tmp)
            .or_else(|_| fs::copy(&blob, &tmp).map(drop))
            .ctx("copy blob to", &tmp)
            .and_then(|()| fs::rename(&tmp, &pointer).ctx("rename copied blob to", &pointer));
        // Renaming a hard link over another link to the same file succeeds without doing
        // anything (POSIX), which would leave the temporary name behind.
        let _ = fs::remove_file(&tmp);
        placed.map(|()| pointer)
    }

    /// Checks a snapshot pointer with stat calls only (no reading, no hashing).
    pub fn check_file(
        &self,
        commit: &str,
        repo_path: &str,
        expected_size: Option<u64>,
    ) -> Result<FileState> {
        let path = self.pointer_path(commit, repo_path)?;
        let link_meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileState::Missing),
            Err(e) => return Err(Error::io("inspect", path, e)),
        };
        let meta = if link_meta.file_type().is_symlink() {
            match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileState::Dangling),
                Err(e) => return Err(Error::io("inspect", path, e)),
            }
        } else {
            link_meta
        };
        if !meta.is_file() {
            return Ok(FileState::Missing);
        }
        let size = meta.len();
        match expected_size {
            Some(expected) if expected != size => Ok(FileState::WrongSize { actual: size }),
            _ => Ok(FileState::Ok { path, size }),
        }
    }
}
