//! The crate's single error type.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong while starting the server or building fixtures.
///
/// Request-time problems never surface here: they become HTTP error responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not be bound.
    #[error("cannot bind the {role} listener on {addr} (hint: pick a free port or use port 0)")]
    Bind {
        /// `"hub"` or `"cdn"`.
        role: &'static str,
        /// The address we tried.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The repository root is missing or not a directory.
    #[error("repository root {path} is not a directory (hint: create it or pass another --root)")]
    RootNotDir {
        /// The configured root.
        path: PathBuf,
    },
    /// A setting passed to the builder is not usable.
    #[error("invalid server setting: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },
    /// A repo id is not of the form `ORG/NAME`, or a repo type is not `models` or `datasets`.
    #[error("invalid repository {id:?}: expected `ORG/NAME` under `models` or `datasets`")]
    InvalidRepoId {
        /// The id as given.
        id: String,
    },
    /// The repository folder does not exist.
    #[error("repository {id} not found at {path}")]
    RepoNotFound {
        /// The repo id.
        id: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A path inside a fixture repo is empty, absolute or contains `.`/`..` segments.
    #[error("invalid file path {path:?} in repository {id}")]
    InvalidFilePath {
        /// The repo id.
        id: String,
        /// The offending path.
        path: String,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
