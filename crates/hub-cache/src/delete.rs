//! Deleting revisions and repos, freeing the blobs nothing else points at.
//!
//! Snapshot entries are symlinks to `blobs/{etag}` normally, and regular files when symlinks are
//! unavailable: hard links to the blob where the filesystem allows, copies otherwise (see
//! [`CacheRepo::link_snapshot`]). A blob is removed when no remaining snapshot points at it, by
//! symlink or (on Unix, where file identity is visible) by hard link. Freed bytes are counted per
//! file identity: a file is freed only when its last link inside the deletion goes.

use std::collections::{BTreeSet, HashMap};
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
    /// Bytes actually released: regular files whose last link was removed.
    pub freed_bytes: u64,
    /// Etags (names under `blobs/`) of the removed blobs, sorted.
    pub removed_blobs: Vec<String>,
    /// Names of the removed refs (`main`, `refs/pr/1`), sorted.
    pub removed_refs: Vec<String>,
}

/// The identity of a regular file: `(device, inode)` on Unix, unknown elsewhere.
type FileId = Option<(u64, u64)>;

#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> (FileId, u64) {
    use std::os::unix::fs::MetadataExt;
    (Some((meta.dev(), meta.ino())), meta.nlink())
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> (FileId, u64) {
    (None, 1)
}

/// Counts the bytes released by removing a set of links.
#[derive(Default)]
struct Freed {
    /// Per known identity: size, link count, links removed so far.
    known: HashMap<(u64, u64), (u64, u64, u64)>,
    /// Files of unknown identity are assumed to have a single link.
    unknown: u64,
}

impl Freed {
    /// Records the removal of one link to a file (symlinks are ignored: they free nothing).
    fn add(&mut self, meta: &fs::Metadata) {
        if !meta.is_file() {
            return;
        }
        match file_id(meta) {
            (Some(id), nlink) => self.known.entry(id).or_insert((meta.len(), nlink, 0)).2 += 1,
            (None, _) => self.unknown += meta.len(),
        }
    }

    fn total(&self) -> u64 {
        self.unknown
            + self
                .known
                .values()
                .filter(|(_, nlink, removed)| removed >= nlink)
                .map(|(size, _, _)| size)
                .sum::<u64>()
    }
}

/// What a snapshot folder points at.
#[derive(Default)]
struct SnapshotRefs {
    /// Names under `blobs/` pointed at by symlinks.
    blobs: BTreeSet<String>,
    /// Identities of the regular files (hard links or copies).
    file_ids: BTreeSet<(u64, u64)>,
    /// Metadata of the regular files, for freed-bytes accounting.
    files: Vec<fs::Metadata>,
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
        let mut ours = SnapshotRefs::default();
        collect_refs(&target, &blobs_dir, &mut ours).ctx("list", &target)?;
        let mut others = SnapshotRefs::default();
        for entry in fs::read_dir(&snapshots).ctx("list", &snapshots)? {
            let entry = entry.ctx("list", &snapshots)?;
            if entry.file_name() != commit && entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_refs(&entry.path(), &blobs_dir, &mut others).ctx("list", &entry.path())?;
            }
        }

        // Blobs to remove: those our symlinks point at, and (without symlinks) those our regular
        // files are hard links of; minus anything a remaining snapshot still uses.
        let mut doomed: BTreeSet<String> = ours.blobs.difference(&others.blobs).cloned().collect();
        if !ours.file_ids.is_empty()
            && let Ok(entries) = fs::read_dir(&blobs_dir)
        {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Ok(meta) = entry.metadata()
                    && let (Some(id), _) = file_id(&meta)
                    && meta.is_file()
                    && ours.file_ids.contains(&id)
                    && !others.file_ids.contains(&id)
                    && !others.blobs.contains(&name)
                {
                    doomed.insert(name);
                }
            }
        }

        let mut freed = Freed::default();
        for meta in &ours.files {
            freed.add(meta);
        }
        fs::remove_dir_all(&target).ctx("remove", &target)?;
        let mut report = DeleteReport {
            removed_refs: self.remove_refs_to(commit)?,
            ..DeleteReport::default()
        };
        remove_if_present(&self.path.join(".no_exist").join(commit), true)?;
        remove_if_present(&self.tree_path(commit)?, false)?;

        for etag in doomed {
            let blob = blobs_dir.join(&etag);
            // A blob may be a symlink into huggingface_hub's shared store: removing the link
            // frees nothing, and `Freed::add` ignores it.
            let meta = fs::symlink_metadata(&blob).ok();
            match fs::remove_file(&blob) {
                Ok(()) => {
                    if let Some(meta) = meta {
                        freed.add(&meta);
                    }
                    report.removed_blobs.push(etag);
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
            // Blobs no snapshot pointed at (left by an interrupted deletion or another tool)
            // and partial downloads go with the folder.
            for (name, meta) in blob_entries(&blobs_dir) {
                freed.add(&meta);
                if !name.ends_with(".incomplete") {
                    report.removed_blobs.push(name);
                }
            }
            remove_if_present(&self.path, true)?;
            remove_if_present(&self.locks_dir(), true)?;
        }
        report.removed_blobs.sort();
        report.freed_bytes = freed.total();
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
        let mut freed = Freed::default();
        for (name, meta) in blob_entries(&repo.blobs_dir()) {
            freed.add(&meta);
            if !name.ends_with(".incomplete") {
                report.removed_blobs.push(name);
            }
        }
        report.removed_blobs.sort();
        let mut snapshot_files = SnapshotRefs::default();
        let snapshots = repo.path().join("snapshots");
        if snapshots.is_dir() {
            collect_refs(&snapshots, &repo.blobs_dir(), &mut snapshot_files)
                .ctx("list", &snapshots)?;
        }
        for meta in &snapshot_files.files {
            freed.add(meta);
        }
        let mut refs = Vec::new();
        list_files(&repo.path().join("refs"), String::new(), &mut refs)
            .ctx("list", &repo.path().join("refs"))?;
        report.removed_refs = refs.into_iter().map(|(name, _)| name).collect();
        report.removed_refs.sort();
        remove_if_present(repo.path(), true)?;
        remove_if_present(&repo.locks_dir(), true)?;
        report.freed_bytes = freed.total();
        Ok(report)
    }
}

/// Walks a snapshot folder, recording symlinks into `blobs_dir` and regular files.
fn collect_refs(dir: &Path, blobs_dir: &Path, refs: &mut SnapshotRefs) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            collect_refs(&path, blobs_dir, refs)?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path)?;
            let blob = normalize_lexically(&path.parent().unwrap_or(dir).join(target));
            if blob.parent() == Some(blobs_dir)
                && let Some(name) = blob.file_name()
            {
                refs.blobs.insert(name.to_string_lossy().into_owned());
            }
        } else if file_type.is_file() {
            let meta = entry.metadata()?;
            if let (Some(id), _) = file_id(&meta) {
                refs.file_ids.insert(id);
            }
            refs.files.push(meta);
        }
    }
    Ok(())
}

/// The entries of `blobs/` with their (not followed) metadata; nothing if it is missing.
fn blob_entries(blobs_dir: &Path) -> Vec<(String, fs::Metadata)> {
    let Ok(entries) = fs::read_dir(blobs_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), meta))
        })
        .collect()
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
