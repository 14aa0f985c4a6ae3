//! The crate's one error type. No variant carries a secret: credentials never reach a message,
//! and object-store errors name the request by method and key (requests are signed in headers,
//! so their URLs hold no signature).

use std::path::PathBuf;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a mirror.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The mirror location is not `s3://BUCKET/PREFIX`.
    #[error("invalid mirror location `{input}`: {reason}")]
    InvalidLocation {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The endpoint (`AWS_ENDPOINT_URL`) is not a usable URL.
    #[error("invalid S3 endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A credential variable is not set.
    #[error("no S3 credentials: {missing} is not set")]
    MissingCredentials {
        /// The variable.
        missing: &'static str,
    },

    /// A pipeline name cannot be a key segment.
    #[error("invalid pipeline name `{name}`: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },

    /// A string that should be a SHA-256 hex digest is not one.
    #[error("`{value}` is not a sha256 digest (64 hex digits)")]
    InvalidDigest {
        /// The string (cut at 80 characters).
        value: String,
    },

    /// The bucket does not exist at that endpoint.
    #[error("bucket `{bucket}` does not exist at {endpoint}")]
    BucketNotFound {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
    },

    /// The store refused the credentials, or the key may not do this.
    #[error("access denied {request} (key {key_id}{})", code_suffix(.code))]
    AccessDenied {
        /// The request.
        request: Box<RequestContext>,
        /// The access key id, masked but for its last 4 characters.
        key_id: String,
        /// The S3 error code (`InvalidAccessKeyId`, `SignatureDoesNotMatch`, `AccessDenied`).
        code: Option<String>,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// No connection could be made to the endpoint.
    #[error("the S3 endpoint {} is unreachable ({request})", .request.endpoint)]
    Unreachable {
        /// The request.
        request: Box<RequestContext>,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// Any other failure of a request to the store.
    #[error("{request} failed")]
    Store {
        /// The request.
        request: Box<RequestContext>,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// Reading a local file failed.
    #[error("reading {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A local file is not what its caller said it is (it changed, or the lock is wrong): nothing
    /// was stored under its content address.
    #[error("{} has {what} {actual}, expected {expected}", path.display())]
    LocalMismatch {
        /// The file.
        path: PathBuf,
        /// `size` or `sha256`.
        what: &'static str,
        /// What the caller said.
        expected: String,
        /// What the file holds.
        actual: String,
    },

    /// A small object (a lock) is larger than the caller's cap.
    #[error("s3://{bucket}/{key} is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },

    /// Bringing the pipeline's files into the local cache (the pull before a push) failed.
    #[error("could not bring pipeline `{name}` into the local cache")]
    Pull {
        /// The pipeline.
        name: String,
        /// The fetcher's error.
        #[source]
        source: Box<pipefetch_fetcher::Error>,
    },

    /// A lock cannot be used (a file without its bytes after the pull, one sha256 with two
    /// sizes, a mirror's lock that does not parse).
    #[error("{what}")]
    InvalidLock {
        /// What is wrong.
        what: String,
        /// The fetcher's error, when it found the problem.
        #[source]
        source: Option<Box<pipefetch_fetcher::Error>>,
    },

    /// Some blobs of a push could not be uploaded; the lock was not written.
    #[error(
        "{failed} of {blobs} blobs could not be uploaded, so the lock of `{name}` was not written; the first error follows"
    )]
    PushIncomplete {
        /// The pipeline.
        name: String,
        /// How many uploads failed.
        failed: usize,
        /// How many blobs the push had to upload or check.
        blobs: usize,
        /// The first failure.
        #[source]
        first: Box<Error>,
    },

    /// The mirror holds no lock for the pipeline (or not that version).
    #[error("{location} has no lock for pipeline `{name}`{}", .version.as_ref().map(|v| format!(" with sha256 {v}")).unwrap_or_default())]
    LockNotFound {
        /// The mirror.
        location: String,
        /// The pipeline.
        name: String,
        /// The version asked for.
        version: Option<String>,
    },

    /// A blob a lock names is not in the mirror, or has another size.
    #[error("the mirror has no blob of {size} bytes for `{target}` (s3://{bucket}/{key})")]
    BlobMissing {
        /// The file's target in the pipeline.
        target: String,
        /// The bucket.
        bucket: String,
        /// The blob's key.
        key: String,
        /// The size the lock gives.
        size: u64,
    },

    /// An expiry presigned URLs cannot have.
    #[error("invalid expiry {given}: {reason}")]
    InvalidExpiry {
        /// What was given.
        given: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// The mirror could not be set up (object_store refused the configuration).
    #[error("could not set up the S3 client for {location}")]
    Setup {
        /// The mirror location.
        location: String,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
    },
}

/// Which request failed: shown as `OP s3://BUCKET/KEY at ENDPOINT`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestContext {
    /// What was being done (`reading`, `uploading`, …).
    pub op: &'static str,
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The endpoint.
    pub endpoint: String,
}

impl std::fmt::Display for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} s3://{}/{} at {}",
            self.op, self.bucket, self.key, self.endpoint
        )
    }
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref()
        .map(|c| format!(", {c}"))
        .unwrap_or_default()
}

impl Error {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::InvalidLocation { .. } => {
                Some("write the mirror as s3://BUCKET or s3://BUCKET/PREFIX".into())
            }
            Error::InvalidEndpoint { .. } => Some(
                "set AWS_ENDPOINT_URL to the store's base URL, https://HOST[:PORT] (http only for a loopback address)"
                    .into(),
            ),
            Error::MissingCredentials { .. } => Some(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)"
                    .into(),
            ),
            Error::BucketNotFound { bucket, .. } => Some(format!(
                "create the bucket `{bucket}`, or check the bucket name, AWS_ENDPOINT_URL and AWS_REGION"
            )),
            Error::AccessDenied { code, request, .. } => Some(match code.as_deref() {
                Some("InvalidAccessKeyId") => {
                    "the store does not know this AWS_ACCESS_KEY_ID: check it, and AWS_ENDPOINT_URL".into()
                }
                Some("SignatureDoesNotMatch") => {
                    "AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID (or AWS_REGION is not the store's region)".into()
                }
                _ => format!(
                    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and that this key may read and write bucket `{}`",
                    request.bucket
                ),
            }),
            Error::Unreachable { .. } => Some(
                "check AWS_ENDPOINT_URL (scheme, host, port) and that the store is running and reachable".into(),
            ),
            Error::Pull { source, .. } => source.hint(),
            Error::PushIncomplete { first, .. } => Some(match first.hint() {
                Some(hint) => format!(
                    "{hint}; then run the push again: blobs already in the mirror are not sent again"
                ),
                None => "run the push again: blobs already in the mirror are not sent again".into(),
            }),
            Error::LockNotFound { location, .. } => Some(format!(
                "push the pipeline first: pipefetch mirror push SPEC {location}"
            )),
            Error::BlobMissing { .. } => Some(
                "the mirror is incomplete or was altered: push the pipeline again".into(),
            ),
            Error::InvalidExpiry { .. } => Some(
                "give a duration such as 90m, 12h or 7d (at most 7d, the longest a presigned URL may live)"
                    .into(),
            ),
            Error::LocalMismatch { .. } => Some(
                "the file changed since it was locked or downloaded; verify the local cache (`pipefetch check`) and retry".into(),
            ),
            _ => None,
        }
    }
}
