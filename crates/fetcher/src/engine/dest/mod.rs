//! Where a blob lands: the one seam between the engine and the caches it fills.
//!
//! The engine moves bytes, verifies them and keeps the resume record; a [`Destination`] says
//! whether the blob is already there, guards against a second writer, opens (or adopts) the
//! partial file the bytes go into, and gives a verified partial its final name. One module per
//! implementation:
//!
//! - [`hub::HubBlob`]: a blob of the Hub cache (`blobs/<etag>`, named by the digest the Hub
//!   announced). Issue 9's S3 mirror lands Hub files here too, from presigned URLs.
//! - `crate::url_source::landing::UrlBlob`: a URL download in the URL cache, named by the sha256
//!   the engine computes while the bytes land (a URL without a pin has no digest beforehand).
//! - [`content::ContentBlob`]: a content-addressed store (`sha256/<hex>`) for bytes with no cache
//!   of their own here: a local file locked elsewhere and fetched from a fleet's mirror.
//!
//! Every method may touch the disk: the engine calls them on the blocking pool.

pub(crate) mod content;
pub(crate) mod hub;

use std::any::Any;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::resume::ChunkTable;

use super::BlobJob;

/// Where one blob lands.
pub trait Destination: Send + Sync + std::fmt::Debug {
    /// The folder partial files are written into (for disk-space messages).
    fn dir(&self) -> PathBuf;

    /// What the blob is called in its resume record (an etag, a URL's key).
    fn identity(&self) -> String;

    /// Whether the finished blob of `size` bytes is already there (nothing to transfer). A blob
    /// found damaged may be removed here so that it is fetched again.
    fn present(&self, size: u64) -> Result<bool>;

    /// An advisory lock against another process landing the same blob, held until dropped
    /// (`None` where the destination has none). Correctness never depends on it.
    fn lock(&self) -> Result<Option<Box<dyn Any + Send>>>;

    /// A partial left by an earlier run, claimed for this transfer, with its resume record
    /// (already checked against `size` and this blob's identity).
    fn resume(&self, size: u64) -> Result<Option<(Box<dyn Landing>, ChunkTable)>>;

    /// A new, empty partial.
    fn begin(&self) -> Result<Box<dyn Landing>>;

    /// The error for a failed transfer of `job` into this destination.
    fn transfer_error(&self, job: &BlobJob, source: pipefetch_hub_client::Error) -> Error {
        Error::transfer(&job.source, &job.path, job.size, &self.dir(), source)
    }
}

/// A partial file being written for a [`Destination`].
pub trait Landing: Send + Sync {
    /// Its path (the resume record lives beside it).
    fn path(&self) -> &Path;

    /// The open file, written with positional writes.
    fn file(&self) -> &File;

    /// Gives the verified bytes their final name and returns it. `digest` is the hex digest the
    /// engine computed (the job's algorithm; sha256 for URL sources). A destination may still
    /// refuse the bytes here (a page where weights were expected, a pinned digest that differs):
    /// it then removes them and returns the error.
    fn commit(self: Box<Self>, digest: &str) -> Result<PathBuf>;

    /// Keeps the partial on disk for a later run (the transfer failed with bytes worth keeping).
    fn keep(self: Box<Self>);

    /// Removes the partial (its bytes are bad).
    fn discard(self: Box<Self>);
}
