//! The Hub cache as a destination: `blobs/<etag>` of one cache repo.

use std::any::Any;
use std::fs::File;
use std::path::{Path, PathBuf};

use pipefetch_hub_cache::{CacheRepo, PartialBlob};

use super::{Destination, Landing};
use crate::error::{Error, Result};
use crate::resume::{self, ChunkTable};

/// A blob of a Hub cache repo, named by its etag (the digest the Hub announced).
#[derive(Debug, Clone)]
pub struct HubBlob {
    repo: CacheRepo,
    etag: String,
}

impl HubBlob {
    /// The blob `etag` of `repo`.
    pub fn new(repo: CacheRepo, etag: impl Into<String>) -> HubBlob {
        HubBlob {
            repo,
            etag: etag.into(),
        }
    }
}

impl Destination for HubBlob {
    fn dir(&self) -> PathBuf {
        self.repo.blobs_dir()
    }

    fn identity(&self) -> String {
        self.etag.clone()
    }

    /// A blob of another size is damage (blobs are named by their content): it is removed so that
    /// it gets downloaded again.
    fn present(&self, size: u64) -> Result<bool> {
        let path = self.repo.blob_path(&self.etag)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() == size => Ok(true),
            Ok(m) if m.is_file() => {
                tracing::warn!(
                    "{} has {} bytes instead of {size}; downloading it again",
                    path.display(),
                    m.len()
                );
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                Ok(false)
            }
            _ => Ok(self.repo.has_blob(&self.etag)),
        }
    }

    fn lock(&self) -> Result<Option<Box<dyn Any + Send>>> {
        let lock = self.repo.lock(&self.etag)?;
        Ok(Some(Box::new(lock)))
    }

    fn resume(&self, size: u64) -> Result<Option<(Box<dyn Landing>, ChunkTable)>> {
        for path in self.repo.find_partials(&self.etag)? {
            if let Some(table) = resume::load(&path, &self.etag, size) {
                let blob = self.repo.adopt_partial(&path)?;
                return Ok(Some((Box::new(HubLanding::new(self, blob)), table)));
            }
        }
        Ok(None)
    }

    fn begin(&self) -> Result<Box<dyn Landing>> {
        let blob = self.repo.begin_blob(&self.etag)?;
        Ok(Box::new(HubLanding::new(self, blob)))
    }
}

struct HubLanding {
    blob: PartialBlob,
    dest: HubBlob,
}

impl HubLanding {
    fn new(dest: &HubBlob, mut blob: PartialBlob) -> HubLanding {
        // Kept even when the transfer is dropped before it ends (a caller cancelled it: Ctrl-C in
        // Python, a timeout, an aborted task): the next run resumes from its bytes. Only bad
        // bytes are deleted, explicitly, by `discard`.
        blob.keep();
        HubLanding {
            blob,
            dest: dest.clone(),
        }
    }
}

impl Landing for HubLanding {
    fn path(&self) -> &Path {
        self.blob.path()
    }

    fn file(&self) -> &File {
        self.blob.file()
    }

    fn commit(self: Box<Self>, _digest: &str) -> Result<PathBuf> {
        let HubLanding { blob, dest } = *self;
        let path = blob.path().to_path_buf();
        match blob.commit() {
            Ok(p) => Ok(p),
            // Another writer (where locks do not work) committed the same blob first.
            Err(_) if dest.repo.has_blob(&dest.etag) => Ok(dest.repo.blob_path(&dest.etag)?),
            Err(err) => Err(Error::from(err)),
        }
        .inspect(|_| resume::remove(&path))
    }

    fn keep(self: Box<Self>) {
        let _ = self.blob.into_resumable();
    }

    fn discard(self: Box<Self>) {
        let path = self.blob.into_resumable();
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a bad partial blob");
        }
        resume::remove(&path);
    }
}
