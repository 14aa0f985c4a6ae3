//! Writing blobs: a uniquely named `.incomplete` file, renamed to `blobs/{etag}` when complete.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::cache::CacheRepo;
use crate::error::{Error, IoContext, Result};
use crate::names::{is_valid_etag, random_suffix, validate_etag};

/// A blob being downloaded: `blobs/{etag}.{8 hex}.incomplete`, opened for reading and writing.
///
/// The final name `blobs/{etag}` only ever appears through [`PartialBlob::commit`], a rename in the
/// same directory, so a partial file is never visible under its final name. Dropping the handle
/// without committing deletes the temporary file, unless [`PartialBlob::keep`] was called (the
/// fetcher keeps partials to resume them later, see [`CacheRepo::find_partials`]).
///
/// `commit` does not fsync: like huggingface_hub, we rely on verification of size (and hash, by the
/// fetcher) before committing, and on [`CacheRepo::check_file`] afterwards. Callers that need
/// durability against power loss call [`PartialBlob::sync`] before committing.
#[derive(Debug)]
pub struct PartialBlob {
    path: PathBuf,
    final_path: PathBuf,
    file: Option<File>,
    keep: bool,
}

impl PartialBlob {
    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path the blob will have once committed.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// The open file. `&File` implements `Write` and `Seek`.
    pub fn file(&self) -> &File {
        // The option is only emptied by `commit`, which consumes `self`.
        self.file
            .as_ref()
            .unwrap_or_else(|| unreachable!("file taken before commit"))
    }

    /// The open file, mutably.
    pub fn file_mut(&mut self) -> &mut File {
        self.file
            .as_mut()
            .unwrap_or_else(|| unreachable!("file taken before commit"))
    }

    /// The number of bytes written so far (the file length).
    pub fn len(&self) -> Result<u64> {
        self.file()
            .metadata()
            .map(|m| m.len())
            .ctx("inspect", &self.path)
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Flushes the file data to stable storage.
    pub fn sync(&self) -> Result<()> {
        self.file().sync_all().ctx("sync", &self.path)
    }

    /// Keeps the temporary file when this handle is dropped uncommitted (for a later resume).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Closes the file and keeps it on disk for a later resume; returns its path.
    pub fn into_resumable(mut self) -> PathBuf {
        self.keep = true;
        self.file = None;
        self.path.clone()
    }

    /// Gives the blob its final name `blobs/{etag}` and returns that path.
    ///
    /// The mode is set to what a freshly created file in `blobs/` gets (the umask-derived mode,
    /// probed like huggingface_hub does, rather than read from the process umask which is not
    /// thread-safe). If `blobs/{etag}` already exists, another writer won the race: its file is
    /// kept and ours is deleted. Both were written for the same etag, so either is correct.
    pub fn commit(mut self) -> Result<PathBuf> {
        // Close before renaming: Windows cannot rename an open file.
        self.file = None;
        if fs::metadata(&self.final_path).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(&self.path);
            self.keep = true;
            return Ok(self.final_path.clone());
        }
        apply_default_mode(&self.path);
        fs::rename(&self.path, &self.final_path).ctx("rename partial blob to", &self.final_path)?;
        // The temporary name no longer exists; nothing to clean up on drop.
        self.keep = true;
        Ok(self.final_path.clone())
    }
}

impl Drop for PartialBlob {
    fn drop(&mut self) {
        if !self.keep {
            self.file = None;
            if let Err(e) = fs::remove_file(&self.path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove partial blob");
            }
        }
    }
}

/// Sets the permissions of `path` to those of a freshly created file in the same directory.
#[cfg(unix)]
fn apply_default_mode(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = path.parent() else { return };
    let probe = dir.join(format!("tmp_{}", random_suffix()));
    let mode = File::create(&probe).and_then(|f| f.metadata());
    let _ = fs::remove_file(&probe);
    match mode {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
                tracing::warn!(path = %path.display(), error = %e, "could not set blob permissions");
            }
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "could not probe default file mode")
        }
    }
}

/// On Windows permissions are ACLs inherited from the directory; nothing to do.
#[cfg(not(unix))]
fn apply_default_mode(_path: &Path) {}

/// Parses `{etag}.{id}.incomplete` into the etag, if the name has that shape.
fn partial_etag(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".incomplete")?;
    let (etag, id) = stem.split_once('.')?;
    (is_valid_etag(etag) && !id.is_empty() && !id.contains(['/', '\\'])).then_some(etag)
}

impl CacheRepo {
    /// Starts writing a blob: creates `blobs/{etag}.{8 hex}.incomplete` exclusively (a name no other
    /// writer uses) and opens it for reading and writing.
    pub fn begin_blob(&self, etag: &str) -> Result<PartialBlob> {
        let final_path = self.blob_path(etag)?;
        let dir = self.blobs_dir();
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        loop {
            let path = dir.join(format!("{etag}.{}.incomplete", random_suffix()));
            match fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(PartialBlob {
                        path,
                        final_path,
                        file: Some(file),
                        keep: false,
                    });
                }
                // A name collision: draw another suffix.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create partial blob", path, e)),
            }
        }
    }

    /// All partial files of `etag` (`blobs/{etag}.*.incomplete`), sorted by name.
    ///
    /// huggingface_hub ≤ 1.17 used `blobs/{etag}.incomplete` (no middle part) and may still be
    /// appending to it; that name is deliberately not returned.
    pub fn find_partials(&self, etag: &str) -> Result<Vec<PathBuf>> {
        validate_etag(etag)?;
        let dir = self.blobs_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.ctx("list", &dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if partial_etag(name) == Some(etag) && entry.file_type().is_ok_and(|t| t.is_file()) {
                found.push(entry.path());
            }
        }
        found.sort();
        Ok(found)
    }

    /// Reopens a partial found by [`CacheRepo::find_partials`] to append to it.
    ///
    /// The returned handle deletes the file on drop unless kept or committed, like a fresh one.
    pub fn adopt_partial(&self, path: &Path) -> Result<PartialBlob> {
        let not_ours = || Error::NotAPartial {
            path: path.to_path_buf(),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(not_ours)?;
        let etag = partial_etag(name).ok_or_else(not_ours)?;
        let dir = self.blobs_dir();
        if path.parent() != Some(dir.as_path()) {
            return Err(not_ours());
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .ctx("open partial blob", path)?;
        Ok(PartialBlob {
            path: path.to_path_buf(),
            final_path: dir.join(etag),
            file: Some(file),
            keep: false,
        })
    }
}
