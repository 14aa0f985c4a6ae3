//! The view of a repository folder as a Hub repository: file list, git/LFS object ids, commit.
//!
//! The folder is branch `main`. Its commit id is derived from the content so that it changes
//! whenever a file changes and stays stable across processes. Hashes are expensive for big
//! files, so they are cached process-wide, keyed by `(path, size, mtime)`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use sha1::{Digest, Sha1};
use sha2::Sha256;

/// Extensions stored with Git LFS on the Hub (the default `.gitattributes` of a new repo).
const LFS_EXTENSIONS: &[&str] = &[
    "7z",
    "arrow",
    "bin",
    "bz2",
    "ckpt",
    "ftz",
    "gguf",
    "gz",
    "h5",
    "joblib",
    "mlmodel",
    "model",
    "msgpack",
    "npy",
    "npz",
    "onnx",
    "ot",
    "parquet",
    "pb",
    "pickle",
    "pkl",
    "pt",
    "pth",
    "rar",
    "safetensors",
    "tar",
    "tflite",
    "tgz",
    "wasm",
    "xz",
    "zip",
    "zst",
];

/// Files above this size go to LFS whatever their extension.
const LFS_SIZE_THRESHOLD: u64 = 10 * 1024 * 1024;

/// The file in a repo folder that marks the repo as gated; it is not a repo file.
pub(crate) const GATED_MARKER: &str = ".gated";

/// Read size for hashing and streaming.
pub(crate) const CHUNK: usize = 1024 * 1024;

/// The two repo types the server knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    /// The folder under the root, and the plural used in API URLs.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }

    pub(crate) fn from_plural(s: &str) -> Option<RepoKind> {
        match s {
            "models" => Some(RepoKind::Model),
            "datasets" => Some(RepoKind::Dataset),
            _ => None,
        }
    }

    /// The word used in user-facing messages.
    pub(crate) fn singular(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }
}

/// LFS facts of a file.
#[derive(Clone, Debug)]
pub(crate) struct Lfs {
    pub(crate) sha256: String,
    pub(crate) pointer_size: u64,
}

/// One file of a repo.
#[derive(Clone, Debug)]
pub(crate) struct RepoFile {
    pub(crate) abs: PathBuf,
    pub(crate) size: u64,
    /// Git object id: the blob sha1 of the content, or of the LFS pointer for LFS files.
    pub(crate) oid: String,
    pub(crate) lfs: Option<Lfs>,
}

impl RepoFile {
    /// The etag the Hub reports: sha256 for LFS files, git blob sha1 otherwise.
    pub(crate) fn etag(&self) -> &str {
        match &self.lfs {
            Some(lfs) => &lfs.sha256,
            None => &self.oid,
        }
    }
}

/// A repo folder at one moment.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) gated: bool,
    pub(crate) files: BTreeMap<String, RepoFile>,
    pub(crate) commit: String,
    pub(crate) last_modified: SystemTime,
}

/// A listing entry (tree and paths-info share it).
#[derive(Debug)]
pub(crate) enum Entry<'a> {
    File(&'a str, &'a RepoFile),
    Directory(String),
}

impl Snapshot {
    /// All directories (paths without trailing slash), derived from the file paths.
    pub(crate) fn directories(&self) -> BTreeSet<String> {
        let mut dirs = BTreeSet::new();
        for path in self.files.keys() {
            let mut end = 0;
            while let Some(i) = path[end..].find('/') {
                end += i;
                dirs.insert(path[..end].to_owned());
                end += 1;
            }
        }
        dirs
    }

    /// A stable tree id for a directory: sha1 over the ids of every file below it.
    pub(crate) fn tree_oid(&self, dir: &str) -> String {
        let prefix = format!("{dir}/");
        let mut hasher = Sha1::new();
        for (path, file) in self.files.range(prefix.clone()..) {
            let Some(rel) = path.strip_prefix(&prefix) else {
                break;
            };
            hasher.update(rel.as_bytes());
            hasher.update([0]);
            hasher.update(file.oid.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }

    /// The entries below `dir` ("" for the root): one level, or everything if `recursive`.
    /// Sorted by path. `None` if `dir` is neither the root nor a directory.
    pub(crate) fn list(&self, dir: &str, recursive: bool) -> Option<Vec<Entry<'_>>> {
        let dirs = self.directories();
        if !dir.is_empty() && !dirs.contains(dir) {
            return None;
        }
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let below = |path: &str| -> bool {
            match path.strip_prefix(&prefix) {
                Some(rel) => !rel.is_empty() && (recursive || !rel.contains('/')),
                None => false,
            }
        };
        let mut entries: Vec<Entry<'_>> = Vec::new();
        for (path, file) in &self.files {
            if below(path) {
                entries.push(Entry::File(path, file));
            }
        }
        for d in dirs {
            if below(&d) {
                entries.push(Entry::Directory(d));
            }
        }
        entries.sort_by(|a, b| a.path().cmp(b.path()));
        Some(entries)
    }

    /// The entry at exactly `path`, file or directory.
    pub(crate) fn entry(&self, path: &str) -> Option<Entry<'_>> {
        if let Some((p, f)) = self.files.get_key_value(path) {
            return Some(Entry::File(p, f));
        }
        if self.directories().contains(path) {
            return Some(Entry::Directory(path.to_owned()));
        }
        None
    }
}

impl Entry<'_> {
    pub(crate) fn path(&self) -> &str {
        match self {
            Entry::File(p, _) => p,
            Entry::Directory(p) => p,
        }
    }
}

/// Whether a file of this path and size is stored with LFS.
pub(crate) fn is_lfs(path: &str, size: u64) -> bool {
    if size > LFS_SIZE_THRESHOLD {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((_, ext)) => LFS_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
        None => false,
    }
}

/// The LFS pointer text git stores in place of an LFS file.
pub(crate) fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// Git's blob id of in-memory bytes.
pub(crate) fn git_blob_id(bytes: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}

/// Whether a single path segment is acceptable (no traversal, nothing empty).
pub(crate) fn valid_segment(seg: &str) -> bool {
    !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['/', '\\', '\0'])
}

/// The folder of a repo, if it exists.
pub(crate) fn locate(root: &Path, kind: RepoKind, org: &str, name: &str) -> Option<PathBuf> {
    if !valid_segment(org) || !valid_segment(name) {
        return None;
    }
    let dir = root.join(kind.plural()).join(org).join(name);
    dir.is_dir().then_some(dir)
}

/// Reads a repo folder: walks it, hashes what is not cached yet, derives the commit.
pub(crate) fn scan(dir: &Path) -> io::Result<Snapshot> {
    let gated = dir.join(GATED_MARKER).is_file();
    let mut found = Vec::new();
    walk(dir, "", &mut found)?;
    let last_modified = found
        .iter()
        .map(|f| f.mtime)
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);

    // Hash on as many threads as there are cores: the first scan of a multi-GB repo is
    // dominated by sha256, and later scans only hit the cache.
    let uncached = found.iter().filter(|f| !is_cached(f)).count();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(uncached.max(1));
    if workers == 1 {
        // The common case once the repo has been hashed: no threads to spawn.
        let mut files = BTreeMap::new();
        for f in &found {
            files.insert(f.rel.clone(), describe(f)?);
        }
        return Ok(finish(gated, files, last_modified));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Mutex<Option<io::Result<RepoFile>>>> =
        found.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(f) = found.get(i) else { break };
                    let r = describe(f);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    let mut files = BTreeMap::new();
    for (f, slot) in found.iter().zip(results) {
        let described = slot
            .into_inner()
            .ok()
            .flatten()
            .unwrap_or_else(|| Err(io::Error::other("hash worker failed")))?;
        files.insert(f.rel.clone(), described);
    }
    Ok(finish(gated, files, last_modified))
}

fn finish(gated: bool, files: BTreeMap<String, RepoFile>, last_modified: SystemTime) -> Snapshot {
    let mut hasher = Sha1::new();
    for (path, file) in &files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(file.oid.as_bytes());
        hasher.update(b"\n");
    }
    let commit = hex::encode(hasher.finalize());
    Snapshot {
        gated,
        files,
        commit,
        last_modified,
    }
}

struct Found {
    rel: String,
    abs: PathBuf,
    size: u64,
    mtime: SystemTime,
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<Found>) -> io::Result<()> {
    for item in fs::read_dir(dir)? {
        let item = item?;
        let Ok(name) = item.file_name().into_string() else {
            // Hub paths are UTF-8; a non-UTF-8 name cannot be served, so it is not part of the repo.
            continue;
        };
        if rel.is_empty() && (name == GATED_MARKER || name == ".git") {
            continue;
        }
        let abs = item.path();
        // Follow symlinks so fixtures may link big files instead of copying them.
        let meta = fs::metadata(&abs)?;
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if meta.is_dir() {
            walk(&abs, &child, out)?;
        } else if meta.is_file() {
            out.push(Found {
                rel: child,
                abs,
                size: meta.len(),
                mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
    }
    Ok(())
}

fn describe(f: &Found) -> io::Result<RepoFile> {
    if is_lfs(&f.rel, f.size) {
        let sha256 = cached_hash(&f.abs, f.size, f.mtime, HashKind::Sha256)?;
        let pointer = lfs_pointer(&sha256, f.size);
        Ok(RepoFile {
            abs: f.abs.clone(),
            size: f.size,
            oid: git_blob_id(pointer.as_bytes()),
            lfs: Some(Lfs {
                sha256,
                pointer_size: pointer.len() as u64,
            }),
        })
    } else {
        let oid = cached_hash(&f.abs, f.size, f.mtime, HashKind::GitBlob)?;
        Ok(RepoFile {
            abs: f.abs.clone(),
            size: f.size,
            oid,
            lfs: None,
        })
    }
}

/// Describes one file by path, outside a full scan (the CDN uses it).
pub(crate) fn describe_file(abs: &Path, rel: &str) -> io::Result<RepoFile> {
    let meta = fs::metadata(abs)?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "not a file"));
    }
    describe(&Found {
        rel: rel.to_owned(),
        abs: abs.to_owned(),
        size: meta.len(),
        mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum HashKind {
    GitBlob,
    Sha256,
}

type HashSlot = Arc<Mutex<Option<String>>>;
type HashKey = (PathBuf, u64, SystemTime, HashKind);

/// Process-wide, so that many servers over the same fixture (one per test) hash a file once.
fn hash_cache() -> &'static Mutex<HashMap<HashKey, HashSlot>> {
    static CACHE: OnceLock<Mutex<HashMap<HashKey, HashSlot>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn is_cached(f: &Found) -> bool {
    let kind = if is_lfs(&f.rel, f.size) {
        HashKind::Sha256
    } else {
        HashKind::GitBlob
    };
    let key = (f.abs.clone(), f.size, f.mtime, kind);
    let Ok(cache) = hash_cache().lock() else {
        return false;
    };
    cache
        .get(&key)
        .and_then(|slot| slot.try_lock().ok().map(|h| h.is_some()))
        .unwrap_or(false)
}

fn cached_hash(abs: &Path, size: u64, mtime: SystemTime, kind: HashKind) -> io::Result<String> {
    let slot = {
        let mut cache = hash_cache()
            .lock()
            .map_err(|_| io::Error::other("hash cache poisoned"))?;
        cache
            .entry((abs.to_owned(), size, mtime, kind))
            .or_default()
            .clone()
    };
    // Holding the slot's lock while hashing makes concurrent requests for the same file wait
    // for one computation instead of each hashing it again.
    let mut slot = slot
        .lock()
        .map_err(|_| io::Error::other("hash slot poisoned"))?;
    if let Some(h) = slot.as_ref() {
        return Ok(h.clone());
    }
    let h = match kind {
        HashKind::GitBlob => {
            let mut hasher = Sha1::new();
            hasher.update(format!("blob {size}\0").as_bytes());
            hash_file(abs, |b| hasher.update(b))?;
            hex::encode(hasher.finalize())
        }
        HashKind::Sha256 => {
            let mut hasher = Sha256::new();
            hash_file(abs, |b| hasher.update(b))?;
            hex::encode(hasher.finalize())
        }
    };
    *slot = Some(h.clone());
    Ok(h)
}

fn hash_file(abs: &Path, mut update: impl FnMut(&[u8])) -> io::Result<()> {
    let mut file = fs::File::open(abs)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_id_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // The empty blob.
        assert_eq!(git_blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }

    #[test]
    fn lfs_rules() {
        assert!(is_lfs("unet/diffusion_pytorch_model.safetensors", 10));
        assert!(is_lfs("a.BIN", 10));
        assert!(!is_lfs("config.json", 10));
        assert!(is_lfs("big.txt", LFS_SIZE_THRESHOLD + 1));
        assert!(!is_lfs("README", 0));
    }

    #[test]
    fn segments() {
        assert!(valid_segment("a b#c"));
        assert!(!valid_segment(".."));
        assert!(!valid_segment(""));
        assert!(!valid_segment("a\\b"));
    }
}
