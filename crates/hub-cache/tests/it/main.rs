//! Integration tests of `hub-cache`: byte-exact layout, path validation, atomic writes, lookups,
//! scans of good and corrupt caches, deletion and the tree cache.

mod blobs;
mod delete;
mod layout;
mod locks;
mod lookup;
mod paths;
mod scan;
mod tree;

use std::io::Write;
use std::path::Path;

use pipefetch_hub_cache::{CacheOptions, CacheRepo, HfCache, RepoType, SymlinkMode};

pub const COMMIT_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const COMMIT_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
pub const ETAG_1: &str = "1111111111111111111111111111111111111111";
pub const ETAG_2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
pub const ETAG_3: &str = "3333333333333333333333333333333333333333";

/// A fresh cache in a temporary directory, with symlinks as probed.
pub fn cache() -> (tempfile::TempDir, HfCache) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = HfCache::new(dir.path());
    (dir, cache)
}

/// A fresh cache that never uses symlinks.
pub fn cache_without_symlinks() -> (tempfile::TempDir, HfCache) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = HfCache::with_options(
        dir.path(),
        CacheOptions::with_symlinks(SymlinkMode::Disabled),
    );
    (dir, cache)
}

/// Writes a blob through the public API and returns its final path.
pub fn put_blob(repo: &CacheRepo, etag: &str, bytes: &[u8]) -> std::path::PathBuf {
    let blob = repo.begin_blob(etag).expect("begin");
    blob.file().write_all(bytes).expect("write");
    blob.commit().expect("commit")
}

/// A repo with one commit holding `files` (path, etag, bytes), `refs/main` pointing at it.
pub fn populated(
    cache: &HfCache,
    repo_id: &str,
    commit: &str,
    files: &[(&str, &str, &[u8])],
) -> CacheRepo {
    let repo = cache.repo(RepoType::Model, repo_id).expect("repo");
    repo.ensure_layout().expect("layout");
    for (path, etag, bytes) in files {
        if !repo.has_blob(etag) {
            put_blob(&repo, etag, bytes);
        }
        repo.link_snapshot(commit, path, etag).expect("link");
    }
    repo.write_ref("main", commit).expect("ref");
    repo
}

/// Sorted names of the entries of a directory.
pub fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}
