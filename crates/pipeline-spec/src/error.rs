//! Errors reading a spec file, before its content is looked at.

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;

/// The largest spec accepted: 1 MiB. A spec is a few hundred bytes; a bigger file is almost
/// certainly the wrong file (a checkpoint passed by mistake), and the cap bounds parsing work.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// Why a spec file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_SPEC_BYTES`].
    #[error("`{}` is {size} bytes, over the 1 MiB limit for a spec", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at least).
        size: u64,
    },
    /// The file is not UTF-8 text.
    #[error("`{}` is not UTF-8 text (line {line}, column {column})", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 1-based column (in characters) of the first invalid byte.
        column: usize,
        /// The cause.
        #[source]
        source: std::str::Utf8Error,
    },
}

impl Error {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Read { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => {
                    Some("check the path; specs are usually `.yaml` files".to_owned())
                }
                std::io::ErrorKind::PermissionDenied => {
                    Some("check the file's permissions".to_owned())
                }
                std::io::ErrorKind::IsADirectory => {
                    Some("pass a spec file, not a folder".to_owned())
                }
                _ => None,
            },
            Error::TooLarge { .. } => Some(
                "a pipeline spec is a small YAML file; check that this is the file you meant"
                    .to_owned(),
            ),
            Error::NotUtf8 { .. } => Some("save the spec as UTF-8".to_owned()),
        }
    }

    /// The error as a [`Diagnostic`], so that the CLI renders it like any other problem.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let (path, line, column) = match self {
            Error::Read { path, .. } | Error::TooLarge { path, .. } => (path, 0, 0),
            Error::NotUtf8 {
                path, line, column, ..
            } => (path, *line, *column),
        };
        let mut diagnostic = Diagnostic::file_error(path.display().to_string(), self.to_string());
        diagnostic.line = line;
        diagnostic.column = column;
        diagnostic.help = self.hint();
        diagnostic
    }
}

impl From<Error> for crate::Diagnostics {
    fn from(error: Error) -> Self {
        error.to_diagnostic().into()
    }
}
