//! The fetcher's errors. Each message states what failed at this layer (which repo, file, URL); the
//! cause from the client or the cache is its `source`; [`Error::hint`] tells a person what to do.

use std::io;
use std::path::{Path, PathBuf};

/// A result with the fetcher's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while planning or fetching.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Hub (or another HTTP server) said no, or could not be reached.
    #[error("{context}")]
    Hub {
        /// What we were doing.
        context: String,
        /// The client's error (boxed: it is large, and errors are the rare path).
        #[source]
        source: Box<pipefetch_hub_client::Error>,
    },
    /// The cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] pipefetch_hub_cache::Error),
    /// A file is not in the cache and the network may not be used.
    #[error("{repo}: `{path}` at revision `{revision}` is not in the cache at {cache} ({why})")]
    NotCached {
        /// The repo id.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The file, or `*` for a whole snapshot.
        path: String,
        /// The cache folder.
        cache: PathBuf,
        /// Offline mode or local_files_only.
        why: &'static str,
    },
    /// Downloaded bytes do not hash to what the source announced; nothing was kept.
    #[error(
        "{source_label}: `{path}` failed verification: {algorithm} is {actual}, expected {expected}; the download was discarded"
    )]
    Integrity {
        /// Where the file came from.
        source_label: String,
        /// The file.
        path: String,
        /// `sha256` or `git-sha1`.
        algorithm: &'static str,
        /// The digest announced by the source.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The file received has another size than announced.
    #[error("{source_label}: `{path}` has {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// Where the file came from.
        source_label: String,
        /// The file.
        path: String,
        /// The announced size.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// A transfer failed.
    #[error("{source_label}: downloading `{path}` failed")]
    Transfer {
        /// Where the file came from.
        source_label: String,
        /// The file.
        path: String,
        /// The client's error.
        #[source]
        source: Box<pipefetch_hub_client::Error>,
    },
    /// The file changed on the server between two of its ranges (another `ETag`); the bytes were
    /// discarded.
    #[error(
        "{source_label}: `{path}` changed on the server during the download; the bytes received were discarded"
    )]
    Changed {
        /// Where the file came from.
        source_label: String,
        /// The file.
        path: String,
    },
    /// The disk is full.
    #[error("no space left on the device holding {dir} while writing a {size}-byte file")]
    DiskFull {
        /// The folder being written.
        dir: PathBuf,
        /// The size of the file being written.
        size: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file-system operation failed.
    #[error("could not {op} {path}")]
    Io {
        /// What we tried.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An allow or ignore pattern is not a valid glob.
    #[error("invalid pattern `{pattern}`")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        #[source]
        source: Box<globset::Error>,
    },
    /// The disk cannot hold the bytes still to download.
    #[error("not enough disk space in {dir}: {} to download, {} free", human_bytes(*needed), human_bytes(*available))]
    NotEnoughSpace {
        /// The folder downloads go to.
        dir: PathBuf,
        /// Bytes still to download.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// The pipeline cannot be planned: every problem found, one per line.
    #[error("the pipeline cannot be planned:\n  - {}", problems.join("\n  - "))]
    Plan {
        /// Each problem, rendered.
        problems: Vec<String>,
    },
    /// A diffusers file-selection rule failed (a missing variant, a folder without weights).
    #[error(transparent)]
    Select(Box<crate::pipeline::select::SelectError>),
    /// A request that makes no sense (an invalid path, a bad repo id).
    #[error("{0}")]
    Invalid(String),
    /// A bug: a task panicked or a channel closed early.
    #[error("internal error: {0}")]
    Internal(String),
    /// A URL answered with something that is not the weights file its name promises (an HTML
    /// login page, a JSON error); nothing was saved.
    #[error(
        "{url}: expected the weights file `{name}`, but the server returned {what}; nothing was saved"
    )]
    NotWeights {
        /// The URL (without any `token` parameter).
        url: String,
        /// The spec's file name.
        name: String,
        /// What arrived instead (`an HTML page`, `a JSON document (Content-Type: …)`).
        what: String,
        /// What to do (set `CIVITAI_TOKEN`, open the URL in a browser).
        hint: String,
    },
    /// The bytes behind a URL do not hash to the `sha256` pinned in the spec; nothing was kept.
    #[error(
        "{url}: the download's sha256 is {actual}, but the spec pins {expected}; the download was discarded"
    )]
    PinMismatch {
        /// The URL (without any `token` parameter).
        url: String,
        /// The pinned sha256.
        expected: String,
        /// The sha256 of the bytes received.
        actual: String,
    },
    /// A file could not come from a fleet's mirror, and the pull may not fall back to its origin.
    #[error("`{target}` could not come from the mirror {mirror}")]
    Mirror {
        /// The file's path in the pipeline folder.
        target: String,
        /// The mirror (`s3://bucket/prefix`, or a presigned URL's origin).
        mirror: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// What we were doing when an error of this crate happened.
    #[error("{what}")]
    Context {
        /// What we were doing.
        what: String,
        /// The error.
        #[source]
        source: Box<Error>,
    },
    /// A lockfile cannot be used: missing, of another version, malformed, or the spec or a file
    /// changed since it was written.
    #[error("{what}")]
    Locked {
        /// What is wrong.
        what: String,
    },
    /// Downloading a URL failed; the bytes received so far are kept for the next run.
    #[error("downloading {url} (`{name}`) failed")]
    UrlTransfer {
        /// The URL (without any `token` parameter).
        url: String,
        /// The spec's file name.
        name: String,
        /// Whether the URL is civitai.com's (a refusal there means `CIVITAI_TOKEN`).
        civitai: bool,
        /// The client's error.
        #[source]
        source: Box<pipefetch_hub_client::Error>,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn hub(context: impl Into<String>, source: pipefetch_hub_client::Error) -> Error {
        Error::Hub {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// A failed transfer of `path` (`size` bytes) from `source_label` into `dir`: a full disk is
    /// [`Error::DiskFull`], anything else [`Error::Transfer`].
    pub(crate) fn transfer(
        source_label: &str,
        path: &str,
        size: u64,
        dir: &Path,
        source: pipefetch_hub_client::Error,
    ) -> Error {
        if let Some(io) = io_source(&source)
            && is_disk_full(io)
        {
            return Error::DiskFull {
                dir: dir.to_path_buf(),
                size,
                source: io::Error::new(io.kind(), io.to_string()),
            };
        }
        Error::Transfer {
            source_label: source_label.to_string(),
            path: path.to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn write(dir: PathBuf, size: u64, source: io::Error) -> Error {
        if is_disk_full(&source) {
            Error::DiskFull { dir, size, source }
        } else {
            Error::Io {
                op: "write into",
                path: dir,
                source,
            }
        }
    }

    /// The error under any [`Error::Context`] layers.
    fn innermost(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.innermost(),
            other => other,
        }
    }

    /// What a person can do about it, when we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Hub { source, .. } | Error::Transfer { source, .. } => source.hint(),
            Error::Cache(e) => e.hint(),
            Error::Context { source, .. } => source.hint(),
            Error::Mirror { mirror, source, .. } => Some(match source.innermost() {
                // A push skips a blob the mirror has with the right size (it cannot afford to
                // read every blob back), so pushing again does not repair this one.
                Error::Integrity { expected, .. } => {
                    let key = format!("blobs/sha256/{expected}");
                    let key = if mirror.starts_with("s3://") {
                        format!("{mirror}/{key}")
                    } else {
                        format!("{key} in the mirror")
                    };
                    format!(
                        "the mirror holds other bytes of the right size, which a push does not replace: delete {key}, then run `pipefetch mirror push` again; or pull without --mirror-only to take the file from its origin"
                    )
                }
                _ => "push the pipeline to the mirror again (`pipefetch mirror push`), or pull without --mirror-only to take missing or damaged files from their origin".to_string(),
            }),
            Error::Select(e) => e.hint(),
            Error::NotCached { why, .. } => Some(if *why == "offline mode" {
                "unset HF_HUB_OFFLINE (or set it to 0) to download it".to_string()
            } else {
                "run again without --local-files-only (or --offline) to download it".to_string()
            }),
            Error::Changed { .. } => {
                Some("run again: the file is fetched from the start".to_string())
            }
            Error::Integrity { .. } | Error::SizeMismatch { .. } => Some(
                "the server sent other bytes than it announced; run again (a mirror or proxy may be serving stale or broken content)"
                    .to_string(),
            ),
            Error::NotEnoughSpace { dir, needed, available } => Some(format!(
                "free at least {} on the disk holding {} (only the missing bytes are counted), or point HF_HUB_CACHE / --cache-dir elsewhere",
                human_bytes(needed.saturating_sub(*available)),
                dir.display()
            )),
            Error::NotWeights { hint, .. } => Some(hint.clone()),
            Error::Locked { .. } => Some(
                "run `pipefetch lock SPEC` to lock the spec again (and commit the new lockfile), or pull without --locked"
                    .to_string(),
            ),
            Error::PinMismatch { .. } => Some(
                "the file behind the URL changed, or the pin is wrong: check the sha256 published for it and update `sha256` in the spec".to_string(),
            ),
            Error::UrlTransfer {
                civitai, source, ..
            } => url_transfer_hint(*civitai, source),
            Error::DiskFull { dir, size, .. } => Some(format!(
                "free at least {} on the disk holding {} (or point HF_HUB_CACHE / --cache-dir elsewhere); files already downloaded are kept",
                human_bytes(*size),
                dir.display()
            )),
            _ => None,
        }
    }
}

impl From<crate::pipeline::select::SelectError> for Error {
    fn from(e: crate::pipeline::select::SelectError) -> Error {
        Error::Select(Box::new(e))
    }
}

/// The hint one layer of an error chain knows, if it is an error of pipefetch's crates (this one,
/// the Hub client, the cache). A front end walks the chain and shows the first: the CLI and the
/// Python package say the same thing for the same failure.
pub fn hint_of_layer(layer: &(dyn std::error::Error + 'static)) -> Option<String> {
    use pipefetch_hub_client::Error as HubError;
    layer
        .downcast_ref::<Error>()
        .and_then(Error::hint)
        .or_else(|| layer.downcast_ref::<HubError>().and_then(HubError::hint))
        .or_else(|| layer.downcast_ref::<Box<HubError>>().and_then(|e| e.hint()))
        .or_else(|| {
            layer
                .downcast_ref::<pipefetch_hub_cache::Error>()
                .and_then(pipefetch_hub_cache::Error::hint)
        })
}

/// The causes below `err` worth showing a person, outermost first: a layer that wraps with
/// `#[error(transparent)]` or repeats its cause adds nothing and is left out.
pub fn distinct_causes(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut seen = err.to_string();
    let mut causes = Vec::new();
    let mut layer = err.source();
    while let Some(cause) = layer {
        let text = cause.to_string();
        if !seen.contains(&text) {
            seen.push_str(&text);
            causes.push(text);
        }
        layer = cause.source();
    }
    causes
}

/// What to do about a failed download from a URL (for [`Error::hint`]).
fn url_transfer_hint(civitai: bool, e: &pipefetch_hub_client::Error) -> Option<String> {
    use pipefetch_hub_client::Error as E;
    let status = http_status(e);
    if matches!(status, Some(401 | 403)) {
        return Some(if civitai {
            "set CIVITAI_TOKEN to a valid civitai.com API key (https://civitai.com/user/account) of an account that may download this model".to_string()
        } else {
            "the server refused access: the URL may need a token, or a presigned link may have expired".to_string()
        });
    }
    if status == Some(404) {
        return Some("check the URL: the server has no file there".to_string());
    }
    match e {
        E::RetriesExhausted { last, .. } => url_transfer_hint(civitai, last),
        E::Timeout { .. } | E::Stalled { .. } | E::BodyCut { .. } | E::Transport { .. } => {
            Some("rerun: the download resumes from the bytes already on disk".to_string())
        }
        E::Connect { .. } => Some("check the network and any proxy settings".to_string()),
        E::Offline { .. } => e.hint(),
        _ => None,
    }
}

/// The HTTP status of a client error, looking through "retries exhausted".
pub(crate) fn http_status(e: &pipefetch_hub_client::Error) -> Option<u16> {
    match e {
        pipefetch_hub_client::Error::Http { status, .. } => Some(*status),
        pipefetch_hub_client::Error::InvalidToken { .. } => Some(401),
        pipefetch_hub_client::Error::RetriesExhausted { last, .. } => http_status(last),
        _ => None,
    }
}

/// The deepest `io::Error` in a client error's chain, if any.
fn io_source(e: &pipefetch_hub_client::Error) -> Option<&io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// `1.5 GB`-style sizes for messages (decimal units, like the Hub's web pages).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    fn from_mirror(source: Error) -> Error {
        Error::Mirror {
            target: "vae/diffusion_pytorch_model.safetensors".into(),
            mirror: "s3://models/fleet".into(),
            source: Box::new(source),
        }
    }

    /// Issue 9: a push skips a blob of the right size, so a blob damaged in place is not repaired
    /// by pushing again; the hint names the object to delete first.
    #[test]
    fn a_damaged_mirror_blob_is_named_for_deletion_and_a_missing_one_pushed_again() {
        let damaged = from_mirror(Error::Context {
            what: "fetching".into(),
            source: Box::new(Error::Integrity {
                source_label: "s3://models/fleet".into(),
                path: "vae/diffusion_pytorch_model.safetensors".into(),
                algorithm: "sha256",
                expected: "ab".repeat(32),
                actual: "cd".repeat(32),
            }),
        });
        let hint = damaged.hint().expect("a hint");
        assert!(
            hint.contains(&format!(
                "delete s3://models/fleet/blobs/sha256/{}, then run `pipefetch mirror push` again",
                "ab".repeat(32)
            )),
            "{hint}"
        );
        let missing = from_mirror(Error::Invalid("404".into()));
        let hint = missing.hint().expect("a hint");
        assert!(
            hint.starts_with("push the pipeline to the mirror again"),
            "{hint}"
        );
    }
}
