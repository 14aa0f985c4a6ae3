//! The HTTP client: one connection pool, built once, cloned everywhere.
//!
//! Every request goes through [`HubClient::send_once`], which follows redirects itself so that the
//! `Authorization` rule is enforced in one place: the token goes only to its own origin (scheme, host
//! and port), is dropped for the rest of a redirect chain once the origin changes, and a redirect
//! from HTTPS to plain HTTP is refused.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::proxy::{Proxies, ProxyConnector, ProxyVars};
use hyper_util::rt::TokioExecutor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use url::Url;

use crate::env::{HfEnv, Token, TokenSource};
use crate::error::{Error, Result};
use crate::redact::{redact_url, redact_url_str};
use crate::repo::Repo;
use crate::retry::{RetryEvent, RetryObserver, RetryPolicy, RetryReason, server_wait};

/// The most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// The largest JSON reply we read.
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// The largest error body we read to find a message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A bearer token bound to the one origin (scheme, host, port) it may be sent to.
#[derive(Clone, Debug)]
pub struct Auth {
    origin: url::Origin,
    token: Token,
}

impl Auth {
    /// A token for the origin of `url`.
    pub fn for_url(url: &Url, token: Token) -> Auth {
        Auth {
            origin: url.origin(),
            token,
        }
    }

    /// Whether the token may be sent to `url`.
    pub fn applies_to(&self, url: &Url) -> bool {
        url.origin() == self.origin
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }
}

/// Builds a [`HubClient`]; everything is validated once in [`HubClientBuilder::build`].
#[derive(Clone)]
pub struct HubClientBuilder {
    endpoint: String,
    token: Option<Token>,
    user_agent: Option<String>,
    user_agent_origin: Option<String>,
    connect_timeout: Duration,
    read_idle_timeout: Duration,
    metadata_timeout: Duration,
    api_timeout: Duration,
    min_rate: Option<(u64, Duration)>,
    retry: RetryPolicy,
    on_retry: Option<RetryObserver>,
    max_connections_per_host: Option<usize>,
    offline: bool,
    proxy: ProxyVars,
}

impl Default for HubClientBuilder {
    fn default() -> HubClientBuilder {
        HubClientBuilder {
            endpoint: crate::env::DEFAULT_ENDPOINT.to_string(),
            token: None,
            user_agent: None,
            user_agent_origin: None,
            connect_timeout: Duration::from_secs(10),
            read_idle_timeout: Duration::from_secs(10),
            metadata_timeout: Duration::from_secs(10),
            // The Hub computes tree listings of large repositories on demand; give it longer.
            api_timeout: Duration::from_secs(30),
            min_rate: Some(crate::env::DEFAULT_MIN_RATE),
            retry: RetryPolicy::default(),
            on_retry: None,
            max_connections_per_host: None,
            offline: false,
            proxy: ProxyVars::default(),
        }
    }
}

impl HubClientBuilder {
    /// The Hub endpoint (default `https://huggingface.co`); plain `http` is allowed.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self
    }

    /// The Hub token, sent only to the endpoint's origin.
    pub fn token(mut self, token: Option<Token>) -> Self {
        self.token = token;
        self
    }

    /// The whole `User-Agent` value.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// Time allowed to open a connection (TCP and TLS).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// A download attempt that receives no byte for this long is aborted (and retried).
    pub fn read_idle_timeout(mut self, d: Duration) -> Self {
        self.read_idle_timeout = d;
        self
    }

    /// Time allowed for the answer to a metadata request (HEAD, JSON API), per attempt.
    pub fn metadata_timeout(mut self, d: Duration) -> Self {
        self.metadata_timeout = d;
        self
    }

    /// Time allowed for the answer's headers to a JSON API call (repo info, tree pages), per attempt.
    pub fn api_timeout(mut self, d: Duration) -> Self {
        self.api_timeout = d;
        self
    }

    /// A connection delivering fewer than `bytes` in a `window` is a stall; this defeats trickles
    /// that an idle timer never catches. Default 8 MiB per 180 s.
    pub fn min_rate(mut self, bytes: u64, window: Duration) -> Self {
        self.min_rate = Some((bytes, window));
        self
    }

    /// No rate floor.
    pub fn no_min_rate(mut self) -> Self {
        self.min_rate = None;
        self
    }

    /// The retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Observes every retry (why, which attempt, how long we wait); it must not block.
    pub fn on_retry(mut self, observer: RetryObserver) -> Self {
        self.on_retry = Some(observer);
        self
    }

    /// At most `n` requests in flight per origin (a download holds its slot while streaming).
    pub fn max_connections_per_host(mut self, n: usize) -> Self {
        self.max_connections_per_host = Some(n);
        self
    }

    /// Offline mode: every request fails with [`Error::Offline`] without touching the network.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// The HTTP proxies (none by default; [`HubClient::builder_from_env`] reads `HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`). Only `http://` proxies are supported; `https`
    /// destinations go through a `CONNECT` tunnel, so the proxy never sees the token.
    pub fn proxy(mut self, vars: ProxyVars) -> Self {
        self.proxy = vars;
        self
    }

    /// Validates the settings and builds the client.
    pub fn build(self) -> Result<HubClient> {
        let config = |what: &str| Error::Config {
            what: what.to_string(),
        };
        let endpoint =
            Url::parse(self.endpoint.trim_end_matches('/')).map_err(|e| Error::InvalidUrl {
                url: redact_url_str(&self.endpoint),
                reason: e.to_string(),
            })?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
            return Err(config(&format!(
                "the endpoint {endpoint} must be an http or https URL with a host"
            )));
        }
        if endpoint.query().is_some() || endpoint.fragment().is_some() {
            return Err(config(&format!(
                "the endpoint {endpoint} must not have a query or fragment"
            )));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("read_idle_timeout", self.read_idle_timeout),
            ("metadata_timeout", self.metadata_timeout),
            ("api_timeout", self.api_timeout),
        ] {
            if d.is_zero() {
                return Err(config(&format!("{name} must be greater than zero")));
            }
        }
        if let Some((_, window)) = self.min_rate
            && window.is_zero()
        {
            return Err(config("the min_rate window must be greater than zero"));
        }
        if self.retry.max_attempts == 0 {
            return Err(config("retry.max_attempts must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.retry.jitter) {
            return Err(config("retry.jitter must be between 0 and 1"));
        }
        if self.max_connections_per_host == Some(0) {
            return Err(config("max_connections_per_host must be at least 1"));
        }

        let mut ua = self.user_agent.unwrap_or_else(|| {
            format!(
                "pipefetch/{v}; hub-client/{v}",
                v = env!("CARGO_PKG_VERSION")
            )
        });
        if let Some(origin) = self.user_agent_origin {
            ua.push_str("; origin/");
            ua.push_str(&origin);
        }
        let user_agent = HeaderValue::from_str(&ua)
            .map_err(|_| config("the user agent contains characters not allowed in a header"))?;

        let auth = self.token.map(|t| Auth::for_url(&endpoint, t));
        if let Some(a) = &auth {
            HeaderValue::from_str(&format!("Bearer {}", a.token.expose()))
                .map_err(|_| config("the token contains characters not allowed in a header"))?;
        }

        let proxies = Proxies::from_vars(&self.proxy)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| config(&format!("TLS setup failed: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(proxies.connector(http, self.connect_timeout));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(self.max_connections_per_host.unwrap_or(64))
            // hyper's read buffer grows to ~400 KiB per connection by default: 26 MiB at 64
            // connections, most of the fetcher's memory (and frames a caller keeps pin whole
            // buffers). 128 KiB reads are as fast on loopback (64 KiB ones were ~10 % slower).
            .http1_max_buf_size(128 * 1024)
            .build(https);

        Ok(HubClient {
            inner: Arc::new(Inner {
                http,
                endpoint,
                auth,
                user_agent,
                read_idle_timeout: self.read_idle_timeout,
                metadata_timeout: self.metadata_timeout,
                api_timeout: self.api_timeout,
                min_rate: self.min_rate,
                retry: self.retry,
                on_retry: self.on_retry,
                offline: self.offline,
                proxies,
                per_host: self
                    .max_connections_per_host
                    .map(|n| Arc::new((n, Mutex::new(HashMap::new())))),
            }),
        })
    }
}

/// A client for the Hub; cheap to clone (the pool and settings are shared).
#[derive(Clone)]
pub struct HubClient {
    pub(crate) inner: Arc<Inner>,
}

type PerHost = Arc<(usize, Mutex<HashMap<String, Arc<Semaphore>>>)>;

#[derive(Clone)]
pub(crate) struct Inner {
    http: Client<HttpsConnector<ProxyConnector>, Empty<Bytes>>,
    pub(crate) endpoint: Url,
    pub(crate) auth: Option<Auth>,
    user_agent: HeaderValue,
    pub(crate) read_idle_timeout: Duration,
    pub(crate) metadata_timeout: Duration,
    api_timeout: Duration,
    min_rate: Option<(u64, Duration)>,
    pub(crate) retry: RetryPolicy,
    on_retry: Option<RetryObserver>,
    offline: bool,
    proxies: Proxies,
    per_host: Option<PerHost>,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("token", &self.inner.auth.as_ref().map(|a| &a.token))
            .field("offline", &self.inner.offline)
            .finish_non_exhaustive()
    }
}

/// How redirects are handled for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Redirects {
    /// Follow only `Location`s without a host (the Hub's metadata HEAD); an absolute redirect is
    /// returned as the answer.
    RelativeOnly,
    /// Follow every redirect.
    All,
}

/// An answer, after redirects, with its body not yet read.
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) url: Url,
    pub(crate) body: Incoming,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    /// Whether a token was sent on the final hop.
    pub(crate) authenticated: bool,
}

/// Who is asking, for turning an HTTP status into a typed error.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ctx<'a> {
    pub(crate) repo: Option<&'a Repo>,
    pub(crate) revision: Option<&'a str>,
    pub(crate) path: Option<&'a str>,
}

impl HubClient {
    /// A builder with the defaults.
    pub fn builder() -> HubClientBuilder {
        HubClientBuilder::default()
    }

    /// A builder preset from the environment (endpoint, token unless implicit tokens are disabled,
    /// offline mode, timeouts, rate floor, attempts, user-agent origin).
    pub fn builder_from_env(env: &HfEnv) -> HubClientBuilder {
        let mut b = HubClient::builder()
            .endpoint(env.endpoint.clone())
            .token(if env.disable_implicit_token {
                None
            } else {
                env.token.clone()
            })
            .offline(env.offline)
            .proxy(env.proxy.clone())
            .metadata_timeout(env.etag_timeout)
            .read_idle_timeout(env.download_timeout)
            .retry(RetryPolicy::default().with_max_attempts(env.max_attempts));
        b.user_agent_origin = env.user_agent_origin.clone();
        b.min_rate = env.min_rate;
        b
    }

    /// A client configured from the environment.
    pub fn from_env(env: &HfEnv) -> Result<HubClient> {
        HubClient::builder_from_env(env).build()
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }

    /// The Hub token and the origin it is bound to.
    pub fn auth(&self) -> Option<&Auth> {
        self.inner.auth.as_ref()
    }

    /// Whether the client is in offline mode.
    pub fn is_offline(&self) -> bool {
        self.inner.offline
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The same client (same pool, token and connection budget) with another retry policy, e.g.
    /// [`RetryPolicy::never`] for a quick metadata probe before falling back to the cache.
    pub fn with_retry(&self, policy: RetryPolicy) -> HubClient {
        let mut inner = (*self.inner).clone();
        inner.retry = policy;
        HubClient {
            inner: Arc::new(inner),
        }
    }

    /// The same client with another retry observer (for example one bound to a single file's
    /// progress events).
    pub fn with_retry_observer(&self, observer: RetryObserver) -> HubClient {
        let mut inner = (*self.inner).clone();
        inner.on_retry = Some(observer);
        HubClient {
            inner: Arc::new(inner),
        }
    }

    /// The same client with `observer` called after the retry observer it has (if any), so that
    /// a library that reports retries can take a caller's client without silencing the caller's
    /// own observer.
    pub fn with_added_retry_observer(&self, observer: RetryObserver) -> HubClient {
        let chained: RetryObserver = match self.inner.on_retry.clone() {
            Some(first) => Arc::new(move |event: &crate::RetryEvent| {
                first(event);
                observer(event);
            }),
            None => observer,
        };
        self.with_retry_observer(chained)
    }

    async fn permit(&self, url: &Url) -> Option<OwnedSemaphorePermit> {
        let (n, map) = &**self.inner.per_host.as_ref()?;
        let sem = {
            // The lock is held only to look up the semaphore, never across an await.
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(url.origin().ascii_serialization())
                .or_insert_with(|| Arc::new(Semaphore::new(*n)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }

    /// One attempt: sends the request and follows redirects per `redirects`, applying the
    /// `Authorization` rule on every hop.
    pub(crate) async fn send_once(
        &self,
        method: Method,
        url: &Url,
        auth: Option<&Auth>,
        range: Option<(u64, Option<u64>)>,
        redirects: Redirects,
        header_timeout: Duration,
    ) -> Result<Response> {
        if self.inner.offline {
            return Err(Error::Offline {
                url: redact_url(url),
            });
        }
        let mut current = url.clone();
        // Once the chain leaves the token's origin the token is never sent again, even if a later
        // hop comes back: the intermediate server chose that URL.
        let mut auth = auth.filter(|a| a.applies_to(&current));
        for _hop in 0..=MAX_REDIRECTS {
            let mut req = http::Request::builder()
                .method(method.clone())
                .uri(current.as_str())
                .header(header::USER_AGENT, self.inner.user_agent.clone())
                .header(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
            if let Some(a) = auth {
                let value = HeaderValue::from_str(&format!("Bearer {}", a.token.expose()))
                    .map_err(|_| Error::Config {
                        what: "the token contains characters not allowed in a header".into(),
                    })?;
                req = req.header(header::AUTHORIZATION, value);
            }
            if let Ok(uri) = current.as_str().parse::<http::Uri>()
                && let Some(value) = self.inner.proxies.authorization_for(&uri)
            {
                req = req.header(header::PROXY_AUTHORIZATION, value);
            }
            if let Some((start, end)) = range {
                let value = match end {
                    Some(end) => format!("bytes={start}-{}", end.saturating_sub(1)),
                    None => format!("bytes={start}-"),
                };
                req = req.header(header::RANGE, value);
            }
            let req = req.body(Empty::new()).map_err(|e| Error::InvalidUrl {
                url: redact_url(&current),
                reason: e.to_string(),
            })?;

            let permit = self.permit(&current).await;
            let resp =
                match tokio::time::timeout(header_timeout, self.inner.http.request(req)).await {
                    Err(_) => {
                        return Err(Error::Timeout {
                            url: redact_url(&current),
                            what: "response headers",
                            after: header_timeout,
                        });
                    }
                    Ok(Err(e)) if e.is_connect() => {
                        if let Some(p) = crate::proxy::find_proxy_error(&e)
                            && p.auth_required
                        {
                            return Err(Error::ProxyRejected {
                                proxy: p.proxy.clone(),
                                url: redact_url(&current),
                                status: 407,
                            });
                        }
                        return Err(Error::Connect {
                            url: redact_url(&current),
                            proxy: current
                                .as_str()
                                .parse::<http::Uri>()
                                .ok()
                                .and_then(|uri| self.inner.proxies.proxy_for(&uri)),
                            source: Box::new(e),
                        });
                    }
                    Ok(Err(e)) => {
                        return Err(Error::Transport {
                            url: redact_url(&current),
                            source: Box::new(e),
                        });
                    }
                    Ok(Ok(resp)) => resp,
                };
            let status = resp.status();
            let is_redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let (parts, body) = resp.into_parts();
            let answer = Response {
                status,
                headers: parts.headers,
                url: current.clone(),
                body,
                permit,
                authenticated: auth.is_some(),
            };
            let Some(location) = location.filter(|_| is_redirect) else {
                return Ok(answer);
            };
            // A Location with a scheme is absolute; anything else (a path, `//host/...`, `?q`) is
            // resolved against the current URL like a browser would.
            let absolute = Url::parse(&location).is_ok();
            if redirects == Redirects::RelativeOnly && (absolute || location.starts_with("//")) {
                return Ok(answer);
            }
            let target = redirect_target(&current, &location)?;
            if target.origin() != current.origin() {
                auth = None;
            }
            drain_small(answer.body, &answer.headers, header_timeout).await;
            current = target;
        }
        Err(Error::TooManyRedirects {
            url: redact_url(url),
            hops: MAX_REDIRECTS,
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy's attempts are used up.
    pub(crate) async fn with_retries<T, F, Fut>(&self, url: &Url, mut attempt_fn: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let max = self.inner.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match attempt_fn().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < max => {
                    self.before_retry(url, attempt, &e, None, false).await;
                    attempt += 1;
                }
                Err(e) if e.is_retryable() && attempt > 1 => {
                    return Err(Error::RetriesExhausted {
                        attempts: attempt,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reports a retry and waits as the policy says.
    pub(crate) async fn before_retry(
        &self,
        url: &Url,
        attempt: u32,
        error: &Error,
        resume_from: Option<u64>,
        mid_body: bool,
    ) {
        let policy = &self.inner.retry;
        // A body that broke after bytes arrived resumes at once: those bytes show the server is
        // up, and a cut or stalled connection is not a server asking for time. Backing off there
        // only left the file waiting (issue 7: a quarter of CDN bodies cut cost seconds each).
        let answered = matches!(error, Error::Http { .. } | Error::RateLimited { .. });
        let wait = if mid_body && !answered {
            Duration::ZERO
        } else {
            policy.delay(attempt, error.server_wait())
        };
        let reason = match error {
            // A connection that broke after bytes of this attempt's body arrived is a cut body.
            Error::Transport { .. } if mid_body => RetryReason::BodyCut,
            Error::RateLimited { .. } => RetryReason::Status(429),
            Error::Http { status, .. } => RetryReason::Status(*status),
            Error::Timeout { .. } | Error::Stalled { .. } => RetryReason::Timeout,
            Error::BodyCut { .. } => RetryReason::BodyCut,
            _ => RetryReason::Connection,
        };
        tracing::debug!(url = %redact_url(url), attempt, ?wait, error = %error, "retrying");
        if let Some(observer) = &self.inner.on_retry {
            observer(&RetryEvent {
                url: url.to_string(),
                reason,
                attempt,
                max_attempts: policy.max_attempts,
                wait,
                error: error.to_string(),
                resume_from,
            });
        }
        if policy.sleep && !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Turns an unsuccessful answer into a typed error (reading a small error body for GETs).
    pub(crate) async fn status_error(&self, resp: Response, ctx: Ctx<'_>) -> Error {
        let header = |name: &str| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let code = header("x-error-code");
        let mut message = header("x-error-message");
        let request_id = header("x-request-id")
            .or_else(|| header("x-amzn-trace-id"))
            .or_else(|| header("x-amz-cf-id"));
        let commit = header("x-repo-commit");
        let retry_after = server_wait(&resp.headers);
        let status = resp.status.as_u16();
        let url = redact_url(&resp.url);
        let authenticated = resp.authenticated;

        if message.is_none() {
            message = read_error_message(resp.body, self.inner.read_idle_timeout).await;
        }

        // A plain-http request goes to the proxy itself, which may refuse it: 407, or 401 from
        // proxies that answer like a server (tinyproxy). Neither carries the Hub's error code.
        let proxy = resp
            .url
            .as_str()
            .parse::<http::Uri>()
            .ok()
            .filter(|uri| uri.scheme() == Some(&http::uri::Scheme::HTTP))
            .and_then(|uri| self.inner.proxies.proxy_for(&uri));
        if let Some(proxy) = proxy
            && (status == 407 || (status == 401 && code.is_none()))
        {
            return Error::ProxyRejected { proxy, url, status };
        }
        if message.as_deref() == Some("Access to this resource is disabled.")
            && let Some(repo) = ctx.repo
        {
            return Error::DisabledRepo { repo: repo.clone() };
        }
        if let Some(repo) = ctx.repo {
            let revision = ctx.revision.unwrap_or("main").to_string();
            match code.as_deref() {
                Some("RevisionNotFound") => {
                    return Error::RevisionNotFound {
                        repo: repo.clone(),
                        revision,
                    };
                }
                Some("EntryNotFound") => {
                    return Error::EntryNotFound {
                        repo: repo.clone(),
                        revision,
                        path: ctx.path.unwrap_or_default().to_string(),
                        commit,
                    };
                }
                Some("GatedRepo") => {
                    return Error::GatedRepo {
                        repo: repo.clone(),
                        url: repo.web_url(&self.inner.endpoint),
                        authenticated: authenticated || status == 403,
                    };
                }
                Some("RepoNotFound") => {
                    return Error::RepoNotFound {
                        repo: repo.clone(),
                        authenticated,
                        request_id,
                    };
                }
                _ => {}
            }
        }
        if status == 401 {
            let invalid = message
                .as_deref()
                .is_some_and(|m| m.contains("Invalid credentials in Authorization header"));
            if invalid && authenticated {
                let token_source = self
                    .inner
                    .auth
                    .as_ref()
                    .map(|a| a.token.source().clone())
                    .unwrap_or(TokenSource::Explicit);
                return Error::InvalidToken { token_source, url };
            }
            if let Some(repo) = ctx.repo {
                return Error::RepoNotFound {
                    repo: repo.clone(),
                    authenticated,
                    request_id,
                };
            }
        }
        if status == 429 {
            return Error::RateLimited { url, retry_after };
        }
        Error::Http {
            status,
            url,
            request_id,
            message,
            retry_after,
        }
    }

    /// A GET of a small JSON document (capped at [`MAX_JSON_BYTES`]) with retries; returns the
    /// parsed value and the answer's headers.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
        ctx: Ctx<'_>,
    ) -> Result<(T, HeaderMap)> {
        self.with_retries(url, || async {
            let resp = self
                .send_once(
                    Method::GET,
                    url,
                    self.inner.auth.as_ref(),
                    None,
                    Redirects::All,
                    self.inner.api_timeout,
                )
                .await?;
            if !resp.status.is_success() {
                return Err(self.status_error(resp, ctx).await);
            }
            let headers = resp.headers.clone();
            let final_url = redact_url(&resp.url);
            let mut stream = self.stream(resp);
            let bytes = stream.collect_capped(MAX_JSON_BYTES).await?;
            let value = serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
                url: final_url,
                what: format!("invalid JSON ({e}); not a Hugging Face Hub endpoint? a proxy?"),
            })?;
            Ok((value, headers))
        })
        .await
    }

    /// Wraps an answer's body with this client's idle timeout and rate floor.
    pub(crate) fn stream(&self, resp: Response) -> ByteStream {
        let now = Instant::now();
        let idle = self.inner.read_idle_timeout;
        let first_deadline = match self.inner.min_rate {
            Some((_, w)) => idle.min(w),
            None => idle,
        };
        ByteStream {
            body: resp.body,
            // Only ever shown (errors, Debug): kept without its query.
            url: redact_url(&resp.url),
            idle,
            min_rate: self.inner.min_rate,
            timer: Box::pin(tokio::time::sleep(first_deadline)),
            last_byte: now,
            window_start: now,
            window_bytes: 0,
            _permit: resp.permit,
        }
    }
}

/// Reads a small redirect body to its end so that the connection goes back to the pool; a large
/// or unsized one is dropped (closing that connection) rather than read.
async fn drain_small(mut body: Incoming, headers: &HeaderMap, limit: Duration) {
    let small = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n <= MAX_ERROR_BODY as u64);
    if !small {
        return;
    }
    let _ = tokio::time::timeout(limit, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

/// Resolves a redirect's `Location` against the current URL, refusing HTTPS→HTTP downgrades and
/// non-HTTP targets.
pub(crate) fn redirect_target(current: &Url, location: &str) -> Result<Url> {
    let target = current.join(location).map_err(|e| Error::Protocol {
        url: redact_url(current),
        what: format!(
            "redirect to an invalid Location {:?}: {e}",
            redact_url_str(location)
        ),
    })?;
    if current.scheme() == "https" && target.scheme() == "http" {
        return Err(Error::InsecureRedirect {
            from: redact_url(current),
            to: redact_url(&target),
        });
    }
    if !matches!(target.scheme(), "http" | "https") {
        return Err(Error::Protocol {
            url: redact_url(current),
            what: format!("redirect to a non-HTTP URL {}", redact_url(&target)),
        });
    }
    Ok(target)
}

async fn read_error_message(body: Incoming, idle: Duration) -> Option<String> {
    let mut body = body;
    let mut buf = BytesMut::new();
    while buf.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(m) = v.get("error").and_then(|m| m.as_str())
    {
        return Some(m.to_string());
    }
    let text = text.trim();
    (!text.is_empty() && text.len() <= 500 && !text.starts_with('<')).then(|| text.to_string())
}

/// A response body as a stream of `Bytes` frames, guarded by the idle timeout and the rate floor.
///
/// Frames are passed through as the connection delivers them: no copy, no re-chunking.
pub struct ByteStream {
    body: Incoming,
    url: String,
    idle: Duration,
    min_rate: Option<(u64, Duration)>,
    timer: Pin<Box<Sleep>>,
    last_byte: Instant,
    window_start: Instant,
    window_bytes: u64,
    _permit: Option<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ByteStream {
    /// The next frame, `None` at the end. Fails with [`Error::Timeout`] when no byte arrives for the
    /// idle timeout, [`Error::Stalled`] below the rate floor, [`Error::Transport`] on a broken
    /// connection (including a body shorter than its `Content-Length`).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            tokio::select! {
                biased;
                frame = self.body.frame() => match frame {
                    None => return Ok(None),
                    Some(Err(e)) => {
                        return Err(Error::Transport { url: self.url.clone(), source: Box::new(e) });
                    }
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else { continue };
                        if data.is_empty() {
                            continue;
                        }
                        // The timer is not reset per frame (that would cost a timer update per
                        // chunk); it is re-armed lazily when it fires.
                        self.last_byte = Instant::now();
                        self.window_bytes += data.len() as u64;
                        self.check_window(self.last_byte)?;
                        return Ok(Some(data));
                    }
                },
                () = &mut self.timer => {
                    let now = Instant::now();
                    if now.duration_since(self.last_byte) >= self.idle {
                        return Err(Error::Timeout { url: self.url.clone(), what: "body bytes", after: self.idle });
                    }
                    self.check_window(now)?;
                    let mut deadline = self.last_byte + self.idle;
                    if let Some((_, window)) = self.min_rate {
                        deadline = deadline.min(self.window_start + window);
                    }
                    self.timer.as_mut().reset(deadline.into());
                }
            }
        }
    }

    /// Ends the current rate window if it is over, failing when it fell short of the floor.
    fn check_window(&mut self, now: Instant) -> Result<()> {
        let Some((floor, window)) = self.min_rate else {
            return Ok(());
        };
        if now.duration_since(self.window_start) >= window {
            if self.window_bytes < floor {
                return Err(Error::Stalled {
                    url: self.url.clone(),
                    bytes: floor,
                    window,
                });
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        Ok(())
    }

    /// Reads the whole body, failing if it exceeds `cap` bytes.
    pub async fn collect_capped(&mut self, cap: usize) -> Result<Bytes> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            if buf.len() + chunk.len() > cap {
                return Err(Error::Protocol {
                    url: self.url.clone(),
                    what: format!("reply larger than {cap} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_rules() {
        let https = Url::parse("https://hub.example/org/name/resolve/main/a?x=1").unwrap();
        let err = redirect_target(&https, "http://hub.example/a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing the redirect from https://hub.example/org/name/resolve/main/a?<redacted> to \
             http://hub.example/a: it downgrades HTTPS to HTTP"
        );
        let t = redirect_target(&https, "/api/resolve-cache/x?etag=%22e%22").unwrap();
        assert_eq!(
            t.as_str(),
            "https://hub.example/api/resolve-cache/x?etag=%22e%22"
        );
        assert_eq!(t.origin(), https.origin());
        let cdn = redirect_target(&https, "https://cdn.example/blob?sig=1").unwrap();
        assert_ne!(cdn.origin(), https.origin());
        // HTTP to HTTPS is an upgrade, but still another origin: the token is dropped.
        let http = Url::parse("http://hub.example/a").unwrap();
        let up = redirect_target(&http, "https://hub.example/a").unwrap();
        assert_ne!(up.origin(), http.origin());
        assert!(redirect_target(&https, "ftp://x/y").is_err());

        let auth = Auth::for_url(&https, Token::new("hf_secret_token_abc"));
        assert!(auth.applies_to(&t));
        assert!(!auth.applies_to(&cdn));
        assert!(!auth.applies_to(&Url::parse("https://hub.example:444/a").unwrap()));
        assert!(!auth.applies_to(&Url::parse("http://hub.example/a").unwrap()));
    }
}
