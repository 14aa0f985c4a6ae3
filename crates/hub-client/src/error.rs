//! The crate's one error type.

use std::time::Duration;

use crate::env::TokenSource;
use crate::repo::Repo;

/// A boxed cause from the transport layer (hyper, rustls, the operating system).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while talking to the Hub (or another HTTP server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Offline mode is on; nothing was sent.
    #[error("offline mode is enabled (HF_HUB_OFFLINE): not requesting {url}")]
    Offline {
        /// The URL that would have been requested.
        url: String,
    },

    /// The HTTP proxy refused a plain-http request for want of (valid) credentials.
    #[error("the proxy {proxy} refused the request to {url} (HTTP {status}): it wants credentials")]
    ProxyRejected {
        /// The proxy, as `scheme://host:port` (never with its password).
        proxy: String,
        /// The request.
        url: String,
        /// 407, or 401 from a proxy that answers like a server.
        status: u16,
    },

    /// The repository does not exist, or it is private and the request was not allowed to see it.
    #[error("repository {repo} was not found on the Hub, or it is private{}", request_id_suffix(.request_id))]
    RepoNotFound {
        /// The repository.
        repo: Repo,
        /// Whether a token was sent.
        authenticated: bool,
        /// The server's request id.
        request_id: Option<String>,
    },

    /// The repository is gated and the request was not allowed to see it.
    #[error("repository {repo} is gated: {}", if *.authenticated { "the token has no access to it" } else { "a token is required" })]
    GatedRepo {
        /// The repository.
        repo: Repo,
        /// The page where its conditions are accepted.
        url: String,
        /// Whether a token was sent (403) or not (401).
        authenticated: bool,
    },

    /// The repository is disabled on the Hub.
    #[error("repository {repo} is disabled on the Hub")]
    DisabledRepo {
        /// The repository.
        repo: Repo,
    },

    /// The Hub rejected the token itself.
    #[error(
        "the Hub rejected the token from {token_source}: invalid credentials (HTTP 401 on {url})"
    )]
    InvalidToken {
        /// Where the token came from.
        token_source: TokenSource,
        /// The request that was refused.
        url: String,
    },

    /// The revision does not exist in the repository.
    #[error("revision {revision:?} was not found in repository {repo}")]
    RevisionNotFound {
        /// The repository.
        repo: Repo,
        /// The revision asked for.
        revision: String,
    },

    /// The file does not exist at that revision.
    #[error("{path:?} was not found in repository {repo} at revision {revision:?}{}", commit.as_ref().map(|c| format!(" (commit {c})")).unwrap_or_default())]
    EntryNotFound {
        /// The repository.
        repo: Repo,
        /// The revision asked for.
        revision: String,
        /// The path in the repository.
        path: String,
        /// The commit the revision resolved to, when the server said (`X-Repo-Commit`).
        commit: Option<String>,
    },

    /// The server asked us to slow down (HTTP 429).
    #[error("rate limited by {url} (HTTP 429){}", .retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The request.
        url: String,
        /// How long the server asked us to wait.
        retry_after: Option<Duration>,
    },

    /// Any other unsuccessful HTTP status.
    #[error("HTTP {status} from {url}{}{}", .message.as_ref().map(|m| format!(": {m}")).unwrap_or_default(), request_id_suffix(.request_id))]
    Http {
        /// The status code.
        status: u16,
        /// The request.
        url: String,
        /// The server's request id (`X-Request-Id`, `X-Amzn-Trace-Id` or `X-Amz-Cf-Id`).
        request_id: Option<String>,
        /// The server's message (`X-Error-Message` or the JSON `error` field).
        message: Option<String>,
        /// How long the server asked us to wait (`Retry-After`, `RateLimit`).
        retry_after: Option<Duration>,
    },

    /// No answer or no byte arrived in time.
    #[error("timed out after {} ms waiting for {what} from {url}", .after.as_millis())]
    Timeout {
        /// The request.
        url: String,
        /// What we were waiting for (`response headers`, `body bytes`).
        what: &'static str,
        /// The limit that fired.
        after: Duration,
    },

    /// The connection delivered fewer than `bytes` in `window`: a trickle, treated as a stall.
    #[error("download from {url} stalled: fewer than {bytes} bytes arrived in {window:?}")]
    Stalled {
        /// The request.
        url: String,
        /// The floor.
        bytes: u64,
        /// The window.
        window: Duration,
    },

    /// The connection could not be opened.
    #[error("could not connect to {url}{}", proxy.as_ref().map(|p| format!(" through the proxy {p}")).unwrap_or_default())]
    Connect {
        /// The request.
        url: String,
        /// The proxy the connection went through (`scheme://host:port`, no credentials), if any.
        proxy: Option<String>,
        /// The cause.
        #[source]
        source: BoxError,
    },

    /// The connection failed after it was opened (reset, cut body, TLS error).
    #[error("connection to {url} failed")]
    Transport {
        /// The request.
        url: String,
        /// The cause.
        #[source]
        source: BoxError,
    },

    /// The body ended before the expected length.
    #[error("the body from {url} ended after {received} of {expected} bytes")]
    BodyCut {
        /// The request.
        url: String,
        /// Bytes received so far (absolute offset).
        received: u64,
        /// Bytes expected (absolute end).
        expected: u64,
    },

    /// Writing the received bytes failed (the sink's error; not retried).
    #[error("could not store the body of {url}")]
    Io {
        /// The request.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A redirect from HTTPS to plain HTTP was refused.
    #[error("refusing the redirect from {from} to {to}: it downgrades HTTPS to HTTP")]
    InsecureRedirect {
        /// The URL that redirected.
        from: String,
        /// The target.
        to: String,
    },

    /// More redirects than allowed.
    #[error("too many redirects ({hops}) starting at {url}")]
    TooManyRedirects {
        /// The first URL.
        url: String,
        /// How many hops were followed.
        hops: usize,
    },

    /// The server's answer does not follow the protocol.
    #[error("unexpected answer from {url}: {what}")]
    Protocol {
        /// The request.
        url: String,
        /// What was wrong.
        what: String,
    },

    /// A repository id failed validation.
    #[error("invalid repository id {id:?}: {reason}")]
    InvalidRepoId {
        /// The id.
        id: String,
        /// Why.
        reason: String,
    },

    /// An unknown repository type.
    #[error("invalid repository type {value:?}: expected model, dataset, space or kernel")]
    InvalidRepoType {
        /// The value.
        value: String,
    },

    /// A URL could not be parsed or used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },

    /// The client configuration is invalid.
    #[error("invalid HTTP client configuration: {what}")]
    Config {
        /// What is wrong.
        what: String,
    },

    /// A retryable failure persisted through every attempt.
    #[error("gave up after {attempts} attempts")]
    RetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<Error>,
    },
}

fn request_id_suffix(id: &Option<String>) -> String {
    id.as_ref()
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default()
}

/// HTTP statuses that are worth another attempt.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl Error {
    /// Whether another attempt may succeed (network trouble, timeouts, 408/429/5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RateLimited { .. }
            | Error::Timeout { .. }
            | Error::Stalled { .. }
            | Error::Connect { .. }
            | Error::Transport { .. }
            | Error::BodyCut { .. } => true,
            Error::Http { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }

    /// How long the server asked us to wait before the next attempt.
    pub fn server_wait(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::Http { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Whether the error is a network-level failure (no usable answer from the server): callers
    /// fall back to the cache on these, like `huggingface_hub` does.
    pub fn is_network(&self) -> bool {
        match self {
            Error::Offline { .. }
            | Error::Timeout { .. }
            | Error::Stalled { .. }
            | Error::Connect { .. }
            | Error::Transport { .. }
            | Error::BodyCut { .. } => true,
            Error::RetriesExhausted { last, .. } => last.is_network(),
            _ => false,
        }
    }

    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Offline { .. } => Some(
                "unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) to allow network access".into(),
            ),
            Error::ProxyRejected { .. } => Some(
                "put the proxy's user and password in the proxy URL (http://user:password@host:port) or list the host in NO_PROXY".into(),
            ),
            Error::RepoNotFound {
                authenticated: false,
                ..
            } => Some(
                "check the repository id; if it is private, set HF_TOKEN or pass --token".into(),
            ),
            Error::RepoNotFound {
                authenticated: true,
                ..
            } => Some(
                "check the repository id, and that the token's account has access to it".into(),
            ),
            Error::GatedRepo {
                url,
                authenticated: false,
                ..
            } => Some(format!(
                "accept the conditions at {url} and set HF_TOKEN (or pass --token) with a token of that account"
            )),
            Error::GatedRepo {
                url,
                authenticated: true,
                ..
            } => Some(format!(
                "accept the conditions at {url} and use a token of that account (fine-grained tokens need access to public gated repositories)"
            )),
            Error::InvalidToken { token_source, .. } => Some(format!(
                "the token in {token_source} is invalid or expired: replace it (https://huggingface.co/settings/tokens) or unset it"
            )),
            Error::RevisionNotFound { .. } => {
                Some("check the branch, tag or commit name".into())
            }
            Error::RateLimited { .. } => Some(
                "wait and retry; a token (HF_TOKEN) raises the Hub's rate limits".into(),
            ),
            Error::Stalled { .. } | Error::Timeout { .. } => Some(
                "the network or server is too slow; rerun to resume, or relax PIPEFETCH_MIN_RATE / HF_HUB_DOWNLOAD_TIMEOUT".into(),
            ),
            Error::Connect { proxy: None, .. } => {
                Some("check the network, HF_ENDPOINT and any proxy settings".into())
            }
            Error::Connect {
                proxy: Some(proxy), ..
            } => Some(format!(
                "check the proxy {proxy} (from HTTPS_PROXY, HTTP_PROXY or ALL_PROXY), or list the host in NO_PROXY to connect directly"
            )),
            Error::Protocol { .. } => Some(
                "is HF_ENDPOINT a Hugging Face Hub endpoint? A proxy or firewall may be answering instead".into(),
            ),
            Error::RetriesExhausted { last, .. } => last.hint(),
            _ => None,
        }
    }
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;
