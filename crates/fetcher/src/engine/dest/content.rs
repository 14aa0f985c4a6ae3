//! A content-addressed folder as a destination: `<blobs>/<sha256 hex>`, for bytes known by their
//! sha256 alone — a user's local file, locked on another machine and fetched from a fleet's mirror
//! (`$HF_HOME/pipefetch/content-v1/sha256/`), or a URL's file fetched from a mirror into the URL
//! cache's own content-addressed `blobs/`.
//!
//! Partials go to `<work>/partial/<hex>.<rand>.incomplete` with the engine's resume record beside
//! them, locks to `<work>/locks/`; a blob takes its final name only once the engine verified its
//! sha256 (the name is the digest, so two writers committing the same blob rename identical
//! bytes).

use std::any::Any;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use pipefetch_hub_cache::BlobLock;

use super::{Destination, Landing};
use crate::error::{Error, Result};
use crate::resume::{self, ChunkTable};

/// How long a second writer waits for the first before going on without the lock.
const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The version of the store's layout, in its folder's name.
pub const CONTENT_DIR: &str = "content-v1";

/// One blob of a content-addressed folder, named by its sha256.
#[derive(Debug, Clone)]
pub struct ContentBlob {
    blobs: PathBuf,
    work: PathBuf,
    sha256: String,
}

impl ContentBlob {
    /// The blob `sha256` (lowercase hex) of the folder `blobs`, with partials and locks below
    /// `work`.
    pub fn new(
        blobs: impl Into<PathBuf>,
        work: impl Into<PathBuf>,
        sha256: impl Into<String>,
    ) -> ContentBlob {
        ContentBlob {
            blobs: blobs.into(),
            work: work.into(),
            sha256: sha256.into(),
        }
    }

    /// A blob of the store of local files fetched from a mirror, below `$HF_HOME/pipefetch`.
    pub fn local_store(pipefetch_dir: &Path, sha256: &str) -> ContentBlob {
        let root = pipefetch_dir.join(CONTENT_DIR);
        ContentBlob::new(root.join("sha256"), root, sha256)
    }

    /// Where the blob is once complete.
    pub fn path(&self) -> PathBuf {
        self.blobs.join(&self.sha256)
    }

    fn partial_dir(&self) -> PathBuf {
        self.work.join("partial")
    }
}

impl Destination for ContentBlob {
    fn dir(&self) -> PathBuf {
        self.partial_dir()
    }

    fn identity(&self) -> String {
        self.sha256.clone()
    }

    fn present(&self, size: u64) -> Result<bool> {
        Ok(fs::metadata(self.path()).is_ok_and(|m| m.is_file() && m.len() == size))
    }

    /// Avoids a second download of the same blob by another process at the same time (a fleet
    /// machine running several pulls); correctness never needs it: the name is the content.
    fn lock(&self) -> Result<Option<Box<dyn Any + Send>>> {
        let path = self
            .work
            .join("locks")
            .join(format!("{}.lock", self.sha256));
        Ok(Some(Box::new(BlobLock::acquire(path, LOCK_TIMEOUT))))
    }

    fn resume(&self, size: u64) -> Result<Option<(Box<dyn Landing>, ChunkTable)>> {
        let Ok(entries) = fs::read_dir(self.partial_dir()) else {
            return Ok(None);
        };
        let prefix = format!("{}.", self.sha256);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(&prefix) && name.ends_with(".incomplete")) {
                continue;
            }
            let path = entry.path();
            if let Some(table) = resume::load(&path, &self.sha256, size) {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io("open", &path, e))?;
                let landing = ContentLanding {
                    blob: self.clone(),
                    path,
                    file,
                };
                return Ok(Some((Box::new(landing), table)));
            }
        }
        Ok(None)
    }

    fn begin(&self) -> Result<Box<dyn Landing>> {
        let dir = self.partial_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let path = dir.join(format!(
            "{}.{:016x}.incomplete",
            self.sha256,
            fastrand::u64(..)
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        Ok(Box::new(ContentLanding {
            blob: self.clone(),
            path,
            file,
        }))
    }
}

/// A partial of a [`ContentBlob`]. Kept on disk when dropped (only `discard` removes it), so a
/// cancelled transfer resumes.
struct ContentLanding {
    blob: ContentBlob,
    path: PathBuf,
    file: File,
}

impl Landing for ContentLanding {
    fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self) -> &File {
        &self.file
    }

    fn commit(self: Box<Self>, digest: &str) -> Result<PathBuf> {
        if digest != self.blob.sha256 {
            self.discard();
            return Err(Error::Internal(
                "a content blob was committed under another digest".into(),
            ));
        }
        let target = self.blob.path();
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        }
        fs::rename(&self.path, &target).map_err(|e| Error::io("rename into place", &target, e))?;
        resume::remove(&self.path);
        Ok(target)
    }

    fn keep(self: Box<Self>) {}

    fn discard(self: Box<Self>) {
        let _ = fs::remove_file(&self.path);
        resume::remove(&self.path);
    }
}
