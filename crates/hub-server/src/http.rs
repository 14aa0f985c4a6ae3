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
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::body::{RangeRequest, file_body, parse_range};
use crate::faults::{Fault, FaultAction, Faults};
use crate::log::{LoggedRequest, RequestLog, Route};
use crate::repo::{self, Entry, RepoFile, RepoKind, Snapshot};
use crate::util::{
    decode, header_safe, iso8601, parse_query, query_value, quote, quote_path, truthy,
};

type Resp = Response<Body>;

/// Static values modelled on an unauthenticated client of the real Hub.
const RATE_LIMIT: &str = "\"resolvers\";r=2999;t=300";
const RATE_LIMIT_POLICY: &str = "\"fixed window\";\"resolvers\";q=3000;w=300";
/// The real Hub's message for a bad token; clients tell it apart from a missing repo.
const INVALID_CREDENTIALS: &str = "Invalid credentials in Authorization header";
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
    request_ids: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        root: PathBuf,
        token: Option<String>,
        page_size: usize,
        hub_url: String,
        cdn_url: String,
    ) -> Shared {
        Shared {
            root,
            token,
            page_size,
            log: RequestLog::default(),
            faults: Faults::default(),
            hub_url,
            cdn_url,
            request_ids: AtomicU64::new(1),
        }
    }
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
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(dispatch(shared, which, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
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
    fault_used: Option<&'static str>,
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
        self.fault_used = Some(action.name());
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

async fn dispatch(shared: Arc<Shared>, which: Listener, req: Request<Incoming>) -> Resp {
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
        fault_used: None,
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
            ctx.fault_used = Some(action.name());
            fault_response(&action)
        }
        None => handle(&mut ctx, target).await,
    };

    let id = shared.request_ids.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = HeaderValue::from_str(&format!("Root=1-{id:08x}-pipefetchhubserver")) {
        response.headers_mut().insert("x-request-id", v);
    }
    shared.log.push(LoggedRequest {
        method: ctx.method.to_string(),
        path: ctx.raw_path,
        query: ctx.raw_query,
        route,
        status: response.status().as_u16(),
        range,
        authorization,
        fault: ctx.fault_used.map(str::to_owned),
    });
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
    let body = if ctx.is_head() || count == 0 {
        Body::empty()
    } else {
        file_body(file.abs.clone(), start, count, fault.as_ref())
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
// API routes.

async fn api_repo(ctx: &mut Ctx, repo: &RepoRef, rev: Option<&str>) -> Resp {
    let snap = match open_repo(ctx, repo).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_revision(&snap, rev.unwrap_or("main")) {
        return r;
    }
    let blobs = truthy(query_value(&ctx.query, "blobs"));
    let siblings: Vec<Value> = snap
        .files
        .iter()
        .map(|(path, f)| {
            if !blobs {
                return json!({ "rfilename": path });
            }
            let mut v = json!({ "rfilename": path, "size": f.size, "blobId": f.oid });
            if let Some(lfs) = &f.lfs {
                v["lfs"] = json!({
                    "sha256": lfs.sha256,
                    "size": f.size,
                    "pointerSize": lfs.pointer_size,
                });
            }
            v
        })
        .collect();
    let id = repo.id();
    let modified = iso8601(snap.last_modified);
    let mut info = json!({
        "_id": hex::encode(&Sha1::digest(id.as_bytes())[..12]),
        "id": id,
        "author": repo.org,
        "sha": snap.commit,
        "lastModified": modified,
        "createdAt": modified,
        "private": false,
        "gated": if snap.gated { json!("manual") } else { json!(false) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": snap.files.values().map(|f| f.size).sum::<u64>(),
    });
    if repo.kind == RepoKind::Model {
        info["modelId"] = json!(repo.id());
    }
    let mut r = json_response(StatusCode::OK, &info);
    insert(&mut r, "x-repo-commit", &snap.commit);
    r
}

async fn api_refs(ctx: &mut Ctx, repo: &RepoRef) -> Resp {
    let snap = match open_repo(ctx, repo).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut refs = json!({
        "branches": [{ "name": "main", "ref": "refs/heads/main", "targetCommit": snap.commit }],
        "converts": [],
        "tags": [],
    });
    if truthy(query_value(&ctx.query, "include_prs")) {
        refs["pullRequests"] = json!([]);
    }
    json_response(StatusCode::OK, &refs)
}

fn entry_json(snap: &Snapshot, entry: &Entry<'_>, expand: bool) -> Value {
    let mut v = match entry {
        Entry::File(path, f) => {
            let mut v = json!({ "type": "file", "oid": f.oid, "size": f.size, "path": path });
            if let Some(lfs) = &f.lfs {
                v["lfs"] =
                    json!({ "oid": lfs.sha256, "size": f.size, "pointerSize": lfs.pointer_size });
            }
            v
        }
        Entry::Directory(path) => {
            json!({ "type": "directory", "oid": snap.tree_oid(path), "size": 0, "path": path })
        }
    };
    if expand {
        v["lastCommit"] = json!({
            "id": snap.commit,
            "title": "Upload folder",
            "date": iso8601(snap.last_modified),
        });
        if matches!(entry, Entry::File(..)) {
            v["securityFileStatus"] = json!({
                "status": "safe",
                "avScan": { "virusFound": false, "virusNames": null },
                "pickleImportScan": { "highestSafetyLevel": "innocuous", "imports": [] },
            });
        }
    }
    v
}

async fn api_tree(ctx: &mut Ctx, repo: &RepoRef, rev: &str, path: &str) -> Resp {
    let snap = match open_repo(ctx, repo).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_revision(&snap, rev) {
        return r;
    }
    let recursive = truthy(query_value(&ctx.query, "recursive"));
    let expand = truthy(query_value(&ctx.query, "expand"));
    let Some(entries) = snap.list(path, recursive) else {
        return entry_not_found(&snap, path);
    };
    let start = match query_value(&ctx.query, "cursor") {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n <= entries.len() => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    None,
                    &format!("invalid cursor {c:?}"),
                );
            }
        },
    };
    let end = (start + ctx.shared.page_size).min(entries.len());
    let page: Vec<Value> = entries[start..end]
        .iter()
        .map(|e| entry_json(&snap, e, expand))
        .collect();
    let mut r = json_response(StatusCode::OK, &Value::Array(page));
    if end < entries.len() {
        // The next URL repeats every parameter but the cursor, as the real Hub's does.
        let mut params: Vec<&str> = ctx
            .raw_query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
            .collect();
        let cursor = format!("cursor={end}");
        params.push(&cursor);
        let next = format!("{}{}?{}", ctx.base_url(), ctx.raw_path, params.join("&"));
        insert(&mut r, "link", &format!("<{next}>; rel=\"next\""));
    }
    r
}

async fn api_paths_info(ctx: &mut Ctx, repo: &RepoRef, rev: &str) -> Resp {
    let snap = match open_repo(ctx, repo).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_revision(&snap, rev) {
        return r;
    }
    let body = match ctx.read_body().await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let is_json = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (paths, expand) = if is_json {
        #[derive(serde::Deserialize)]
        struct PathsInfo {
            paths: Vec<String>,
            #[serde(default)]
            expand: bool,
        }
        match serde_json::from_slice::<PathsInfo>(&body) {
            Ok(p) => (p.paths, p.expand),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    None,
                    &format!("invalid JSON body: {e}"),
                );
            }
        }
    } else {
        let form = parse_query(&String::from_utf8_lossy(&body));
        let paths = form
            .iter()
            .filter(|(k, _)| k == "paths")
            .map(|(_, v)| v.clone())
            .collect();
        (paths, truthy(query_value(&form, "expand")))
    };
    let mut seen = std::collections::HashSet::new();
    let entries: Vec<Value> = paths
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| seen.insert(p.to_owned()))
        .filter_map(|p| snap.entry(p))
        .map(|e| entry_json(&snap, &e, expand))
        .collect();
    json_response(StatusCode::OK, &Value::Array(entries))
}

// ---------------------------------------------------------------------------------------------
// Control routes.

async fn control(ctx: &mut Ctx, what: &str) -> Resp {
    let shared = ctx.shared.clone();
    match (ctx.method.as_str(), what) {
        ("POST", "faults") => {
            let body = match ctx.read_body().await {
                Ok(b) => b,
                Err(r) => return r,
            };
            #[derive(serde::Deserialize)]
            #[serde(untagged)]
            enum OneOrMany {
                Many(Vec<Fault>),
                One(Box<Fault>),
            }
            let faults = match serde_json::from_slice::<OneOrMany>(&body) {
                Ok(OneOrMany::Many(v)) => v,
                Ok(OneOrMany::One(f)) => vec![*f],
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        None,
                        &format!("invalid fault JSON: {e}"),
                    );
                }
            };
            let queued = faults.len();
            for f in faults {
                shared.faults.push(f);
            }
            json_response(StatusCode::OK, &json!({ "queued": queued }))
        }
        ("GET", "faults") => json_response(StatusCode::OK, &json!(shared.faults.pending())),
        ("DELETE", "faults") => {
            shared.faults.clear();
            json_response(StatusCode::OK, &json!({}))
        }
        ("POST", "reset") => {
            shared.faults.clear();
            shared.log.clear();
            json_response(StatusCode::OK, &json!({}))
        }
        ("GET", "log") => {
            let counts: serde_json::Map<String, Value> = shared
                .log
                .counts()
                .into_iter()
                .filter_map(|(route, n)| {
                    let key = serde_json::to_value(route).ok()?.as_str()?.to_owned();
                    Some((key, json!(n)))
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({ "entries": shared.log.entries(), "counts": counts }),
            )
        }
        ("DELETE", "log") => {
            shared.log.clear();
            json_response(StatusCode::OK, &json!({}))
        }
        _ => error(StatusCode::NOT_FOUND, None, "unknown control route"),
    }
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
