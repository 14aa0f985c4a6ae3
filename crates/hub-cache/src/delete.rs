//! Deleting revisions and repos, freeing the blobs nothing else points at.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::cache::{CacheRepo, HfCache};
use crate::error::{Error, IoContext, Result};
use crate::names::{RepoType, validate_commit};
use crate::scan::normalize_lexically;

/// What a deletion removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    /// Bytes of regular files removed (blobs, and snapshot copies when symlinks are disabled).
    pub freed_bytes: u64,
    /// Etags (names under `blobs/`) of the removed blobs, sorted.
    pub removed_blobs: Vec<String>,
    /// Names of the removed refs (`main`, `refs/pr/1`), sorted.
    pub removed_refs: Vec<String>,
}

impl CacheRepo {
    /// Deletes one snapshot: `snapshots/{commit}`, the refs naming it, `.no_exist/{commit}`,
    /// `trees/{commit}.json`, and the blobs no other snapshot points at. When no snapshot remains,
    /// the whole repo folder and its `.locks` folder go too.
    pub fn delete_revision(&self, commit: &str) -> Result<DeleteReport> {
        validate_commit(commit)?;
        let snapshots = self.path.join("snapshots");
        let target = snapshots.join(commit);
        if !fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(Error::RevisionNotCached {
                repo: self.folder.clone(),
                commit: commit.to_owned(),
            });
        }

        let blobs_dir = self.blobs_dir();
        let mut ours = BTreeSet::new();
        let mut copies_size = 0;
        collect_blob_refs(&target, &blobs_dir, &mut ours, &mut copies_size).ctx("list", &target)?;
        let mut others = BTreeSet::new();
        let mut ignored = 0;
        for entry in fs::read_dir(&snapshots).ctx("list", &snapshots)? {
            let entry = entry.ctx("list", &snapshots)?;
            if entry.file_name() != commit && entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_blob_refs(&entry.path(), &blobs_dir, &mut others, &mut ignored)
                    .ctx("list", &entry.path())?;
            }
        }

        let mut report = DeleteReport {
            freed_bytes: copies_size,
            ..DeleteReport::default()
        };
        fs::remove_dir_all(&target).ctx("remove", &target)?;
        report.removed_refs = self.remove_refs_to(commit)?;
        remove_if_present(&self.path.join(".no_exist").join(commit), true)?;
        remove_if_present(&self.tree_path(commit)?, false)?;

        for etag in ours.difference(&others) {
            let blob = blobs_dir.join(etag);
            // A blob may be a symlink into the shared store: removing the link frees nothing.
            let size = fs::symlink_metadata(&blob)
                .ok()
                .filter(|m| m.is_file())
                .map_or(0, |m| m.len());
            match fs::remove_file(&blob) {
                Ok(()) => {
                    report.freed_bytes += size;
                    report.removed_blobs.push(etag.clone());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", blob, e)),
            }
        }

        let empty = fs::read_dir(&snapshots)
            .ctx("list", &snapshots)?
            .next()
            .is_none();
        if empty {
            report.freed_bytes += regular_files_size(&blobs_dir);
            remove_if_present(&self.path, true)?;
            remove_if_present(&self.locks_dir(), true)?;
        }
        Ok(report)
    }

    /// Removes every ref whose content is `commit`; returns their names, sorted.
    fn remove_refs_to(&self, commit: &str) -> Result<Vec<String>> {
        let refs_dir = self.path.join("refs");
        let mut files = Vec::new();
        list_files(&refs_dir, String::new(), &mut files).ctx("list", &refs_dir)?;
        let mut removed = Vec::new();
        for (name, path) in files {
            if fs::read(&path).is_ok_and(|c| c == commit.as_bytes()) {
                fs::remove_file(&path).ctx("remove", &path)?;
                removed.push(name);
            }
        }
        removed.sort();
        Ok(removed)
    }
}

impl HfCache {
    /// Deletes a whole repo folder and its `.locks` folder. Deleting a repo that is not cached
    /// is not an error and reports nothing freed.
    pub fn delete_repo(&self, repo_type: RepoType, repo_id: &str) -> Result<DeleteReport> {
        let repo = self.repo(repo_type, repo_id)?;
        let mut report = DeleteReport::default();
        if !fs::symlink_metadata(repo.path()).is_ok_and(|m| m.is_dir()) {
            return Ok(report);
        }
        let blobs_dir = repo.blobs_dir();
        if let Ok(entries) = fs::read_dir(&blobs_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".incomplete") {
                    report.removed_blobs.push(name);
                }
            }
        }
        report.removed_blobs.sort();
        let mut refs = Vec::new();
        let _ = list_files(&repo.path().join("refs"), String::new(), &mut refs);
        report.removed_refs = refs.into_iter().map(|(name, _)| name).collect();
        report.removed_refs.sort();
        report.freed_bytes = regular_files_size(&blobs_dir);
        let mut copies = BTreeSet::new();
        let _ = collect_blob_refs(
            &repo.path().join("snapshots"),
            &blobs_dir,
            &mut copies,
            &mut report.freed_bytes,
        );
        remove_if_present(repo.path(), true)?;
        remove_if_present(&repo.locks_dir(), true)?;
        Ok(report)
    }
}

/// Walks a snapshot folder: for each symlink into `blobs_dir`, records the blob name; for each
/// regular file (a copy made without symlinks), adds its size to `copies_size`.
fn collect_blob_refs(
    dir: &Path,
    blobs_dir: &Path,
    blobs: &mut BTreeSet<String>,
    copies_size: &mut u64,
) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            collect_blob_refs(&path, blobs_dir, blobs, copies_size)?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path)?;
            let blob = normalize_lexically(&path.parent().unwrap_or(dir).join(target));
            if blob.parent() == Some(blobs_dir)
                && let Some(name) = blob.file_name()
            {
                blobs.insert(name.to_string_lossy().into_owned());
            }
        } else if file_type.is_file() {
            *copies_size += entry.metadata()?.len();
        }
    }
    Ok(())
}

/// Every file under `dir` with its `/`-joined relative name; nothing if `dir` is missing.
fn list_files(dir: &Path, prefix: String, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            list_files(&entry.path(), rel, out)?;
        } else {
            out.push((rel, entry.path()));
        }
    }
    Ok(())
}

/// Total size of the regular files directly in `dir` (symlinks not followed).
fn regular_files_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn remove_if_present(path: &Path, dir: bool) -> Result<()> {
    let result = if dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}
