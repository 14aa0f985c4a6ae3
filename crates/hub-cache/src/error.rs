//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading or writing the cache.
///
/// Messages describe this layer only; the underlying cause (an `io::Error`, a JSON error) is
/// available through [`std::error::Error::source`]. [`Error::hint`] gives the user something to do
/// when there is something sensible to suggest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A repo id that cannot name a cache folder (`ORG/NAME` or `NAME`).
    #[error("invalid repo id {repo_id:?}: {reason}")]
    InvalidRepoId {
        /// The rejected id.
        repo_id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A repo type string that is none of model, dataset, space or kernel.
    #[error("invalid repo type {value:?}: expected model, dataset, space or kernel")]
    InvalidRepoType {
        /// The rejected string.
        value: String,
    },
    /// A file path inside a repo that could escape its folder or is not canonical.
    #[error("invalid path in repo {path:?}: {reason}")]
    InvalidRepoPath {
        /// The rejected path.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A revision (branch, tag or `refs/pr/N`) that cannot be stored as a file under `refs/`.
    #[error("invalid revision {revision:?}: {reason}")]
    InvalidRevision {
        /// The rejected revision.
        revision: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Something that should be a 40-character lowercase hex commit hash is not.
    #[error("invalid commit hash {commit:?}: expected 40 lowercase hex characters")]
    InvalidCommit {
        /// The rejected value.
        commit: String,
    },
    /// An etag that is neither a git sha1 (40 hex) nor a sha256 (64 hex).
    #[error("invalid etag {etag:?}: expected 40 or 64 hex characters")]
    InvalidEtag {
        /// The rejected value.
        etag: String,
    },
    /// A `refs/` file whose content is not exactly a commit hash.
    #[error("corrupt ref file {path}: content {content:?} is not a 40-character commit hash")]
    CorruptRef {
        /// The ref file.
        path: PathBuf,
        /// Its raw content (possibly truncated to 100 characters).
        content: String,
    },
    /// A `trees/{commit}.json` file that is not valid JSON of the expected shape.
    #[error("corrupt tree cache file {path}")]
    CorruptTree {
        /// The tree file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A tree listing that huggingface_hub would refuse (an `xet_hash` that is not 64 hex).
    #[error(
        "invalid tree listing for {path}: xet hash {xet_hash:?} of {file:?} is not 64 hex characters"
    )]
    InvalidTree {
        /// The tree file that was going to be written.
        path: PathBuf,
        /// The offending repo file.
        file: String,
        /// The offending hash.
        xet_hash: String,
    },
    /// A revision asked for deletion that has no snapshot in the cache.
    #[error("revision {commit} of {repo} is not in the cache")]
    RevisionNotCached {
        /// The repo folder name, e.g. `models--org--name`.
        repo: String,
        /// The commit hash.
        commit: String,
    },
    /// A path handed to `adopt_partial` that is not one of this repo's partial blobs.
    #[error(
        "{path} is not a partial blob of this repo (expected blobs/{{etag}}.{{id}}.incomplete)"
    )]
    NotAPartial {
        /// The rejected path.
        path: PathBuf,
    },
    /// The cache directory given to `scan` does not exist or is not a directory.
    #[error("cache directory {path} does not exist or is not a directory")]
    CacheNotFound {
        /// The cache root.
        path: PathBuf,
    },
    /// A filesystem operation failed.
    #[error("failed to {op} {path}")]
    Io {
        /// What we were doing, as a verb phrase ("create directory", "rename").
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Something the user can do about this error, if there is anything sensible to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::CorruptRef { path, .. } => Some(format!(
                "delete {} (it is re-created by the next online download)",
                path.display()
            )),
            Error::CorruptTree { path, .. } => Some(format!(
                "delete {} (it is only a cached listing)",
                path.display()
            )),
            Error::Io { source, path, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    Some(format!(
                        "check that {} is writable, or point HF_HUB_CACHE to a writable directory",
                        path.display()
                    ))
                }
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Some(format!(
                    "free some space on the filesystem holding {}",
                    path.display()
                )),
                _ => None,
            },
            Error::InvalidRepoId { .. } => {
                Some("repo ids look like `org/name` or `name`".to_owned())
            }
            Error::CacheNotFound { .. } => {
                Some("set HF_HUB_CACHE or pass the cache directory explicitly".to_owned())
            }
            _ => None,
        }
    }

    /// Wraps an `io::Error` with the operation and path it concerns.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::io(op, path, source))
    }
}
