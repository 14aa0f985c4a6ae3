//! [`MirrorBuilder`] → [`Mirror`]: the S3 client, built once, and the small-object operations
//! (existence, locks, presigned URLs).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path as StorePath;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use tokio::sync::Semaphore;
use url::Url;

use crate::env::{Credentials, MirrorEnv};
use crate::error::{Error, RequestContext, Result};
use crate::location::{MirrorLocation, Sha256Hex};

/// S3's smallest part (all parts but the last).
pub(crate) const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part count.
pub(crate) const MAX_PARTS: u64 = 10_000;
/// The longest a SigV4 presigned URL may live.
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The cap on a lock's size.
pub const MAX_LOCK_BYTES: u64 = 16 * 1024 * 1024;

/// Builds a [`Mirror`]; every setting is checked once, in [`MirrorBuilder::build`].
#[derive(Clone)]
pub struct MirrorBuilder {
    location: MirrorLocation,
    endpoint: Option<String>,
    region: String,
    credentials: Option<Credentials>,
    max_retries: usize,
    retry_delays: bool,
    part_size: u64,
    upload_slots: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl fmt::Debug for MirrorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MirrorBuilder")
            .field("location", &self.location.to_string())
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("credentials", &self.credentials)
            .field("part_size", &self.part_size)
            .field("upload_slots", &self.upload_slots)
            .finish_non_exhaustive()
    }
}

impl MirrorBuilder {
    /// A builder for `location` on AWS S3 in `us-east-1`, without credentials yet.
    pub fn new(location: MirrorLocation) -> MirrorBuilder {
        MirrorBuilder {
            location,
            endpoint: None,
            region: crate::env::DEFAULT_REGION.to_string(),
            credentials: None,
            max_retries: 5,
            retry_delays: true,
            // The AWS CLI's defaults: 8 MiB parts; 8 parts in flight bound memory to 64 MiB.
            part_size: 8 * 1024 * 1024,
            upload_slots: 8,
            connect_timeout: Duration::from_secs(10),
            // A whole part must arrive within this: 8 MiB in 5 minutes is a 28 KB/s floor.
            request_timeout: Duration::from_secs(300),
        }
    }

    /// A builder for `location` with the endpoint, region and credentials of `env`.
    pub fn from_env(location: MirrorLocation, env: &MirrorEnv) -> MirrorBuilder {
        let mut b = MirrorBuilder::new(location)
            .region(env.region.clone())
            .endpoint(env.endpoint.clone());
        b.credentials = env.credentials().ok();
        b
    }

    /// The store's base URL for a store other than AWS S3 (R2, Garage, MinIO); requests are then
    /// path-style (`ENDPOINT/BUCKET/KEY`). `http` is accepted for loopback hosts only.
    pub fn endpoint(mut self, endpoint: Option<String>) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// The region requests are signed for.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// The credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// How many times a failed request is retried (default 5).
    pub fn max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// Whether retries wait (exponential backoff); tests turn the waits off.
    pub fn retry_delays(mut self, on: bool) -> Self {
        self.retry_delays = on;
        self
    }

    /// The multipart part size (default 8 MiB, at least 5 MiB). Files up to one part go in a
    /// single `PUT`; a file too large for 10,000 parts gets larger parts.
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// How many parts (or single-`PUT` files) may be in memory and in flight at once, across
    /// every upload of this mirror (default 8). Memory is at most this many parts.
    pub fn upload_slots(mut self, n: usize) -> Self {
        self.upload_slots = n;
        self
    }

    /// Time allowed to connect (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Time allowed for one request, a whole part's upload included (default 300 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Checks the settings and builds the client (no request is made).
    pub fn build(self) -> Result<Mirror> {
        let credentials = self.credentials.ok_or(Error::MissingCredentials {
            missing: "AWS_ACCESS_KEY_ID",
        })?;
        let endpoint = match &self.endpoint {
            Some(raw) => Some(check_endpoint(raw)?),
            None => None,
        };
        // reqwest is built without a crypto provider of its own (its default would be aws-lc-rs,
        // a C build): ring, as in the rest of pipefetch, is installed as the process default.
        // Failure means a default is already installed, which reqwest then uses.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let retry = RetryConfig {
            max_retries: self.max_retries,
            retry_timeout: Duration::from_secs(180),
            backoff: if self.retry_delays {
                BackoffConfig::default()
            } else {
                BackoffConfig {
                    init_backoff: Duration::ZERO,
                    max_backoff: Duration::ZERO,
                    base: 1.0,
                }
            },
        };
        let options = ClientOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_timeout(self.request_timeout)
            .with_user_agent(
                http::HeaderValue::from_str(&format!(
                    "pipefetch-mirror/{}",
                    env!("CARGO_PKG_VERSION")
                ))
                .unwrap_or_else(|_| http::HeaderValue::from_static("pipefetch-mirror")),
            );
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(self.location.bucket())
            .with_region(&self.region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(credentials.secret_access_key.expose())
            .with_retry(retry)
            .with_client_options(options);
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token.expose());
        }
        let shown_endpoint = match &endpoint {
            Some(url) => {
                builder = builder
                    .with_endpoint(url.as_str().trim_end_matches('/'))
                    .with_allow_http(url.scheme() == "http")
                    .with_virtual_hosted_style_request(false);
                url.as_str().trim_end_matches('/').to_string()
            }
            None => {
                builder = builder.with_virtual_hosted_style_request(true);
                format!("https://s3.{}.amazonaws.com", self.region)
            }
        };
        // `AmazonS3Builder`'s Debug would show the secret: it is never formatted, and its error
        // messages name settings, not values.
        let store = builder.build().map_err(|source| Error::Setup {
            location: self.location.to_string(),
            source: Box::new(source),
        })?;
        let part_size = self.part_size.max(MIN_PART_SIZE);
        tracing::debug!(
            location = %self.location,
            endpoint = %shown_endpoint,
            region = %self.region,
            credentials = ?credentials,
            "mirror client built"
        );
        Ok(Mirror {
            inner: Arc::new(Inner {
                store,
                location: self.location,
                endpoint: shown_endpoint,
                key_id: credentials.masked_key_id(),
                part_size,
                slots: Arc::new(Semaphore::new(self.upload_slots.max(1))),
                slot_count: self.upload_slots.max(1),
            }),
        })
    }
}

/// `https://…`, or `http://` to a loopback host (the spec's rule for URLs), with a host, no
/// credentials, no query.
fn check_endpoint(raw: &str) -> Result<Url> {
    let invalid = |reason: String| Error::InvalidEndpoint {
        endpoint: raw.to_string(),
        reason,
    };
    pipefetch_spec::validate_url(raw).map_err(&invalid)?;
    let url = Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials belong in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, not in the URL"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it has a query or fragment".into()));
    }
    Ok(url)
}

/// A mirror on an S3-compatible store. Cheap to clone; clones share one HTTP client and one
/// budget of upload slots.
#[derive(Clone)]
pub struct Mirror {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: AmazonS3,
    pub(crate) location: MirrorLocation,
    /// The endpoint, for messages.
    pub(crate) endpoint: String,
    /// The masked access key id, for messages.
    key_id: String,
    pub(crate) part_size: u64,
    /// Bounds the parts in memory and in flight across every upload.
    pub(crate) slots: Arc<Semaphore>,
    /// How many slots there are.
    pub(crate) slot_count: usize,
}

impl fmt::Debug for Mirror {
    // By hand: object_store's client holds the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mirror")
            .field("location", &self.inner.location.to_string())
            .field("endpoint", &self.inner.endpoint)
            .field("key_id", &self.inner.key_id)
            .field("part_size", &self.inner.part_size)
            .finish_non_exhaustive()
    }
}

/// What [`Mirror::put_lock`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockKeys {
    /// The lock's sha256.
    pub sha256: Sha256Hex,
    /// `PREFIX/pipelines/<name>.lock`.
    pub current: String,
    /// `PREFIX/pipelines/<name>/<sha256>.lock`.
    pub version: String,
}

/// A presigned `GET` URL: anyone holding it may read the object until it expires, so it is a
/// secret too. `Debug` and `Display` show it without its query (signature, credential scope,
/// session token); [`PresignedUrl::expose`] gives the whole URL to the downloader.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedUrl(Url);

impl PresignedUrl {
    /// The full URL, signature included.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    /// The URL without its query: safe to print.
    pub fn redacted(&self) -> String {
        let mut url = self.0.clone();
        url.set_query(None);
        format!("{url}?<signature redacted>")
    }
}

impl fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresignedUrl({})", self.redacted())
    }
}

impl fmt::Display for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Mirror {
    /// A builder for `location`.
    pub fn builder(location: MirrorLocation) -> MirrorBuilder {
        MirrorBuilder::new(location)
    }

    /// The mirror at `location` with the endpoint, region and credentials of the environment.
    pub fn from_env(location: MirrorLocation, env: &MirrorEnv) -> Result<Mirror> {
        env.credentials()?;
        MirrorBuilder::from_env(location, env).build()
    }

    /// Where the mirror is.
    pub fn location(&self) -> &MirrorLocation {
        &self.inner.location
    }

    /// The endpoint requests go to (for messages).
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// Checks that the bucket exists and the credentials may list under the prefix: one
    /// `ListObjectsV2` request (its first page only). Gives the clear errors (missing bucket,
    /// refused key, unreachable endpoint) before any work starts.
    pub async fn probe(&self) -> Result<()> {
        let prefix = self.inner.location.prefix();
        let path = StorePath::from(prefix);
        let mut listing = self.inner.store.list((!prefix.is_empty()).then_some(&path));
        match listing.next().await {
            Some(Err(e)) => Err(self.error("listing", prefix, e)),
            _ => Ok(()),
        }
    }

    /// Every object under the mirror's prefix as `(key, size)`, sorted by key (one
    /// `ListObjectsV2` per thousand keys): what a mirror holds, for tests and audits.
    pub async fn objects(&self) -> Result<Vec<(String, u64)>> {
        let prefix = self.inner.location.prefix();
        let path = StorePath::from(prefix);
        let mut listing = self.inner.store.list((!prefix.is_empty()).then_some(&path));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.error("listing", prefix, e))?;
            out.push((meta.location.to_string(), meta.size));
        }
        out.sort();
        Ok(out)
    }

    /// The size of the blob with this digest, or `None` when the mirror does not have it.
    pub async fn blob_size(&self, sha256: &Sha256Hex) -> Result<Option<u64>> {
        self.object_size(&self.inner.location.blob_key(sha256))
            .await
    }

    /// The size of an object (`HEAD`), or `None` when it does not exist.
    pub(crate) async fn object_size(&self, key: &str) -> Result<Option<u64>> {
        match self.inner.store.head(&StorePath::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("checking", key, e)),
        }
    }

    /// A URL that lets its holder `GET` the blob (with `Range` too) for `ttl` (at most 7 days,
    /// SigV4's limit). Signing is local: no request is made, and the blob need not exist.
    pub async fn presign_blob(&self, sha256: &Sha256Hex, ttl: Duration) -> Result<PresignedUrl> {
        let key = self.inner.location.blob_key(sha256);
        let url = self
            .inner
            .store
            .signed_url(
                http::Method::GET,
                &StorePath::from(key.as_str()),
                ttl.min(MAX_PRESIGN_TTL),
            )
            .await
            .map_err(|e| self.error("presigning", &key, e))?;
        Ok(PresignedUrl(url))
    }

    /// Stores a lock: first under its own hash (`pipelines/<name>/<sha256>.lock`), then as the
    /// pipeline's current lock (`pipelines/<name>.lock`), so the current lock always has its
    /// versioned copy.
    pub async fn put_lock(&self, name: &str, lock: Bytes) -> Result<LockKeys> {
        if lock.len() as u64 > MAX_LOCK_BYTES {
            return Err(Error::TooLarge {
                bucket: self.inner.location.bucket().to_string(),
                key: self.inner.location.lock_key(name)?,
                size: lock.len() as u64,
                limit: MAX_LOCK_BYTES,
            });
        }
        let sha256 = Sha256Hex::of(&lock);
        let version = self.inner.location.lock_version_key(name, &sha256)?;
        let current = self.inner.location.lock_key(name)?;
        self.put_small(&version, lock.clone()).await?;
        self.put_small(&current, lock).await?;
        Ok(LockKeys {
            sha256,
            current,
            version,
        })
    }

    /// The pipeline's current lock, or `None` when the mirror has none.
    pub async fn get_lock(&self, name: &str) -> Result<Option<Bytes>> {
        self.get_small(&self.inner.location.lock_key(name)?, MAX_LOCK_BYTES)
            .await
    }

    /// The lock with this hash, checked against it, or `None` when the mirror does not have it.
    pub async fn get_lock_version(&self, name: &str, sha256: &Sha256Hex) -> Result<Option<Bytes>> {
        let key = self.inner.location.lock_version_key(name, sha256)?;
        let Some(bytes) = self.get_small(&key, MAX_LOCK_BYTES).await? else {
            return Ok(None);
        };
        let actual = Sha256Hex::of(&bytes);
        if &actual != sha256 {
            return Err(Error::LocalMismatch {
                path: key.into(),
                what: "sha256",
                expected: sha256.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(Some(bytes))
    }

    /// Writes a small object in one `PUT`.
    pub(crate) async fn put_small(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.inner
            .store
            .put(&StorePath::from(key), PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|e| self.error("writing", key, e))
    }

    /// Reads a small object whole, refusing one larger than `cap`; `None` when it is missing.
    pub(crate) async fn get_small(&self, key: &str, cap: u64) -> Result<Option<Bytes>> {
        let result = match self.inner.store.get(&StorePath::from(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { source, path }) => {
                // A missing bucket answers 404 too, with its own code: that is an error.
                let e = object_store::Error::NotFound { path, source };
                return match self.error("reading", key, e) {
                    e @ Error::BucketNotFound { .. } => Err(e),
                    _ => Ok(None),
                };
            }
            Err(e) => return Err(self.error("reading", key, e)),
        };
        let too_large = |size: u64| Error::TooLarge {
            bucket: self.inner.location.bucket().to_string(),
            key: key.to_string(),
            size,
            limit: cap,
        };
        if result.meta.size > cap {
            return Err(too_large(result.meta.size));
        }
        let mut body = Vec::with_capacity(result.meta.size as usize);
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error("reading", key, e))?;
            if (body.len() + chunk.len()) as u64 > cap {
                return Err(too_large((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(Bytes::from(body)))
    }

    /// Maps an object-store error to ours, with the request's context and a class a user can
    /// act on.
    pub(crate) fn error(&self, op: &'static str, key: &str, source: object_store::Error) -> Error {
        let inner = &self.inner;
        let code = s3_error_code(&source);
        if code.as_deref() == Some("NoSuchBucket") {
            return Error::BucketNotFound {
                bucket: inner.location.bucket().to_string(),
                endpoint: inner.endpoint.clone(),
            };
        }
        let request = Box::new(RequestContext {
            op,
            bucket: inner.location.bucket().to_string(),
            key: key.to_string(),
            endpoint: inner.endpoint.clone(),
        });
        // Listing errors come wrapped as `Generic`, so the S3 code decides as much as the variant.
        let refused = matches!(
            source,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || code.as_deref().is_some_and(|c| REFUSED_CODES.contains(&c));
        match source {
            source if refused => Error::AccessDenied {
                request,
                key_id: inner.key_id.clone(),
                code,
                source: Box::new(source),
            },
            source if is_connect_error(&source) => Error::Unreachable {
                request,
                source: Box::new(source),
            },
            source => Error::Store {
                request,
                source: Box::new(source),
            },
        }
    }
}

/// S3 error codes that mean "these credentials may not do this".
const REFUSED_CODES: [&str; 7] = [
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
];

/// Walks an error's causes.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// Whether the request never reached the server (refused, no route, DNS, TLS handshake).
fn is_connect_error(e: &object_store::Error) -> bool {
    chain(e).any(|e| {
        e.downcast_ref::<HttpError>()
            .is_some_and(|h| matches!(h.kind(), HttpErrorKind::Connect))
    })
}

/// The `<Code>` of an S3 XML error body, which object_store keeps in its message.
fn s3_error_code(e: &object_store::Error) -> Option<String> {
    chain(e).find_map(|e| {
        let text = e.to_string();
        let start = text.find("<Code>")? + "<Code>".len();
        let len = text[start..].find("</Code>")?;
        let code = &text[start..start + len];
        (!code.is_empty() && code.len() < 64 && code.chars().all(|c| c.is_ascii_alphanumeric()))
            .then(|| code.to_string())
    })
}
