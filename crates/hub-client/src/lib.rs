//! A client for the Hugging Face Hub's download protocol, and nothing else.
//!
//! It resolves file metadata (`HEAD` on `/resolve/`), reads repository info and tree listings, and
//! streams bodies into a caller's [`BodySink`], resuming with `Range` after failures. It does not
//! know the cache: the fetcher decides where bytes go.
//!
//! ```no_run
//! use pipefetch_hub_client::{HfEnv, HubClient, Repo};
//!
//! # async fn run() -> Result<(), pipefetch_hub_client::Error> {
//! let client = HubClient::from_env(&HfEnv::from_env())?;
//! let repo = Repo::model("openai-community/gpt2")?;
//! let meta = client.file_metadata(&repo, "main", "config.json").await?;
//! let mut bytes = Vec::new();
//! client.download(&meta.location, 0.., &mut bytes).await?;
//! assert_eq!(bytes.len() as u64, meta.size);
//! # Ok(()) }
//! ```
//!
//! # Design decisions
//! - **hyper stays private.** The public types are Hub types: [`Repo`], [`FileMetadata`],
//!   [`TreeEntry`], [`ByteStream`] of `Bytes` frames. hyper-util's pooled HTTP/1.1 client with
//!   rustls (ring, webpki roots) is built once; [`HubClient`] clones share it.
//! - **Redirects are ours.** Every hop goes through one function that sends the token only to its
//!   own origin (scheme, host, port), drops it for the rest of the chain once the origin changes,
//!   and refuses HTTPS→HTTP. The metadata `HEAD` follows only relative redirects (keeping the
//!   query) and reads CDN redirects without following them.
//! - **No hangs.** A connect timeout, a header timeout, an idle timeout on bodies (no byte for that
//!   long aborts the attempt), and a rate floor (fewer than N bytes per window is a stall) that
//!   catches trickles an idle timer never sees.
//! - **One retry policy** ([`RetryPolicy`]), pure and unit-tested: exponential backoff with jitter,
//!   server hints (`Retry-After`, `RateLimit`) honoured and capped, downloads resumed with `Range`
//!   from the sink's position, and a fresh set of attempts whenever bytes arrived. Retries are
//!   reported to an observer so that progress can show them.
//! - **Environment in one place** ([`mod@env`]): every `HF_*` variable is read there and documented.
//! - **Typed errors** with hints ([`Error::hint`]), mapped from `X-Error-Code` first, then status.
#![deny(missing_docs)]

mod api;
mod client;
mod download;
pub mod env;
mod error;
mod proxy;
mod redact;
mod repo;
mod retry;

pub use api::{EntryKind, FileMetadata, LfsInfo, RepoInfo, TreeEntry, normalize_etag};
pub use client::{Auth, ByteStream, HubClient, HubClientBuilder, MAX_JSON_BYTES, MAX_REDIRECTS};
pub use download::{BodySink, ByteRange, DownloadHead, DownloadOutcome, ResponseInfo};
pub use env::{HfEnv, Token, TokenSource};
pub use error::{BoxError, Error, Result};
pub use proxy::ProxyVars;
pub use redact::{redact_url, redact_url_str};
pub use repo::{
    Repo, RepoId, RepoType, encode_path, encode_revision, is_commit_sha, repo_info_url,
    resolve_url, tree_url,
};
pub use retry::{RetryEvent, RetryObserver, RetryPolicy, RetryReason};
pub use url::Url;
