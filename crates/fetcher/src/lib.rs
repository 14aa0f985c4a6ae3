//! Downloads whole diffusers pipelines (and Hugging Face files and snapshots) into the standard HF
//! cache: only the files needed, each verified against its hash while it streams, with byte-level
//! progress, and without a single request for what is already cached at a known commit.
//!
//! The crate composes [`pipefetch_hub_client`] (the Hub's HTTP protocol) and [`pipefetch_hub_cache`] (the on-disk cache):
//!
//! ```text
//!   FileRequest / SnapshotRequest
//!        │
//!        ▼
//!   Fetcher ── resolve revision (repo_info, or refs/ offline) ── listing (trees/<commit>.json or /tree)
//!        │
//!        ▼  one BlobJob per missing file
//!   Engine ── shared connection budget ── ranges ── FileSink (pwrite + hash) ── PartialBlob.commit()
//!        │                                                                    │
//!        ▼                                                                    ▼
//!   Reporter (progress events)                              snapshots/<commit>/<path> → ../../blobs/<etag>
//! ```
//!
//! # Example: a pipeline, pulled and checked
//!
//! This runs as a doc test against the project's own Hub-compatible server.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let root = tempfile::tempdir()?;
//! # pipefetch_hub_server::fixture::RepoBuilder::new(root.path(), "models", "acme/pipe")
//! #     .file("model_index.json", br#"{"_class_name": "StableDiffusionPipeline",
//! #         "unet": ["diffusers", "UNet2DConditionModel"],
//! #         "scheduler": ["diffusers", "PNDMScheduler"]}"#.to_vec())
//! #     .file("unet/config.json", b"{}".to_vec())
//! #     .safetensors_file("unet/diffusion_pytorch_model.safetensors", 1, 4096)
//! #     .safetensors_file("unet/diffusion_pytorch_model.fp16.safetensors", 2, 2048)
//! #     .file("scheduler/scheduler_config.json", b"{}".to_vec())
//! #     .build()?;
//! # let hub = pipefetch_hub_server::HubServer::builder(root.path()).start().await?;
//! # let home = tempfile::tempdir()?;
//! use pipefetch_fetcher::{Fetcher, PullOptions, SpecOrigin};
//!
//! let spec = pipefetch_spec::parse_str("repo_id: acme/pipe\nvariant: fp16\n", "pipe.yaml")?;
//! let origin = SpecOrigin::Local("pipe.yaml".into());
//! let fetcher = Fetcher::builder()
//!     .env(pipefetch_hub_client::HfEnv::from_vars(|_| None)) // not this machine's HF_* variables
//!     .endpoint(hub.url())
//!     .hf_home(home.path())
//!     .cache_dir(home.path().join("hub"))
//!     .build()?;
//!
//! // Only the files the pipeline needs, verified, assembled under canonical names.
//! let folder = fetcher
//!     .download_diffusers_pipeline(&spec, &origin, &PullOptions::default())
//!     .await?;
//! let unet = folder.path.join("unet/diffusion_pytorch_model.safetensors");
//! assert_eq!(std::fs::metadata(&unet)?.len(), 2048); // the fp16 file, under the plain name
//!
//! // Is it all here? Answered from disk alone.
//! let availability = fetcher.is_available_locally(&spec, &origin, false).await?;
//! assert!(availability.available);
//! # Ok(())
//! # }
//! ```
//!
//! # Example: files and snapshots
//!
//! ```no_run
//! use pipefetch_fetcher::{Fetcher, FileRequest, SnapshotRequest};
//! use pipefetch_hub_client::Repo;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Endpoint, token and cache folder from the HF_* environment, like huggingface_hub.
//! let fetcher = Fetcher::from_env()?;
//! let repo = Repo::model("stabilityai/stable-diffusion-xl-base-1.0")?;
//!
//! // One file (hf_hub_download).
//! let config = fetcher.download_file(&FileRequest::new(repo.clone(), "unet/config.json")).await?;
//!
//! // A filtered snapshot (snapshot_download with allow/ignore patterns).
//! let mut req = SnapshotRequest::new(repo);
//! req.allow_patterns = vec!["unet/*".into(), "*.json".into()];
//! req.ignore_patterns = vec!["*.fp16.*".into()];
//! let snapshot = fetcher.snapshot(&req).await?;
//! println!("{} and {}", config.display(), snapshot.path.display());
//! # Ok(())
//! # }
//! ```
//!
//! # Design decisions
//! - **Verify everything.** LFS files are checked against their sha256, git files against their git
//!   blob id, while the bytes stream; a mismatch is an error and nothing lands under a final name.
//! - **The listing is the plan.** A snapshot needs the commit and one recursive tree listing (cached
//!   per commit, like huggingface_hub ≥ 1.22 does): sizes and hashes come from it, so there is no HEAD
//!   per file. Only files big enough to be split in ranges get one HEAD, to learn their CDN location.
//! - **Errors never lose work.** A failing file does not stop the others; everything verified is kept.
//! - **Library first.** No printing: progress goes to a [`Reporter`]; the CLI renders it.

#![deny(missing_docs)]

mod engine;
mod error;
mod hf;
pub mod lock;
mod patterns;
pub mod pipeline;
pub mod progress;
mod resume;
pub mod sources;
pub mod url_source;
mod verify;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use engine::{BudgetMode, EngineSettings, INITIAL_CONNECTIONS};
pub use error::{Error, Result, distinct_causes, hint_of_layer, human_bytes};
pub use hf::{FileRequest, Snapshot, SnapshotFile, SnapshotRequest};
pub use lock::{Lock, LockedFile, LockedSource};
pub use patterns::PathFilter;
use pipefetch_hub_cache::{CacheOptions, HfCache, SymlinkMode};
use pipefetch_hub_client::{HfEnv, HubClient, Token};
pub use pipeline::check::{Availability, Problem, ProblemKind};
pub use pipeline::input::{LoadedSpec, SpecLoadError, hosted_spec};
pub use pipeline::plan::{Plan, PlanFile, Presence, SpecOrigin, Transform};
pub use pipeline::pull::{PipelineFolder, PullOptions};
pub use progress::{Event, NoProgress, Reporter, SharedReporter};
pub use sources::{FileOrigin, Origin, Source, Sources};
pub use verify::Expected;

use crate::engine::{Budget, Engine, Tracker};

/// Downloads into one cache through one client. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    client: HubClient,
    cache: HfCache,
    settings: EngineSettings,
    reporter: SharedReporter,
    offline: bool,
    /// Which file a URL belongs to, so the client's retry callbacks become per-file events.
    urls: UrlRegistry,
    /// `HF_HOME`: assembled pipelines and the URL cache live below it.
    hf_home: PathBuf,
    /// The civitai.com API key for URL sources.
    civitai_token: Option<Token>,
    /// The kinds of sources pipeline files can come from.
    sources: Arc<Sources>,
    /// The connection budget of body transfers, shared by every run of this fetcher.
    budget: Arc<Budget>,
    /// The small budget of metadata requests to the API host.
    api: Arc<tokio::sync::Semaphore>,
}

/// Maps request URLs to the file they transfer, for retry events.
pub(crate) type UrlRegistry =
    Arc<std::sync::Mutex<std::collections::HashMap<String, progress::FileId>>>;

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("cache", &self.cache.root())
            .field("settings", &self.settings)
            .field("offline", &self.offline)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Fetcher`]; every setting defaults to what the `HF_*` environment says.
#[derive(Default)]
pub struct FetcherBuilder {
    env: Option<HfEnv>,
    client: Option<HubClient>,
    endpoint: Option<String>,
    token: Option<Token>,
    cache_dir: Option<PathBuf>,
    settings: EngineSettings,
    reporter: Option<SharedReporter>,
    offline: Option<bool>,
    hf_home: Option<PathBuf>,
    sources: Sources,
}

impl FetcherBuilder {
    /// Uses this environment instead of the process's.
    pub fn env(mut self, env: HfEnv) -> Self {
        self.env = Some(env);
        self
    }

    /// Uses this client (its endpoint, token, timeouts and retry policy) as is; its retries are
    /// reported as [`Event::Retry`] too, after any retry observer it has.
    pub fn client(mut self, client: HubClient) -> Self {
        self.client = Some(client);
        self
    }

    /// The Hub endpoint (default `HF_ENDPOINT`, else `https://huggingface.co`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The token (default `HF_TOKEN`, the token file, …).
    pub fn token(mut self, token: Option<Token>) -> Self {
        self.token = token;
        self
    }

    /// The cache folder (default `HF_HUB_CACHE`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Exactly `n` concurrent connections across all files, instead of a budget that adapts to
    /// the link (the default).
    pub fn connections(mut self, n: usize) -> Self {
        self.settings.connections = Some(n.max(1));
        self
    }

    /// The cap of the adaptive connection budget (default 64).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.settings.max_connections = n.max(1);
        self
    }

    /// All engine knobs at once.
    pub fn engine_settings(mut self, settings: EngineSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Where progress events go (default: nowhere).
    pub fn reporter(mut self, reporter: SharedReporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// The HF home folder, where assembled pipelines and the URL cache live (default `HF_HOME`).
    pub fn hf_home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.hf_home = Some(dir.into());
        self
    }

    /// Forbid the network (default `HF_HUB_OFFLINE`).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = Some(offline);
        self
    }

    /// Adds a kind of source (or replaces the built-in one for the same kind, spec keys or URL
    /// schemes). The Hub, `https://` URLs and local folders are always there.
    pub fn source(mut self, source: Arc<dyn Source>) -> Self {
        self.sources.add(source);
        self
    }

    /// Validates the settings and builds the fetcher.
    pub fn build(self) -> Result<Fetcher> {
        let env = self.env.unwrap_or_else(HfEnv::from_env);
        let offline = self.offline.unwrap_or(env.offline);
        let reporter = self.reporter.unwrap_or_else(|| Arc::new(NoProgress));
        let urls: UrlRegistry = Arc::default();
        let budget = Budget::new(self.settings.mode(), Arc::clone(&reporter));
        let observer = || retry_observer(Arc::clone(&reporter), Arc::clone(&urls), &budget);
        let client = match self.client {
            Some(client) => client.with_added_retry_observer(observer()),
            None => {
                // Timeouts, the rate floor and the retry budget come from the environment too.
                let mut builder = HubClient::builder_from_env(&env)
                    .endpoint(self.endpoint.as_deref().unwrap_or(env.endpoint.as_str()))
                    .token(self.token.or_else(|| env.token.clone()))
                    .offline(offline)
                    .on_retry(observer());
                if let Some(origin) = &env.user_agent_origin {
                    builder = builder.user_agent(format!(
                        "pipefetch/{}; origin/{origin}",
                        env!("CARGO_PKG_VERSION")
                    ));
                } else {
                    builder =
                        builder.user_agent(format!("pipefetch/{}", env!("CARGO_PKG_VERSION")));
                }
                builder
                    .build()
                    .map_err(|e| Error::hub("could not set up the HTTP client", e))?
            }
        };
        let cache_dir = self.cache_dir.unwrap_or_else(|| env.hub_cache.clone());
        let symlinks = if env.disable_symlinks {
            SymlinkMode::Disabled
        } else {
            SymlinkMode::Auto
        };
        let cache = HfCache::with_options(cache_dir, CacheOptions::with_symlinks(symlinks));
        let hf_home = self.hf_home.unwrap_or_else(|| env.hf_home.clone());
        Ok(Fetcher {
            hf_home,
            civitai_token: env.civitai_token.clone(),
            client,
            cache,
            settings: self.settings,
            reporter,
            offline,
            urls,
            sources: Arc::new(self.sources),
            budget,
            api: Arc::new(tokio::sync::Semaphore::new(engine::budget::API_CONNECTIONS)),
        })
    }
}

impl Fetcher {
    /// A builder with every setting from the environment.
    pub fn builder() -> FetcherBuilder {
        FetcherBuilder::default()
    }

    /// A fetcher configured from the `HF_*` environment alone.
    pub fn from_env() -> Result<Fetcher> {
        Fetcher::builder().build()
    }

    /// The client.
    pub fn client(&self) -> &HubClient {
        &self.client
    }

    /// The cache.
    pub fn cache(&self) -> &HfCache {
        &self.cache
    }

    /// `HF_HOME`.
    pub fn hf_home(&self) -> &std::path::Path {
        &self.hf_home
    }

    /// Where assembled pipelines go by default: `$HF_HOME/pipelines`.
    pub fn pipelines_dir(&self) -> PathBuf {
        self.hf_home.join("pipelines")
    }

    /// The cache of URL downloads, `$HF_HOME/pipefetch/url-cache-v1` (outside the Hub cache, whose
    /// scan would flag any foreign folder).
    pub fn url_cache(&self) -> url_source::UrlCache {
        url_source::UrlCache::new(self.hf_home.join("pipefetch").join("url-cache-v1"))
    }

    /// The kinds of sources this fetcher knows.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// How specs should be read for this fetcher: `urls:` may use the schemes of every registered
    /// source (`https`, loopback `http`, plus whatever an application added).
    pub fn spec_options(&self) -> pipefetch_spec::ParseOptions {
        self.sources
            .url_schemes()
            .into_iter()
            .filter(|s| s != "https" && s != "http")
            .fold(pipefetch_spec::ParseOptions::default(), |o, s| {
                o.url_scheme(s)
            })
    }

    /// The civitai.com token, if any.
    pub(crate) fn civitai_token(&self) -> Option<&Token> {
        self.civitai_token.as_ref()
    }

    /// Whether the network is off limits.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The same fetcher without progress events (for metadata reads inside a larger operation).
    pub(crate) fn quiet(&self) -> Fetcher {
        let mut f = self.clone();
        f.reporter = Arc::new(NoProgress);
        f
    }

    /// A fresh engine for one run (its own counters, the fetcher's connection budgets).
    pub(crate) fn engine(&self) -> Engine {
        Engine::new(
            self.client.clone(),
            self.settings.clone(),
            Arc::clone(&self.budget),
            Arc::clone(&self.api),
            self.reporter.clone(),
            Arc::new(Tracker::default()),
            Arc::clone(&self.urls),
        )
    }

    /// A fresh engine for a run whose plan is known, with its counters set and the `Plan` event sent.
    pub(crate) fn begin_run(
        &self,
        files: u64,
        total_bytes: u64,
        cached_files: u64,
        cached_bytes: u64,
    ) -> Engine {
        let engine = self.engine();
        let budget = engine.budget();
        tracing::info!(
            "connection budget: {} ({})",
            budget.limit(),
            if budget.is_adaptive() {
                format!("adaptive, up to {}", self.settings.max_connections)
            } else {
                "fixed".to_string()
            }
        );
        let tracker = engine.tracker();
        tracker.bytes_total.store(total_bytes, Ordering::Relaxed);
        tracker.files_total.store(files, Ordering::Relaxed);
        tracker.bytes_done.store(cached_bytes, Ordering::Relaxed);
        self.reporter.report(&Event::Plan {
            files,
            total_bytes,
            cached_files,
            cached_bytes,
        });
        engine
    }

    /// Runs `work`, emitting a heartbeat every second until it ends, and a final `Done`.
    pub(crate) async fn run_with_heartbeat<T>(
        &self,
        engine: &Engine,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let tracker = Arc::clone(engine.tracker());
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        tokio::pin!(work);
        let mut last_bytes = tracker.bytes_downloaded.load(Ordering::Relaxed);
        let mut last_at = Instant::now();
        let mut rate = 0u64;
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = ticker.tick() => {
                    let now = tracker.bytes_downloaded.load(Ordering::Relaxed);
                    let secs = last_at.elapsed().as_secs_f64().max(0.001);
                    // A short exponential average keeps the displayed rate steady.
                    let instant = ((now - last_bytes.min(now)) as f64 / secs) as u64;
                    rate = if rate == 0 { instant } else { (rate * 2 + instant) / 3 };
                    last_bytes = now;
                    last_at = Instant::now();
                    self.reporter.report(&Event::Heartbeat {
                        bytes_done: tracker.bytes_done.load(Ordering::Relaxed),
                        bytes_total: tracker.bytes_total.load(Ordering::Relaxed),
                        rate_bps: rate,
                        active_files: tracker.active_files.load(Ordering::Relaxed),
                        stalled_ms: if instant > 0 { 0 } else { tracker.stalled_ms() },
                        connections: engine.budget().limit() as u64,
                        active_connections: engine.budget().in_flight() as u64,
                    });
                }
            }
        };
        self.reporter.report(&Event::Done {
            files: tracker.files_total.load(Ordering::Relaxed),
            bytes_downloaded: tracker.bytes_downloaded.load(Ordering::Relaxed),
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        result
    }
}

/// Waits for every transfer of a run and adds up the bytes downloaded. A failure does not stop the
/// others: every file that completes is kept for the next run; the first error is returned (the
/// others were reported as `FileFailed` events) and the count of failures logged.
pub(crate) async fn join_transfers(mut set: tokio::task::JoinSet<Result<u64>>) -> Result<u64> {
    let mut errors = Vec::new();
    let mut downloaded = 0;
    while let Some(joined) = set.join_next().await {
        match joined.unwrap_or_else(|e| Err(Error::Internal(e.to_string()))) {
            Ok(n) => downloaded += n,
            Err(e) => errors.push(e),
        }
    }
    if errors.len() > 1 {
        tracing::warn!(
            "{} files failed; the first error follows (run again to retry them: everything else is kept)",
            errors.len()
        );
    }
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(downloaded),
    }
}

/// Turns the client's retry callbacks into [`Event::Retry`], attributed to a file when the URL is
/// one the engine is transferring; on those, throttling and broken connections are also signals
/// to the connection budget (metadata requests to the API host are not: they have their own).
fn retry_observer(
    reporter: SharedReporter,
    urls: UrlRegistry,
    budget: &Arc<Budget>,
) -> pipefetch_hub_client::RetryObserver {
    let budget = Arc::downgrade(budget);
    Arc::new(move |e: &pipefetch_hub_client::RetryEvent| {
        let file = urls.lock().ok().and_then(|map| map.get(&e.url).copied());
        if file.is_some()
            && let Some(budget) = budget.upgrade()
        {
            use engine::budget::Signal;
            use pipefetch_hub_client::RetryReason as R;
            let signal = match &e.reason {
                R::Status(status @ (429 | 503)) => Some(Signal::Throttled {
                    status: *status,
                    wait: (!e.wait.is_zero()).then_some(e.wait),
                }),
                R::Connection | R::BodyCut | R::Timeout => Some(Signal::Broken),
                _ => None,
            };
            if let Some(signal) = signal {
                budget.signal(signal);
            }
        }
        let reason = match &e.reason {
            pipefetch_hub_client::RetryReason::Status(code) => format!("HTTP {code}"),
            pipefetch_hub_client::RetryReason::Timeout => "timed out or too slow".to_string(),
            pipefetch_hub_client::RetryReason::Connection => "connection failed".to_string(),
            pipefetch_hub_client::RetryReason::BodyCut => "connection cut mid-body".to_string(),
            _ => e.error.clone(),
        };
        reporter.report(&Event::Retry {
            file,
            reason,
            attempt: e.attempt,
            wait_ms: e.wait.as_millis() as u64,
        });
    })
}

/// The cache's name for a Hub repo type.
pub fn cache_repo_type(t: pipefetch_hub_client::RepoType) -> pipefetch_hub_cache::RepoType {
    match t {
        pipefetch_hub_client::RepoType::Dataset => pipefetch_hub_cache::RepoType::Dataset,
        pipefetch_hub_client::RepoType::Space => pipefetch_hub_cache::RepoType::Space,
        pipefetch_hub_client::RepoType::Kernel => pipefetch_hub_cache::RepoType::Kernel,
        _ => pipefetch_hub_cache::RepoType::Model,
    }
}

/// An error and its causes on one line (`a: b: c`), for events and logs.
pub fn render_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = cause.source();
    }
    out
}
