//! Listing the cache, with the semantics (and warning messages) of huggingface_hub's
//! `scan_cache_dir`.
//!
//! Only `read_dir`, `symlink_metadata`, `metadata` and `read_link` are used, plus reading the tiny
//! ref files: no blob is opened. Each blob is stat-ed once even if many snapshots point at it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use crate::cache::HfCache;
use crate::error::{Error, IoContext, Result};
use crate::names::RepoType;

/// Names that operating systems drop into folders; skipped everywhere, as in huggingface_hub.
const FILES_TO_IGNORE: [&str; 3] = [".DS_Store", "Thumbs.db", "desktop.ini"];

/// The marker of huggingface_hub's (≥ 2.x) cache-wide shared blob store at `{root}/blobs/`.
const SHARED_BLOBS_MARKER: &str = ".huggingface-shared-blobs";

/// The result of [`HfCache::scan`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheInfo {
    /// Valid repos, sorted by type then id.
    pub repos: Vec<CachedRepo>,
    /// One warning per corrupted repo (which is then left out of `repos`), sorted by path.
    pub warnings: Vec<CacheWarning>,
    /// Bytes used by all distinct blobs of all valid repos.
    pub size_on_disk: u64,
}

/// One valid repo folder.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CachedRepo {
    /// The repo type, from the folder prefix.
    pub repo_type: RepoType,
    /// The repo id, from the folder name (`--` becomes `/`).
    pub repo_id: String,
    /// The repo folder.
    pub path: PathBuf,
    /// Bytes used by the distinct blobs the snapshots point at.
    pub size_on_disk: u64,
    /// Number of distinct blobs the snapshots point at.
    pub nb_files: usize,
    /// Snapshots, sorted by commit.
    pub revisions: Vec<CachedRevision>,
    /// Ref name (`main`, `refs/pr/1`) to commit.
    pub refs: BTreeMap<String, String>,
    /// `blobs/*.incomplete` files (interrupted or running downloads), sorted by path.
    pub incomplete: Vec<IncompleteFile>,
    /// Latest access time of a blob, or of the folder when it has no blob.
    pub last_accessed: Option<SystemTime>,
    /// Latest modification time of a blob, or of the folder when it has no blob.
    pub last_modified: Option<SystemTime>,
}

/// One snapshot folder.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CachedRevision {
    /// The commit hash (the folder name).
    pub commit: String,
    /// The refs pointing at it, sorted.
    pub refs: Vec<String>,
    /// The files, sorted by repo path.
    pub files: Vec<CachedFile>,
    /// Bytes used by the distinct blobs of this snapshot.
    pub size_on_disk: u64,
}

/// One file of a snapshot.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CachedFile {
    /// The repo path (`unet/config.json`).
    pub path: String,
    /// Where the bytes are: the symlink target (made absolute, one hop), or the file itself.
    pub blob_path: PathBuf,
    /// The blob size.
    pub size: u64,
}

/// A partial download found in `blobs/`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IncompleteFile {
    /// The `.incomplete` file.
    pub path: PathBuf,
    /// Its current size.
    pub size: u64,
}

/// Why a repo folder was left out of the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheWarningKind {
    /// A file (not a folder) at the cache root.
    NotADirectory,
    /// A folder name without `--`.
    BadFolderName,
    /// A folder prefix that is not a known repo type.
    BadRepoType,
    /// No `snapshots/` folder.
    MissingSnapshots,
    /// `refs` is a file.
    RefsIsAFile,
    /// A file directly inside `snapshots/`.
    FileInSnapshots,
    /// A snapshot entry whose target does not exist.
    BlobMissing,
    /// Refs naming commits that have no snapshot.
    RefsToMissingCommits,
    /// The folder could not be read.
    Unreadable,
}

/// A corrupted repo folder, with huggingface_hub's exact `CorruptedCacheException` message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheWarning {
    /// What is wrong.
    pub kind: CacheWarningKind,
    /// The repo folder (or cache root entry) concerned.
    pub path: PathBuf,
    /// The message Python prints for the same problem.
    pub message: String,
}

impl std::fmt::Display for CacheWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl HfCache {
    /// Lists the cache like huggingface_hub's `scan_cache_dir`.
    ///
    /// Top-level `.locks`, `CACHEDIR.TAG`, OS helper files and a marked shared blob store are
    /// skipped. Every other entry must be a valid repo folder; each invalid one becomes a
    /// [`CacheWarning`] carrying Python's message, and is left out of `repos`.
    pub fn scan(&self) -> Result<CacheInfo> {
        let root = canonical_root(self.root())?;
        let entries = fs::read_dir(&root).ctx("list", &root)?;
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry.ctx("list", &root)?.file_name());
        }
        names.sort();

        let mut repos = Vec::new();
        let mut warnings = Vec::new();
        let mut candidates = Vec::new();
        for name in names {
            let Some(name_str) = name.to_str() else {
                let path = root.join(&name);
                warnings.push(warning(
                    CacheWarningKind::BadFolderName,
                    &path,
                    format!(
                        "Repo path is not a valid HuggingFace cache directory: {}",
                        path.display()
                    ),
                ));
                continue;
            };
            if FILES_TO_IGNORE.contains(&name_str)
                || name_str == ".locks"
                || name_str == "CACHEDIR.TAG"
            {
                continue;
            }
            let path = root.join(&name);
            if name_str == "blobs" && is_shared_blobs_dir(&path) {
                continue;
            }
            candidates.push((path, name_str.to_string()));
        }
        for result in scan_repos(&candidates) {
            match result {
                Ok(repo) => repos.push(repo),
                Err(w) => warnings.push(w),
            }
        }
        repos.sort_by(|a, b| (a.repo_type, &a.repo_id).cmp(&(b.repo_type, &b.repo_id)));

        // Paths are compared as raw strings: they are normalised already, and `Path`'s
        // component-wise hashing and ordering dominate the scan time otherwise.
        let mut seen = HashSet::new();
        let mut size_on_disk = 0;
        for repo in &repos {
            for file in repo.revisions.iter().flat_map(|r| &r.files) {
                if seen.insert(file.blob_path.as_os_str()) {
                    size_on_disk += file.size;
                }
            }
        }
        Ok(CacheInfo {
            repos,
            warnings,
            size_on_disk,
        })
    }
}

/// Scans each `(path, folder name)`, on a few threads when there are many: the time goes into
/// path lookups and `stat` calls in the kernel, which run in parallel. Results keep the input order.
fn scan_repos(candidates: &[(PathBuf, String)]) -> Vec<Result<CachedRepo, CacheWarning>> {
    /// Below this many repos a thread costs more than it saves.
    const REPOS_PER_THREAD: usize = 8;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(candidates.len().div_ceil(REPOS_PER_THREAD));
    if threads <= 1 {
        return candidates
            .iter()
            .map(|(path, name)| scan_repo(path, name))
            .collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<CachedRepo, CacheWarning>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((path, name)) = candidates.get(i) else {
                            return done;
                        };
                        done.push((i, scan_repo(path, name)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            // A worker only panics if scan_repo does; re-raise it here rather than lose repos.
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Python resolves the cache directory (`Path.resolve()`) before scanning, so its messages name
/// the resolved path; we do the same (except on Windows, where `canonicalize` adds a `\\?\` prefix).
fn canonical_root(root: &Path) -> Result<PathBuf> {
    let not_found = || Error::CacheNotFound {
        path: root.to_path_buf(),
    };
    if !fs::metadata(root).map_err(|_| not_found())?.is_dir() {
        return Err(not_found());
    }
    if cfg!(windows) {
        Ok(root.to_path_buf())
    } else {
        fs::canonicalize(root).ctx("resolve", root)
    }
}

fn is_shared_blobs_dir(path: &Path) -> bool {
    let marker = path.join(SHARED_BLOBS_MARKER);
    fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file())
        && fs::read(&marker).is_ok_and(|c| c == b"1\n")
}

fn warning(kind: CacheWarningKind, path: &Path, message: String) -> CacheWarning {
    CacheWarning {
        kind,
        path: path.to_path_buf(),
        message,
    }
}

/// Per-blob stat results, keyed by blob path.
struct BlobStat {
    size: u64,
    accessed: Option<SystemTime>,
    modified: Option<SystemTime>,
}

fn scan_repo(path: &Path, name: &str) -> Result<CachedRepo, CacheWarning> {
    let shown = path.display();
    let unreadable = |e: io::Error| {
        warning(
            CacheWarningKind::Unreadable,
            path,
            format!("Repo path could not be read: {shown} ({e})"),
        )
    };
    let repo_meta = match fs::metadata(path) {
        Ok(m) if m.is_dir() => m,
        _ => {
            return Err(warning(
                CacheWarningKind::NotADirectory,
                path,
                format!("Repo path is not a directory: {shown}"),
            ));
        }
    };
    let Some((prefix, rest)) = name.split_once("--") else {
        return Err(warning(
            CacheWarningKind::BadFolderName,
            path,
            format!("Repo path is not a valid HuggingFace cache directory: {shown}"),
        ));
    };
    let Some(repo_type) = RepoType::from_folder_prefix(prefix) else {
        let known: Vec<String> = RepoType::ALL
            .iter()
            .map(|t| format!("'{}'", t.folder_prefix()))
            .collect();
        return Err(warning(
            CacheWarningKind::BadRepoType,
            path,
            format!(
                "Repo type must be one of [{}], found `{prefix}` ({shown}).",
                known.join(", ")
            ),
        ));
    };
    let repo_id = rest.replace("--", "/");

    let snapshots = path.join("snapshots");
    if !fs::metadata(&snapshots).is_ok_and(|m| m.is_dir()) {
        return Err(warning(
            CacheWarningKind::MissingSnapshots,
            path,
            format!(
                "Snapshots dir doesn't exist in cached repo: {}",
                snapshots.display()
            ),
        ));
    }

    // Refs: every file under `refs/`, by its `/`-joined relative name.
    let refs_dir = path.join("refs");
    let mut refs_by_commit: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    match fs::metadata(&refs_dir) {
        Ok(m) if m.is_file() => {
            return Err(warning(
                CacheWarningKind::RefsIsAFile,
                path,
                format!("Refs directory cannot be a file: {}", refs_dir.display()),
            ));
        }
        Ok(m) if m.is_dir() => {
            let mut files = Vec::new();
            walk_files(&refs_dir, "", &mut files).map_err(unreadable)?;
            for WalkEntry {
                rel: ref_name,
                path: ref_path,
                symlink,
            } in files
            {
                let base = ref_name.rsplit('/').next().unwrap_or(&ref_name);
                if FILES_TO_IGNORE.contains(&base)
                    || (symlink && fs::metadata(&ref_path).is_ok_and(|m| m.is_dir()))
                {
                    continue;
                }
                let content = fs::read(&ref_path).map_err(unreadable)?;
                let content = String::from_utf8_lossy(&content).into_owned();
                refs_by_commit.entry(content).or_default().insert(ref_name);
            }
        }
        _ => {}
    }

    // Snapshots.
    // Keyed by the raw path string (see `HfCache::scan`).
    let mut blob_stats: HashMap<OsString, BlobStat> = HashMap::new();
    let mut revision_names = Vec::new();
    for entry in fs::read_dir(&snapshots).map_err(unreadable)? {
        revision_names.push(entry.map_err(unreadable)?.file_name());
    }
    revision_names.sort();
    let mut revisions = Vec::new();
    let mut refs = BTreeMap::new();
    for revision_name in revision_names {
        let revision_name_str = revision_name.to_string_lossy().into_owned();
        if FILES_TO_IGNORE.contains(&revision_name_str.as_str()) {
            continue;
        }
        let revision_path = snapshots.join(&revision_name);
        if fs::metadata(&revision_path).is_ok_and(|m| m.is_file()) {
            return Err(warning(
                CacheWarningKind::FileInSnapshots,
                path,
                format!(
                    "Snapshots folder corrupted. Found a file: {}",
                    revision_path.display()
                ),
            ));
        }
        let mut entries = Vec::new();
        walk_files(&revision_path, "", &mut entries).map_err(unreadable)?;
        entries.sort_by(|a, b| a.rel.cmp(&b.rel));
        let mut files = Vec::new();
        let mut revision_blobs = HashSet::new();
        for entry in entries {
            // Keep the first symlink hop, as Python does: a repo blob may itself point into the
            // shared store, and the repo-level blob is what deletion must consider.
            let blob_path = if entry.symlink {
                match fs::read_link(&entry.path) {
                    Ok(target) => {
                        normalize_lexically(&entry.path.parent().unwrap_or(path).join(target))
                    }
                    Err(e) => return Err(unreadable(e)),
                }
            } else {
                entry.path.clone()
            };
            let size = match blob_stats.get(blob_path.as_os_str()) {
                Some(stat) => stat.size,
                None => {
                    let meta = match fs::metadata(&blob_path) {
                        Ok(meta) => meta,
                        // A symlink to a missing directory is just as broken.
                        Err(_) => {
                            return Err(warning(
                                CacheWarningKind::BlobMissing,
                                path,
                                format!("Blob missing (broken symlink): {}", blob_path.display()),
                            ));
                        }
                    };
                    if meta.is_dir() {
                        // A symlink to a directory: Python's glob lists it and `is_dir()` skips it.
                        continue;
                    }
                    let size = meta.len();
                    blob_stats.insert(
                        blob_path.clone().into_os_string(),
                        BlobStat {
                            size,
                            accessed: meta.accessed().ok(),
                            modified: meta.modified().ok(),
                        },
                    );
                    size
                }
            };
            revision_blobs.insert(blob_path.clone().into_os_string());
            files.push(CachedFile {
                path: entry.rel,
                blob_path,
                size,
            });
        }
        let size_on_disk = revision_blobs
            .iter()
            .filter_map(|b| blob_stats.get(b))
            .map(|s| s.size)
            .sum();
        let revision_refs: Vec<String> = refs_by_commit
            .remove(&revision_name_str)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
        for r in &revision_refs {
            refs.insert(r.clone(), revision_name_str.clone());
        }
        revisions.push(CachedRevision {
            commit: revision_name_str,
            refs: revision_refs,
            files,
            size_on_disk,
        });
    }

    if !refs_by_commit.is_empty() {
        return Err(warning(
            CacheWarningKind::RefsToMissingCommits,
            path,
            format!(
                "Reference(s) refer to missing commit hashes: {} ({shown}).",
                python_refs_repr(&refs_by_commit)
            ),
        ));
    }

    let (last_accessed, last_modified) = if blob_stats.is_empty() {
        (repo_meta.accessed().ok(), repo_meta.modified().ok())
    } else {
        (
            blob_stats.values().filter_map(|s| s.accessed).max(),
            blob_stats.values().filter_map(|s| s.modified).max(),
        )
    };

    Ok(CachedRepo {
        repo_type,
        repo_id,
        path: path.to_path_buf(),
        size_on_disk: blob_stats.values().map(|s| s.size).sum(),
        nb_files: blob_stats.len(),
        revisions,
        refs,
        incomplete: scan_incomplete(&path.join("blobs")),
        last_accessed,
        last_modified,
    })
}

/// An entry found while walking a folder: its `/`-joined relative name, its path, and whether it is
/// a symlink (whose target may still turn out to be a directory).
struct WalkEntry {
    rel: String,
    path: PathBuf,
    symlink: bool,
}

/// Collects every entry under `dir` that is not a real directory, with its `/`-joined path
/// relative to `dir`. Symlinks are reported without being followed: callers stat their target
/// anyway, and skip it if it is a directory (as Python's `is_dir()` does), which saves one stat
/// per file.
fn walk_files(dir: &Path, prefix: &str, out: &mut Vec<WalkEntry>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            walk_files(&path, &rel, out)?;
        } else {
            out.push(WalkEntry {
                rel,
                path,
                symlink: file_type.is_symlink(),
            });
        }
    }
    Ok(())
}

/// `blobs/*.incomplete`, sorted by path.
fn scan_incomplete(blobs: &Path) -> Vec<IncompleteFile> {
    let Ok(entries) = fs::read_dir(blobs) else {
        return Vec::new();
    };
    let mut out: Vec<IncompleteFile> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        .filter_map(|e| {
            let path = e.path();
            let size = fs::metadata(&path).ok()?.len();
            Some(IncompleteFile { path, size })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// `os.path.abspath` without touching the disk: drops `.` and resolves `..` textually.
pub(crate) fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Python's `repr(dict(refs_by_hash))` for a `dict[str, set[str]]` (set items in sorted order;
/// Python's own order is hash-dependent when there are several).
fn python_refs_repr(refs: &BTreeMap<String, BTreeSet<String>>) -> String {
    let items: Vec<String> = refs
        .iter()
        .map(|(commit, names)| {
            let names: Vec<String> = names.iter().map(|n| python_str_repr(n)).collect();
            format!("{}: {{{}}}", python_str_repr(commit), names.join(", "))
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Python's `repr(str)`: single quotes unless the string holds `'` and no `"`.
pub(crate) fn python_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr() {
        assert_eq!(python_str_repr("main"), "'main'");
        assert_eq!(python_str_repr("a\nb"), "'a\\nb'");
        assert_eq!(python_str_repr("it's"), "\"it's\"");
        let mut refs = BTreeMap::new();
        refs.insert(
            "abc\n".to_owned(),
            BTreeSet::from(["main".to_owned(), "v1".to_owned()]),
        );
        assert_eq!(python_refs_repr(&refs), "{'abc\\n': {'main', 'v1'}}");
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(
            normalize_lexically(Path::new("/c/r/snapshots/x/a/../../../blobs/e")),
            PathBuf::from("/c/r/blobs/e")
        );
    }
}
