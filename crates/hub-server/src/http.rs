//! Request handling for both listeners.
//!
//! Routing is done by hand on the raw, still percent-encoded path: a revision like
//! `refs%2Fpr%2F1` must stay one segment, and file paths may contain any character, so the
//! path is split on `/` first and each segment decoded afterwards.

// Handlers return `Result<_, Response>` to short-circuit with an error response; the response
// is large but built once per request, so boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::body::{RangeRequest, Tracking, file_body, parse_range};
use crate::faults::{FaultAction, Faults};
use crate::link::{Link, Shaped};
use crate::log::{LoggedRequest, RequestLog, Route};
use crate::mix::{FaultMix, MixState};
use crate::repo::{self, RepoFile, RepoKind, Snapshot};
use crate::util::{decode, header_safe, parse_query, query_value, quote, quote_path};

mod api;
mod control;

use api::{api_paths_info, api_refs, api_repo, api_tree};
use control::control;

type Resp = Response<Body>;

/// Static values modelled on an unauthenticated client of the real Hub.
const RATE_LIMIT: &str = "\"resolvers\";r=2999;t=300";
const RATE_LIMIT_POLICY: &str = "\"fixed window\";\"resolvers\";q=3000;w=300";
/// The real Hub's message for a bad token; clients tell it apart from a missing repo.
const INVALID_CREDENTIALS: &str = "Invalid credentials in Authorization header";
/// hyper's buffers and the body frames on a CDN connection that was rate-capped when it opened.
/// hyper would otherwise take up to about 400 KiB of a body ahead of the paced socket, so a
/// body would count as finished (and its log `sent` as complete) long before the client had it.
const CAPPED_BUFFER: usize = 64 * 1024;
/// Request bodies (paths-info forms, fault JSON) are small; anything larger is refused.
const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// State shared by both listeners and the [`crate::HubServer`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) root: PathBuf,
    pub(crate) token: Option<String>,
    pub(crate) page_size: usize,
    pub(crate) log: RequestLog,
    pub(crate) faults: Faults,
    pub(crate) hub_url: String,
    pub(crate) cdn_url: String,
    /// The CDN listener's rate cap, latency and counters.
    pub(crate) link: Arc<Link>,
    /// Random faults for CDN file bodies.
    pub(crate) mix: MixState,
    request_ids: AtomicU64,
    connection_ids: AtomicU64,
    /// CDN connections accepted since start, never reset (numbers them for `1/N` fault rules).
    cdn_accepted: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        root: PathBuf,
        token: Option<String>,
        page_size: usize,
        hub_url: String,
        cdn_url: String,
        link: Link,
    ) -> Shared {
        Shared {
            root,
            token,
            page_size,
            log: RequestLog::default(),
            faults: Faults::default(),
            hub_url,
            cdn_url,
            link: Arc::new(link),
            mix: MixState::default(),
            request_ids: AtomicU64::new(1),
            connection_ids: AtomicU64::new(1),
            cdn_accepted: AtomicU64::new(0),
        }
    }

    /// Sets (or removes) the random fault mix; `1/N` rules count connections from now on.
    pub(crate) fn set_mix(&self, mix: Option<FaultMix>) {
        self.mix.set(mix, self.cdn_accepted.load(Ordering::Relaxed));
    }
}

/// Which connection a request arrived on.
#[derive(Clone, Copy, Debug)]
struct Conn {
    /// Numbered from 1 across both listeners (logged).
    id: u64,
    /// The CDN connection's number in accept order, from 0 (for `1/N` fault rules).
    cdn_index: u64,
}

/// Which listener a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    Hub,
    Cdn,
}

/// Accepts connections until the task is aborted; aborting drops the `JoinSet`, which aborts
/// every connection, including ones stalled by a fault.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, which: Listener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Typically EMFILE; back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let conn = Conn {
                    id: shared.connection_ids.fetch_add(1, Ordering::Relaxed),
                    cdn_index: match which {
                        Listener::Cdn => shared.cdn_accepted.fetch_add(1, Ordering::Relaxed),
                        Listener::Hub => 0,
                    },
                };
                connections.spawn(async move {
                    match which {
                        Listener::Hub => serve_connection(stream, shared, which, conn, None).await,
                        Listener::Cdn => {
                            let link = shared.link.clone();
                            let _open = link.open_connection();
                            // The handshake's round trip: the client's first request waits.
                            link.delay().await;
                            let buffer = link.rate().map(|_| CAPPED_BUFFER);
                            let stream = Shaped::new(stream, link.clone());
                            serve_connection(stream, shared, which, conn, buffer).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one connection; `max_buf` bounds hyper's buffers (see [`CAPPED_BUFFER`]).
async fn serve_connection<S>(
    stream: S,
    shared: Arc<Shared>,
    which: Listener,
    conn: Conn,
    max_buf: Option<usize>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(dispatch(shared, which, conn, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    if let Some(max) = max_buf {
        builder.max_buf_size(max);
    }
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The host part of a URL for a bound address; an unspecified IP is reached via loopback.
pub(crate) fn url_for(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        match addr {
            SocketAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
            SocketAddr::V6(_) => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// What a hub path names.
#[derive(Debug)]
enum Target {
    Resolve(RepoRef, String, String),
    ResolveCache(RepoRef, String, String),
    ApiRepo(RepoRef, Option<String>),
    ApiRefs(RepoRef),
    ApiTree(RepoRef, String, String),
    ApiPathsInfo(RepoRef, String),
    Control(String),
    Cdn,
    Other,
    Bad(String),
}

#[derive(Debug, Clone)]
struct RepoRef {
    kind: RepoKind,
    org: String,
    name: String,
}

impl RepoRef {
    fn new(kind: &str, org: &str, name: &str) -> Option<RepoRef> {
        Some(RepoRef {
            kind: RepoKind::from_plural(kind)?,
            org: org.to_owned(),
            name: name.to_owned(),
        })
    }

    fn id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }

    /// The repo's page on the Hub, where a user accepts a gated repo's conditions.
    fn page(&self, hub_url: &str) -> String {
        match self.kind {
            RepoKind::Model => format!("{hub_url}/{}", self.id()),
            RepoKind::Dataset => format!("{hub_url}/datasets/{}", self.id()),
        }
    }
}

fn parse_hub_path(raw: &str) -> Target {
    let mut segs = Vec::new();
    for s in raw.split('/').skip(1) {
        match decode(s) {
            Some(d) => segs.push(d),
            None => return Target::Bad(format!("path segment {s:?} is not UTF-8")),
        }
    }
    // A decoded segment may itself hold `/` (tree paths are sent with `%2F`), so traversal is
    // checked on the components of every decoded segment.
    if segs
        .iter()
        .flat_map(|s| s.split('/'))
        .any(|c| c == ".." || c == ".")
    {
        return Target::Bad("path contains a `.` or `..` segment".to_owned());
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let join = |parts: &[&str]| parts.join("/");
    let target = match s.as_slice() {
        ["_control", rest @ ..] => Some(Target::Control(join(rest))),
        ["api", "resolve-cache", kind, org, name, rev, path @ ..] if !path.is_empty() => {
            RepoRef::new(kind, org, name)
                .map(|r| Target::ResolveCache(r, (*rev).to_owned(), join(path)))
        }
        ["api", kind, org, name] => RepoRef::new(kind, org, name).map(|r| Target::ApiRepo(r, None)),
        ["api", kind, org, name, "revision", rev] => {
            RepoRef::new(kind, org, name).map(|r| Target::ApiRepo(r, Some((*rev).to_owned())))
        }
        ["api", kind, org, name, "refs"] => RepoRef::new(kind, org, name).map(Target::ApiRefs),
        ["api", kind, org, name, "tree", rev, path @ ..] => {
            let path: Vec<&str> = path.iter().copied().filter(|p| !p.is_empty()).collect();
            RepoRef::new(kind, org, name)
                .map(|r| Target::ApiTree(r, (*rev).to_owned(), join(&path)))
        }
        ["api", kind, org, name, "paths-info", rev] => {
            RepoRef::new(kind, org, name).map(|r| Target::ApiPathsInfo(r, (*rev).to_owned()))
        }
        ["datasets", org, name, "resolve", rev, path @ ..] if !path.is_empty() => {
            RepoRef::new("datasets", org, name)
                .map(|r| Target::Resolve(r, (*rev).to_owned(), join(path)))
        }
        [org, name, "resolve", rev, path @ ..] if !path.is_empty() => {
            RepoRef::new("models", org, name)
                .map(|r| Target::Resolve(r, (*rev).to_owned(), join(path)))
        }
        _ => None,
    };
    target.unwrap_or(Target::Other)
}

fn route_of(target: &Target) -> Route {
    match target {
        Target::Resolve(..) => Route::Resolve,
        Target::ResolveCache(..) => Route::ResolveCache,
        Target::ApiRepo(..) | Target::ApiRefs(..) => Route::ApiRepo,
        Target::ApiTree(..) => Route::ApiTree,
        Target::ApiPathsInfo(..) => Route::ApiPathsInfo,
        Target::Control(..) => Route::Control,
        Target::Cdn => Route::Cdn,
        Target::Other | Target::Bad(_) => Route::Other,
    }
}

/// Per-request context.
struct Ctx {
    shared: Arc<Shared>,
    method: Method,
    headers: HeaderMap,
    raw_path: String,
    raw_query: Option<String>,
    query: Vec<(String, String)>,
    target: String,
    route: Route,
    body: Option<Incoming>,
    conn: Conn,
    /// The fault applied, and where it came from (`"queue"` or `"mix"`).
    fault_used: Option<(FaultAction, &'static str)>,
    /// The counter of body bytes sent, when the response is a file body.
    sent: Option<Arc<AtomicU64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    Missing,
    Valid,
    Wrong,
}

impl Ctx {
    fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }

    /// A server without a configured token accepts any credentials.
    fn auth(&self) -> Auth {
        let Some(value) = self.headers.get(header::AUTHORIZATION) else {
            return Auth::Missing;
        };
        let Some(expected) = &self.shared.token else {
            return Auth::Valid;
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if presented == Some(expected.as_str()) {
            Auth::Valid
        } else {
            Auth::Wrong
        }
    }

    fn take_body_fault(&mut self) -> Option<FaultAction> {
        let action =
            self.shared
                .faults
                .take(self.route, self.method.as_str(), &self.target, true)?;
        self.fault_used = Some((action.clone(), "queue"));
        Some(action)
    }

    /// Draws a fault from the random mix for a CDN file body of `len` bytes.
    fn draw_mix_fault(&mut self, len: u64) -> Option<FaultAction> {
        if self.route != Route::Cdn || self.method != Method::GET || len == 0 {
            return None;
        }
        let range = self
            .headers
            .get(header::RANGE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let key = format!("{} {} {range}", self.method, self.target);
        let action = self.shared.mix.draw(self.conn.cdn_index, key, len)?;
        self.fault_used = Some((action.clone(), "mix"));
        Some(action)
    }

    async fn read_body(&mut self) -> Result<bytes::Bytes, Resp> {
        let Some(body) = self.body.take() else {
            return Ok(bytes::Bytes::new());
        };
        match http_body_util::Limited::new(body, MAX_REQUEST_BODY)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) => Err(error(
                StatusCode::BAD_REQUEST,
                None,
                &format!("cannot read request body: {e}"),
            )),
        }
    }

    /// The base URL clients used to reach us, for absolute links.
    fn base_url(&self) -> String {
        match self.headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            Some(host) => format!("http://{host}"),
            None => self.shared.hub_url.clone(),
        }
    }
}

async fn dispatch(
    shared: Arc<Shared>,
    which: Listener,
    conn: Conn,
    req: Request<Incoming>,
) -> Resp {
    if which == Listener::Cdn {
        // The request's trip: nothing of the response leaves before it.
        shared.link.delay().await;
    }
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().map(str::to_owned);
    let target = match which {
        Listener::Hub => parse_hub_path(&raw_path),
        Listener::Cdn => Target::Cdn,
    };
    let route = route_of(&target);
    let decoded_target = {
        let p = percent_encoding::percent_decode_str(&raw_path).decode_utf8_lossy();
        match &raw_query {
            Some(q) => format!(
                "{p}?{}",
                percent_encoding::percent_decode_str(q).decode_utf8_lossy()
            ),
            None => p.into_owned(),
        }
    };
    let header_text = |name: HeaderName| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let range = header_text(header::RANGE);
    let authorization = header_text(header::AUTHORIZATION);
    let mut ctx = Ctx {
        shared: shared.clone(),
        method: parts.method,
        headers: parts.headers,
        query: raw_query.as_deref().map(parse_query).unwrap_or_default(),
        raw_path,
        raw_query,
        target: decoded_target,
        route,
        body: Some(body),
        conn,
        fault_used: None,
        sent: None,
    };

    let status_fault = if route == Route::Control {
        None
    } else {
        shared
            .faults
            .take(route, ctx.method.as_str(), &ctx.target, false)
    };
    let mut response = match status_fault {
        Some(action) => {
            let response = fault_response(&action);
            ctx.fault_used = Some((action, "queue"));
            response
        }
        None => handle(&mut ctx, target).await,
    };

    let id = shared.request_ids.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = HeaderValue::from_str(&format!("Root=1-{id:08x}-pipefetchhubserver")) {
        response.headers_mut().insert("x-request-id", v);
    }
    let (fault_action, fault_source) = match ctx.fault_used {
        Some((action, source)) => (Some(action), Some(source.to_owned())),
        None => (None, None),
    };
    shared.log.push(
        LoggedRequest {
            method: ctx.method.to_string(),
            path: ctx.raw_path,
            query: ctx.raw_query,
            route,
            status: response.status().as_u16(),
            range,
            authorization,
            fault: fault_action.as_ref().map(|a| a.name().to_owned()),
            fault_action,
            fault_source,
            connection: conn.id,
            sent: 0,
        },
        ctx.sent,
    );
    response
}

async fn handle(ctx: &mut Ctx, target: Target) -> Resp {
    let get_like = ctx.method == Method::GET || ctx.method == Method::HEAD;
    match target {
        Target::Bad(message) => error(StatusCode::BAD_REQUEST, None, &message),
        Target::Other => error(StatusCode::NOT_FOUND, None, "Not Found"),
        Target::Control(what) => control(ctx, &what).await,
        _ if !get_like && !matches!(target, Target::ApiPathsInfo(..)) => method_not_allowed(),
        Target::Cdn => cdn(ctx).await,
        Target::Resolve(repo, rev, path) => resolve(ctx, &repo, &rev, &path, false).await,
        Target::ResolveCache(repo, rev, path) => resolve(ctx, &repo, &rev, &path, true).await,
        Target::ApiRepo(repo, rev) => api_repo(ctx, &repo, rev.as_deref()).await,
        Target::ApiRefs(repo) => api_refs(ctx, &repo).await,
        Target::ApiTree(repo, rev, path) => api_tree(ctx, &repo, &rev, &path).await,
        Target::ApiPathsInfo(repo, rev) => {
            if ctx.method != Method::POST {
                return method_not_allowed();
            }
            api_paths_info(ctx, &repo, &rev).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Repo access: authentication, gating, revisions.

async fn open_repo(ctx: &Ctx, repo: &RepoRef) -> Result<Snapshot, Resp> {
    let auth = ctx.auth();
    let Some(dir) = repo::locate(&ctx.shared.root, repo.kind, &repo.org, &repo.name) else {
        return Err(match auth {
            Auth::Wrong => invalid_credentials(),
            // Like the Hub, an anonymous caller cannot tell a missing repo from a private one.
            Auth::Missing => error(
                StatusCode::UNAUTHORIZED,
                Some("RepoNotFound"),
                "Repository not found",
            ),
            Auth::Valid => error(
                StatusCode::NOT_FOUND,
                Some("RepoNotFound"),
                "Repository not found",
            ),
        });
    };
    let scanned = tokio::task::spawn_blocking(move || repo::scan(&dir))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let snap = match scanned {
        Ok(s) => s,
        Err(e) => {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                &format!("cannot read repository {}: {e}", repo.id()),
            ));
        }
    };
    if snap.gated {
        let page = repo.page(&ctx.shared.hub_url);
        let kind = repo.kind.singular();
        let id = repo.id();
        match auth {
            Auth::Missing => {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    Some("GatedRepo"),
                    &format!(
                        "Access to {kind} {id} is restricted. You must have access to it and be authenticated to access it. Please log in and accept the conditions at {page}."
                    ),
                ));
            }
            Auth::Wrong => {
                return Err(error(
                    StatusCode::FORBIDDEN,
                    Some("GatedRepo"),
                    &format!(
                        "Access to {kind} {id} is restricted and you are not in the authorized list. Visit {page} to accept the conditions."
                    ),
                ));
            }
            Auth::Valid => {}
        }
    } else if auth == Auth::Wrong {
        return Err(invalid_credentials());
    }
    Ok(snap)
}

fn check_revision(snap: &Snapshot, rev: &str) -> Result<(), Resp> {
    if rev == "main" || rev == snap.commit {
        Ok(())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {rev}"),
        ))
    }
}

fn entry_not_found(snap: &Snapshot, path: &str) -> Resp {
    let mut r = error(
        StatusCode::NOT_FOUND,
        Some("EntryNotFound"),
        &format!("Entry not found: {path}"),
    );
    insert(&mut r, "x-repo-commit", &snap.commit);
    r
}

// ---------------------------------------------------------------------------------------------
// Resolve, resolve-cache, CDN.

async fn resolve(ctx: &mut Ctx, repo: &RepoRef, rev: &str, path: &str, cache_route: bool) -> Resp {
    let snap = match open_repo(ctx, repo).await {
        Ok(s) => s,
        Err(r) => return with_rate_limit(r),
    };
    if let Err(r) = check_revision(&snap, rev) {
        return with_rate_limit(r);
    }
    let Some(file) = snap.files.get(path) else {
        return with_rate_limit(entry_not_found(&snap, path));
    };
    let commit = snap.commit.as_str();
    let mut response = if if_none_match(&ctx.headers, file.etag()) {
        // The client already has this content (RS1 sends `If-None-Match` with its cached etag).
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        insert(&mut r, "etag", &format!("\"{}\"", file.etag()));
        r
    } else if cache_route {
        serve_file(ctx, file, file.etag())
    } else if let Some(lfs) = &file.lfs {
        let location = cdn_location(&ctx.shared.cdn_url, repo, path, &lfs.sha256);
        let mut r = redirect(ctx, StatusCode::FOUND, &location, "Found");
        insert(&mut r, "x-linked-etag", &format!("\"{}\"", lfs.sha256));
        insert(&mut r, "x-linked-size", &file.size.to_string());
        // The 302's own etag describes the redirect, as on the real Hub; clients must prefer
        // `X-Linked-Etag`.
        insert(&mut r, "etag", &format!("W/\"{}\"", &file.oid[..20]));
        r
    } else if rev != commit {
        let location = format!(
            "/api/resolve-cache/{}/{}/{}/{}/{}?etag=%22{}%22",
            repo.kind.plural(),
            quote(&repo.org),
            quote(&repo.name),
            commit,
            quote_path(path),
            file.oid
        );
        let mut r = redirect(
            ctx,
            StatusCode::TEMPORARY_REDIRECT,
            &location,
            "Temporary Redirect",
        );
        insert(&mut r, "etag", &format!("\"{}\"", file.oid));
        r
    } else {
        serve_file(ctx, file, &file.oid.clone())
    };
    insert(&mut response, "x-repo-commit", commit);
    with_rate_limit(response)
}

/// Whether `If-None-Match` lists `etag` (quoted or not, weak or strong, or `*`).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == etag || t == "*")
}

fn redirect(ctx: &Ctx, status: StatusCode, location: &str, word: &str) -> Resp {
    // A small body, so the redirect's own Content-Length is never the file size.
    let body = format!("{word}. Redirecting to {location}");
    let len = body.len();
    let mut r = Response::new(if ctx.is_head() {
        Body::empty()
    } else {
        Body::from(body)
    });
    *r.status_mut() = status;
    insert(&mut r, "location", location);
    insert(&mut r, "content-type", "text/plain; charset=utf-8");
    insert(&mut r, "content-length", &len.to_string());
    r
}

fn cdn_signature(sha256: &str, repo: &str, file: &str) -> String {
    let mut h = Sha256::new();
    for part in ["pipefetch-hub-server", sha256, repo, file] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

fn cdn_location(cdn_url: &str, repo: &RepoRef, path: &str, sha256: &str) -> String {
    let repo_path = format!("{}/{}", repo.kind.plural(), repo.id());
    format!(
        "{cdn_url}/repos/{sha256}?repo={}&file={}&sig={}",
        quote(&repo_path),
        quote(path),
        cdn_signature(sha256, &repo_path, path)
    )
}

async fn cdn(ctx: &mut Ctx) -> Resp {
    let sha = match ctx.raw_path.strip_prefix("/repos/") {
        Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => s.to_owned(),
        _ => return error(StatusCode::NOT_FOUND, None, "NoSuchKey"),
    };
    let repo = query_value(&ctx.query, "repo")
        .unwrap_or_default()
        .to_owned();
    let file = query_value(&ctx.query, "file")
        .unwrap_or_default()
        .to_owned();
    let sig = query_value(&ctx.query, "sig").unwrap_or_default();
    if sig != cdn_signature(&sha, &repo, &file) {
        return error(StatusCode::FORBIDDEN, None, "AccessDenied: bad signature");
    }
    let located = match repo.split('/').collect::<Vec<_>>().as_slice() {
        [kind, org, name] => {
            RepoKind::from_plural(kind).and_then(|k| repo::locate(&ctx.shared.root, k, org, name))
        }
        _ => None,
    };
    let Some(dir) = located else {
        return error(StatusCode::NOT_FOUND, None, "NoSuchKey");
    };
    if !file.split('/').all(repo::valid_segment) {
        return error(StatusCode::NOT_FOUND, None, "NoSuchKey");
    }
    let abs = dir.join(&file);
    let rel = file.clone();
    let described = tokio::task::spawn_blocking(move || repo::describe_file(&abs, &rel))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    match described {
        // The link pins content: if the file changed since the redirect, the object is gone.
        Ok(f) if f.lfs.as_ref().is_some_and(|l| l.sha256 == sha) => serve_file(ctx, &f, &sha),
        _ => error(StatusCode::NOT_FOUND, None, "NoSuchKey"),
    }
}

/// Answers GET/HEAD for a file body with `Range` support and body faults.
fn serve_file(ctx: &mut Ctx, file: &RepoFile, etag: &str) -> Resp {
    let fault = if ctx.method == Method::GET {
        ctx.take_body_fault()
    } else {
        None
    };
    let range = if matches!(fault, Some(FaultAction::IgnoreRange)) {
        None
    } else {
        ctx.headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let len = file.size;
    let (status, start, count) = match parse_range(range.as_deref(), len) {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeRequest::Unsatisfiable => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                None,
                "Range Not Satisfiable",
            );
            insert(&mut r, "content-range", &format!("bytes */{len}"));
            insert(&mut r, "accept-ranges", "bytes");
            return r;
        }
    };
    let fault = match fault {
        Some(f) => Some(f),
        None if !ctx.is_head() => ctx.draw_mix_fault(count),
        None => None,
    };
    let body = if ctx.is_head() || count == 0 {
        Body::empty()
    } else {
        let sent = Arc::new(AtomicU64::new(0));
        ctx.sent = Some(sent.clone());
        let cdn = ctx.route == Route::Cdn;
        let gauge = cdn.then(|| ctx.shared.link.start_body());
        let frame = (cdn && ctx.shared.link.rate().is_some()).then_some(CAPPED_BUFFER);
        file_body(
            file.abs.clone(),
            start,
            count,
            fault.as_ref(),
            Tracking { sent, gauge, frame },
        )
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    insert(&mut r, "content-type", "application/octet-stream");
    insert(&mut r, "content-length", &count.to_string());
    insert(&mut r, "accept-ranges", "bytes");
    insert(&mut r, "etag", &format!("\"{etag}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            &mut r,
            "content-range",
            &format!("bytes {start}-{}/{len}", start + count - 1),
        );
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Response helpers.

fn insert(r: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(&header_safe(value)) {
        r.headers_mut().insert(name, v);
    }
}

fn with_rate_limit(mut r: Resp) -> Resp {
    insert(&mut r, "ratelimit", RATE_LIMIT);
    insert(&mut r, "ratelimit-policy", RATE_LIMIT_POLICY);
    r
}

fn json_response(status: StatusCode, value: &Value) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    insert(&mut r, "content-type", "application/json; charset=utf-8");
    r
}

fn error(status: StatusCode, code: Option<&str>, message: &str) -> Resp {
    let mut r = json_response(status, &json!({ "error": message }));
    if let Some(code) = code {
        insert(&mut r, "x-error-code", code);
    }
    insert(&mut r, "x-error-message", message);
    r
}

fn invalid_credentials() -> Resp {
    error(StatusCode::UNAUTHORIZED, None, INVALID_CREDENTIALS)
}

fn method_not_allowed() -> Resp {
    error(StatusCode::METHOD_NOT_ALLOWED, None, "Method Not Allowed")
}

fn fault_response(action: &FaultAction) -> Resp {
    match action {
        FaultAction::RetryAfter { seconds } => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "injected fault: rate limited",
            );
            insert(&mut r, "retry-after", &seconds.to_string());
            r
        }
        FaultAction::RateLimit { reset } => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "injected fault: rate limited",
            );
            insert(&mut r, "ratelimit", &format!("\"resolvers\";r=0;t={reset}"));
            insert(&mut r, "ratelimit-policy", RATE_LIMIT_POLICY);
            r
        }
        FaultAction::Status { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(
                status,
                None,
                &format!("injected fault: status {}", status.as_u16()),
            )
        }
        // Body faults never reach here (they are taken only when a body is served).
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, None, "injected fault"),
    }
}
