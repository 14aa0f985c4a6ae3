//! A Hugging Face Hub-compatible HTTP server over a local folder, with fault injection and a
//! request log.
//!
//! Every test of pipefetch, the benchmarks and the demo talk to it, and the real Python
//! `huggingface_hub` client, pointed at it with `HF_ENDPOINT`, downloads from it. It serves
//! the download side of the protocol the way huggingface.co does (see
//! `docs/hub-protocol.md` A1–A9):
//!
//! - Repos live at `ROOT/models/ORG/NAME/...` and `ROOT/datasets/ORG/NAME/...`. The folder is
//!   branch `main`; its commit id is a sha1 over the sorted `(path, git object id)` list, so it
//!   is deterministic and changes with the content. `main` and that commit are the only
//!   revisions. A `.gated` file in a repo folder gates it (and is not a repo file).
//! - `HEAD|GET /{datasets/}ORG/NAME/resolve/{rev}/{path}`: a regular (git) file on `main`
//!   answers `307` to a relative `/api/resolve-cache/...` URL, which answers 200; on the
//!   commit it answers 200 directly. An LFS file (by extension, or larger than 10 MiB)
//!   answers `302` to the CDN listener (a second port, named `localhost` rather than
//!   `127.0.0.1` so that clients see another host), with `X-Linked-Etag`/`X-Linked-Size`;
//!   the 302's own `Content-Length` is its small body, as on the Hub. `If-None-Match` with
//!   the file's etag answers `304`. Resolve responses carry `RateLimit`/`RateLimit-Policy`.
//! - The CDN serves `GET|HEAD /repos/{sha256}?repo=..&file=..&sig=..` with `Range` support and
//!   never looks at `Authorization` (the log records whether one arrived).
//! - `GET /api/{models|datasets}/ORG/NAME[/revision/{rev}][?blobs=true]`, `.../refs`,
//!   `.../tree/{rev}[/{path}]?recursive=..&expand=..` (paged with `Link: <..>; rel="next"`),
//!   `POST .../paths-info/{rev}` (form or JSON `paths`).
//! - Errors carry `X-Error-Code`/`X-Error-Message` like the Hub: `RepoNotFound` (401 when
//!   anonymous, 404 with a valid token), `RevisionNotFound` 404, `EntryNotFound` 404 with
//!   `X-Repo-Commit`, `GatedRepo` 401/403, and a wrong token is 401 `Invalid credentials in
//!   Authorization header`. Without a configured token any credentials are accepted.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use pipefetch_hub_server::{HubServer, Route, fixture::RepoBuilder, faults::Fault};
//!
//! let root = tempfile::tempdir()?;
//! RepoBuilder::new(root.path(), "models", "org/name")
//!     .file("config.json", b"{}".to_vec())
//!     .build()?;
//! let hub = HubServer::builder(root.path()).token("secret").page_size(2).start().await?;
//! assert!(hub.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(hub.commit("org/name")?.len(), 40);
//! hub.faults().push(Fault::status(503).on(Route::Cdn).times(2));
//! assert_eq!(hub.log().count(Route::Resolve), 0);
//! hub.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Fault injection and control routes
//!
//! Faults are queued with [`HubServer::faults`] in-process, or over HTTP on the hub listener
//! for a server running as a subprocess:
//!
//! - `POST /_control/faults` with one fault or an array of faults:
//!   ```json
//!   {"route": "cdn", "path_contains": "unet/", "method": "GET", "times": 2,
//!    "action": {"kind": "cut_after", "bytes": 1000}}
//!   ```
//!   `route` (`resolve`, `resolve_cache`, `api_repo`, `api_tree`, `api_paths_info`, `cdn`,
//!   `other`), `path_contains` (matched against the percent-decoded path and query) and
//!   `method` are optional; `times` defaults to 1. Actions: `{"kind":"status","status":503}`,
//!   `{"kind":"retry_after","seconds":1}` (429 + `Retry-After`),
//!   `{"kind":"rate_limit","reset":1}` (429 + `RateLimit: "resolvers";r=0;t=1`),
//!   `{"kind":"cut_after","bytes":N}`, `{"kind":"stall_after","bytes":N,"millis":M}` (no
//!   `millis`: forever), `{"kind":"trickle","bytes_per_second":N}`, `{"kind":"ignore_range"}`,
//!   `{"kind":"flip_byte","offset":N}`. Answers `{"queued": n}`.
//! - `GET /_control/faults` lists pending faults; `DELETE /_control/faults` drops them.
//! - `GET /_control/log` answers `{"entries": [LoggedRequest...], "counts": {"resolve": 3, ...}}`
//!   where an entry is `{"method","path","query","route","status","range","authorization",
//!   "fault","fault_action","fault_source","connection","sent"}` (see [`LoggedRequest`]:
//!   `fault_action` is the fault in full, `fault_source` is `queue` or `mix`, `connection`
//!   numbers the TCP connection, `sent` counts the file body bytes handed to it);
//!   `DELETE /_control/log` clears it; `POST /_control/reset` clears faults, log and the
//!   link counters (not the link settings).
//! - `GET /_control/link` answers the CDN link's settings and counters:
//!   `{"rate": 40000000, "latency_ms": 20, "faults": "cut=0.25", "seed": 7, "stats": {..}}`
//!   ([`LinkStats`]); `POST /_control/link` with any of those fields changes them (`"rate"`
//!   as a number or text like `"40M"`; `null` turns the cap or the random faults off) and
//!   answers the same shape; a bad field changes nothing and answers 400.
//!
//! The first matching fault of the right class is used: status faults answer any matching
//! request before routing; body faults are only taken by a `GET` about to stream a file
//! (resolve on the commit, resolve-cache, CDN), with byte offsets relative to that body.
//!
//! # Real-looking links
//!
//! Loopback gives one connection gigabytes a second; a CDN edge gives it about 40 MB/s after
//! a round trip, and some connections are cut, stall or crawl. The CDN listener can imitate
//! that, from the builder ([`HubServerBuilder::cdn_rate`], [`HubServerBuilder::cdn_latency`],
//! [`HubServerBuilder::cdn_faults`]), the command line (`--cdn-rate 40M --cdn-latency-ms 20
//! --cdn-faults cut=0.25,stall=0.1:40s,trickle=0.05:1300 --fault-seed 7`), at run time
//! ([`HubServer::set_cdn_rate`] and friends) or over `POST /_control/link`:
//!
//! - **A rate cap per connection**, like nginx's `limit_rate`: a client with more connections
//!   gets more in all. Writes are paced on the socket, headers included ([`link`]).
//! - **A latency**: a new connection waits before its first request is read, and every
//!   response waits before its head is written.
//! - **Random faults** ([`FaultMix`]): every CDN file body draws, from a hash of the seed and
//!   the request, a cut or a stall at a random byte, or a trickle; or every N-th connection
//!   trickles. Queued faults are taken first. The log records which fault hit which request.
//!
//! The counters ([`HubServer::link_stats`]) say what the link did: connections and bodies in
//! flight and their peaks, and how long the cap made connections wait, so that tests assert
//! on what the server did rather than on how long it took.
//!
//! # Design decisions
//!
//! - Routing is by hand on the raw path, so encoded revisions (`refs%2Fpr%2F1`) and file
//!   names with any character work, and `..` is refused with 400 before anything else.
//! - The accept loops are our own (hyper http1) rather than `axum::serve`, so that
//!   [`HubServer::shutdown`] cuts connections a stall fault keeps open.
//! - Bodies are streamed in 1 MiB reads on the blocking pool, never buffered whole; hashes
//!   are cached process-wide by `(path, size, mtime)`, so a big file is hashed once per
//!   process even across many servers. The first request on a big repo pays for hashing;
//!   call [`HubServer::commit`] before timing anything.
//! - The folder is re-listed on every request, so a test may change files between requests.
//! - The rate cap is per connection and set on the socket, not on a body: hyper writes through
//!   a pacing wrapper, so a connection's schedule spans its kept-alive responses. A connection
//!   opened while a cap is set also gets smaller buffers, so a body is not counted as sent
//!   while hundreds of kilobytes still wait in hyper.
//! - Random faults are drawn from a hash of the seed and the request, not from one RNG
//!   stream, so concurrent requests arriving in another order still get the same faults.
//! - Faithfulness is checked against the real Python client by `tests/interop/run.sh`
//!   (huggingface_hub 0.36.2, 1.33.0 and 2.4.0 pass it).

#![deny(missing_docs)]

mod body;
mod error;
pub mod faults;
pub mod fixture;
mod http;
pub mod link;
mod log;
pub mod mix;
mod repo;
mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::error::Error;
pub use crate::faults::{Fault, FaultAction, Faults};
pub use crate::link::LinkStats;
pub use crate::log::{LoggedRequest, RequestLog, Route};
pub use crate::mix::FaultMix;

use crate::http::{Listener, Shared};

/// Default number of entries per tree page, like the Hub's.
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// Configures and starts a [`HubServer`].
#[derive(Debug, Clone)]
pub struct HubServerBuilder {
    root: PathBuf,
    token: Option<String>,
    page_size: usize,
    addr: SocketAddr,
    cdn_addr: SocketAddr,
    cdn_host: Option<String>,
    cdn_rate: Option<u64>,
    cdn_latency: Duration,
    cdn_faults: Option<FaultMix>,
}

impl HubServerBuilder {
    /// The token gated repos require (`Authorization: Bearer <token>`). Without one, any
    /// credentials are accepted.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Entries per tree page (default 1000); tests use 2 or 3 to exercise pagination.
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    /// Where the hub listener binds (default `127.0.0.1:0`).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Where the CDN listener binds (default `127.0.0.1:0`).
    pub fn cdn_addr(mut self, addr: SocketAddr) -> Self {
        self.cdn_addr = addr;
        self
    }

    /// The host name put in CDN redirect URLs (default: `localhost` when the CDN listens on a
    /// loopback or unspecified address, else its IP).
    ///
    /// The real CDN is another host, and clients decide what to follow and where to send the
    /// token by host name alone: `huggingface_hub` 1.33 follows a HEAD redirect to the same
    /// host name whatever the port. So the default differs from the hub's `127.0.0.1`.
    pub fn cdn_host(mut self, host: impl Into<String>) -> Self {
        self.cdn_host = Some(host.into());
        self
    }

    /// Caps every CDN connection at `bytes_per_second` (like nginx's `limit_rate`; 0 is no
    /// cap). Per connection: a client with more connections gets more in all.
    pub fn cdn_rate(mut self, bytes_per_second: u64) -> Self {
        self.cdn_rate = Some(bytes_per_second).filter(|&r| r > 0);
        self
    }

    /// Adds `latency` before each new CDN connection's first request is read and before each
    /// CDN response, like a round trip.
    pub fn cdn_latency(mut self, latency: Duration) -> Self {
        self.cdn_latency = latency;
        self
    }

    /// Gives CDN file bodies random, seeded faults (see [`FaultMix`]).
    pub fn cdn_faults(mut self, mix: FaultMix) -> Self {
        self.cdn_faults = Some(mix);
        self
    }

    /// Binds both listeners and starts serving on the current tokio runtime.
    pub async fn start(self) -> Result<HubServer, Error> {
        if self.page_size == 0 {
            return Err(Error::InvalidConfig {
                message: "page size must be at least 1".to_owned(),
            });
        }
        if !self.root.is_dir() {
            return Err(Error::RootNotDir { path: self.root });
        }
        let bind = |role: &'static str, addr: SocketAddr| async move {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind { role, addr, source })?;
            let local =
                listener
                    .local_addr()
                    .map_err(|source| Error::Bind { role, addr, source })?;
            Ok::<_, Error>((listener, local))
        };
        let (hub_listener, hub_addr) = bind("hub", self.addr).await?;
        let (cdn_listener, cdn_addr) = bind("cdn", self.cdn_addr).await?;
        let url = http::url_for(hub_addr);
        let cdn_url = match self.cdn_host {
            Some(host) => format!("http://{host}:{}", cdn_addr.port()),
            None if cdn_addr.ip().is_loopback() || cdn_addr.ip().is_unspecified() => {
                format!("http://localhost:{}", cdn_addr.port())
            }
            None => http::url_for(cdn_addr),
        };
        let shared = Arc::new(Shared::new(
            self.root,
            self.token,
            self.page_size,
            url.clone(),
            cdn_url.clone(),
            link::Link::new(self.cdn_rate, self.cdn_latency),
        ));
        shared.set_mix(self.cdn_faults);
        let tasks = vec![
            tokio::spawn(http::accept_loop(
                hub_listener,
                shared.clone(),
                Listener::Hub,
            )),
            tokio::spawn(http::accept_loop(
                cdn_listener,
                shared.clone(),
                Listener::Cdn,
            )),
        ];
        Ok(HubServer {
            shared,
            url,
            cdn_url,
            tasks,
        })
    }
}

/// A running server: two listeners (hub and CDN) on the runtime that started it.
///
/// Dropping it stops both listeners and cuts open connections, like [`HubServer::shutdown`].
#[derive(Debug)]
pub struct HubServer {
    shared: Arc<Shared>,
    url: String,
    cdn_url: String,
    tasks: Vec<JoinHandle<()>>,
}

impl HubServer {
    /// Starts configuring a server over `root`.
    pub fn builder(root: impl Into<PathBuf>) -> HubServerBuilder {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        HubServerBuilder {
            root: root.into(),
            token: None,
            page_size: DEFAULT_PAGE_SIZE,
            addr: loopback,
            cdn_addr: loopback,
            cdn_host: None,
            cdn_rate: None,
            cdn_latency: Duration::ZERO,
            cdn_faults: None,
        }
    }

    /// The hub's base URL, `http://127.0.0.1:PORT` (what `HF_ENDPOINT` should be).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The CDN's base URL (LFS redirects point there), `http://localhost:PORT` by default: a
    /// host name other than the hub's, so clients treat it as another origin.
    pub fn cdn_url(&self) -> String {
        self.cdn_url.clone()
    }

    /// The folder served.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Every request seen by either listener.
    pub fn log(&self) -> &RequestLog {
        &self.shared.log
    }

    /// The fault queue.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Changes the per-connection CDN rate cap (`None` or 0: no cap), open connections
    /// included.
    pub fn set_cdn_rate(&self, bytes_per_second: Option<u64>) {
        self.shared
            .link
            .set_rate(bytes_per_second.filter(|&r| r > 0));
    }

    /// Changes the added CDN latency.
    pub fn set_cdn_latency(&self, latency: Duration) {
        self.shared.link.set_latency(latency);
    }

    /// Replaces (or removes) the random CDN faults; draws and `1/N` counts start over.
    pub fn set_cdn_faults(&self, mix: Option<FaultMix>) {
        self.shared.set_mix(mix);
    }

    /// The CDN listener's counters: connections, bodies in flight and their peaks, bytes,
    /// waits the rate cap imposed.
    pub fn link_stats(&self) -> LinkStats {
        self.shared.link.stats()
    }

    /// The commit the server reports for model repo `id`'s `main` (hashes the repo if needed,
    /// blocking the caller).
    pub fn commit(&self, id: &str) -> Result<String, Error> {
        self.commit_of("models", id)
    }

    /// Like [`HubServer::commit`] for a repo of type `kind` (`"models"` or `"datasets"`).
    pub fn commit_of(&self, kind: &str, id: &str) -> Result<String, Error> {
        let dir = fixture::repo_dir(&self.shared.root, kind, id)?;
        if !dir.is_dir() {
            return Err(Error::RepoNotFound {
                id: id.to_owned(),
                path: dir,
            });
        }
        repo::scan(&dir).map(|s| s.commit).map_err(Error::io(dir))
    }

    /// Stops both listeners and cuts every open connection.
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            // The only possible error is the cancellation we just asked for.
            let _ = task.await;
        }
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
