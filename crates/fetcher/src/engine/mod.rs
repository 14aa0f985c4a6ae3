//! The transfer engine: moves the bytes of one blob from a URL to its destination, verified.
//!
//! One engine serves every source. Its rules:
//! - **One connection budget, sized at run time.** Every HTTP body transfer holds a slot of one
//!   budget shared by all files ([`budget`]): "N connections" means N in all, not N per file. The
//!   budget adapts to the link (it grows while goodput rises, halves when the server throttles)
//!   unless pinned; metadata requests to the Hub's API host have a small budget of their own.
//! - **Ranges, stolen and hedged.** A file is cut into ranges fetched in parallel, written in
//!   place with positional writes into a private temp file. A free connection takes a range nobody
//!   fetches, else splits the range with the most bytes left and takes its tail, so the last
//!   seconds of a file are spread over all connections. A connection far slower than its peers
//!   has the rest of its range asked for again on a new connection; the first to deliver wins
//!   ([`ranges`], [`transfer`]).
//! - **Hash while streaming.** The connection that fetches from byte 0 hashes as it writes; a
//!   blocking thread follows the written prefix and hashes the rest from the page cache
//!   ([`hash`]). Only recorded bytes are hashed, so a range fetched twice never slips unhashed
//!   bytes in.
//! - **Nothing partial under a final name.** Bytes go to a destination's partial file; only after
//!   size and digest match does the [`dest::Destination`] give it its final name.
//! - **Locks only avoid duplicate work.** The destination's lock is taken with a bounded wait;
//!   after it, the destination is checked again (another process may have finished the blob).
//! - **Exact resume.** The `.state` sidecar records what each range has on disk, and stays exact
//!   across splits (see [`ranges`]).
//!
//! Blocking file I/O runs on tokio's blocking pool. Memory stays flat whatever the file sizes and
//! the budget: about 8 MiB of write buffers in all (see `sink::write_buffer`), 128 KiB of HTTP
//! read buffer per connection, and 256 KiB per file while its prefix is hashed from disk.

pub(crate) mod budget;
pub(crate) mod dest;
mod hash;
mod ranges;
mod sink;
mod transfer;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use pipefetch_hub_client::{Auth, HubClient, Url};
use tokio::sync::Semaphore;

pub(crate) use budget::Budget;
pub use budget::{BudgetMode, INITIAL as INITIAL_CONNECTIONS};
pub use dest::content::ContentBlob;
pub use dest::hub::HubBlob;
pub use dest::{Destination, Landing};
pub use sink::Tracker;
pub(crate) use transfer::Prefetched;

use crate::error::{Error, Result};
use crate::progress::{Event, FileId, SharedReporter};
use crate::resume::{self, ChunkTable};
use crate::verify::Expected;
use ranges::Ranges;
use sink::FileProgress;

/// An error from a transfer attempt, tagged with whether that attempt resumed an earlier partial.
enum Resumed {
    Resumed(Error),
    Fresh(Error),
}

impl Resumed {
    fn into_inner(self) -> Error {
        match self {
            Resumed::Resumed(e) | Resumed::Fresh(e) => e,
        }
    }
}

/// Knobs of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// `Some(n)`: exactly `n` concurrent body transfers across all files. `None` (the default):
    /// as many as the link rewards, found at run time, up to `max_connections`.
    pub connections: Option<usize>,
    /// The cap of the adaptive budget.
    pub max_connections: usize,
    /// Smallest range a file is cut into, and the smallest piece work stealing splits off.
    pub min_chunk: u64,
    /// Largest range a file is cut into at the start.
    pub max_chunk: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            connections: None,
            max_connections: budget::DEFAULT_MAX,
            min_chunk: 8 << 20,
            max_chunk: 64 << 20,
        }
    }
}

impl EngineSettings {
    /// How the budget is sized.
    pub fn mode(&self) -> BudgetMode {
        match self.connections {
            Some(n) => BudgetMode::Fixed(n.max(1)),
            None => BudgetMode::Adaptive {
                max: self.max_connections.max(1),
            },
        }
    }

    /// Whether a file of `size` bytes is cut into more than one range (and is worth locating on
    /// its CDN first).
    pub fn splits(&self, size: u64) -> bool {
        size >= self.min_chunk.saturating_mul(2)
    }

    /// The ranges `size` bytes are cut into at the start when `connections` are in use: one when
    /// the file is small, else about two ranges per connection, each between `min_chunk` and
    /// `max_chunk`. Work stealing splits them further at the end.
    pub fn chunks(&self, size: u64, connections: usize) -> Vec<Range<u64>> {
        if !self.splits(size) {
            #[allow(clippy::single_range_in_vec_init)]
            return vec![0..size];
        }
        let wanted = (connections.max(1) as u64).saturating_mul(2);
        // Rounded up, so that the ranges divide the file evenly (no tiny last range).
        let chunk = size
            .div_ceil(wanted)
            .clamp(self.min_chunk, self.max_chunk.max(self.min_chunk));
        let mut out = Vec::with_capacity(size.div_ceil(chunk) as usize);
        let mut start = 0;
        while start < size {
            let end = (start + chunk).min(size);
            out.push(start..end);
            start = end;
        }
        out
    }
}

/// One blob to bring to its destination.
#[derive(Debug, Clone)]
pub struct BlobJob {
    /// Its id in progress events.
    pub file: FileId,
    /// Where it comes from, for events and messages (a repo id or a host).
    pub source: String,
    /// Its path in that source.
    pub path: String,
    /// The URL to GET (redirects are followed by the client).
    pub url: Url,
    /// The URL the bytes finally come from, when already known (a CDN location from a HEAD, a
    /// storage URL a probe was redirected to): ranges go there directly.
    pub direct_url: Option<Url>,
    /// The token to send, bound to its origin (it never follows a redirect elsewhere). For Hub
    /// files, the client's own ([`HubClient::auth`]).
    pub auth: Option<Auth>,
    /// Its exact size.
    pub size: u64,
    /// What its bytes must hash to (or, with [`Expected::AnySha256`], which digest to compute).
    pub expected: Expected,
    /// The `ETag` every answer must carry, when the source has one and no digest pins the
    /// content: another one means the file changed between two ranges.
    pub validator: Option<String>,
    /// Where it lands.
    pub dest: Arc<dyn Destination>,
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes that crossed the network for it.
    pub downloaded: u64,
    /// The hex digest of its bytes when they were transferred now (`None` when the destination
    /// already had the blob).
    pub digest: Option<String>,
    /// Where the blob landed, when it was transferred now.
    pub path: Option<PathBuf>,
}

impl Fetched {
    fn present() -> Fetched {
        Fetched {
            downloaded: 0,
            digest: None,
            path: None,
        }
    }
}

/// How a transfer starts.
pub(crate) enum Start {
    /// Resume a partial the destination finds, else start fresh.
    Resume,
    /// Into this partial, with this record, optionally with a connection already streaming.
    Given(Box<dyn Landing>, ChunkTable, Option<Box<Prefetched>>),
}

/// The transfer engine. Cheap to clone; clones share the connection budget.
#[derive(Clone)]
pub struct Engine {
    client: HubClient,
    budget: Arc<Budget>,
    api: Arc<Semaphore>,
    settings: EngineSettings,
    reporter: SharedReporter,
    tracker: Arc<Tracker>,
    urls: crate::UrlRegistry,
}

impl Engine {
    /// An engine over `client` sharing `budget` (body transfers) and `api` (metadata requests).
    pub(crate) fn new(
        client: HubClient,
        settings: EngineSettings,
        budget: Arc<Budget>,
        api: Arc<Semaphore>,
        reporter: SharedReporter,
        tracker: Arc<Tracker>,
        urls: crate::UrlRegistry,
    ) -> Engine {
        Engine {
            client,
            budget,
            api,
            settings,
            reporter,
            tracker,
            urls,
        }
    }

    /// The client the engine uses.
    pub fn client(&self) -> &HubClient {
        &self.client
    }

    /// The run's counters.
    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    /// The reporter events go to.
    pub fn reporter(&self) -> &SharedReporter {
        &self.reporter
    }

    /// The engine's knobs.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The connection budget.
    pub(crate) fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// A slot of the API host's own small budget, for a metadata request (a HEAD that locates a
    /// file). Held until dropped.
    pub(crate) async fn api_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.api)
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("API budget closed".into()))
    }

    /// Brings `job`'s blob to its destination (unless it is there already).
    pub async fn fetch(&self, job: &BlobJob) -> Result<Fetched> {
        let dest = Arc::clone(&job.dest);
        let size = job.size;
        if blocking(move || dest.present(size)).await? {
            return Ok(Fetched::present());
        }
        // Avoid downloading what another process is downloading right now. The lock is advisory:
        // correctness never needs it.
        let dest = Arc::clone(&job.dest);
        let _lock = blocking(move || dest.lock()).await?;
        let dest = Arc::clone(&job.dest);
        if blocking(move || dest.present(size)).await? {
            return Ok(Fetched::present());
        }
        self.fetch_from(job, Start::Resume).await
    }

    /// Transfers `job` (no presence check, no lock: the caller did what its destination needs).
    pub(crate) async fn fetch_from(&self, job: &BlobJob, start: Start) -> Result<Fetched> {
        self.tracker.active_files.fetch_add(1, Ordering::Relaxed);
        let urls: Vec<&str> = [Some(&job.url), job.direct_url.as_ref()]
            .into_iter()
            .flatten()
            .map(Url::as_str)
            .collect();
        let tracked = self.track_urls(&urls, job.file);
        let result = self.transfer(job, start).await;
        drop(tracked);
        self.tracker.active_files.fetch_sub(1, Ordering::Relaxed);
        result
    }

    /// Attributes the client's retries on `urls` to `file` (in `Retry` events, and as signals to
    /// the budget) until the guard drops.
    pub(crate) fn track_urls(&self, urls: &[&str], file: FileId) -> TrackedUrls {
        if let Ok(mut map) = self.urls.lock() {
            for url in urls {
                map.insert((*url).to_string(), file);
            }
        }
        TrackedUrls {
            registry: Arc::clone(&self.urls),
            urls: urls.iter().map(|u| (*u).to_string()).collect(),
        }
    }

    async fn transfer(&self, job: &BlobJob, start: Start) -> Result<Fetched> {
        match self.transfer_once(job, start).await {
            // A resumed partial whose bytes do not verify: its old bytes were bad (written by a
            // server that changed the file, or lost in a crash). Start once more from zero.
            Err(Resumed::Resumed(e)) => {
                tracing::warn!("{e}; the resumed partial is discarded, starting again from zero");
                let dest = Arc::clone(&job.dest);
                let fresh = blocking(move || dest.begin()).await?;
                let table = self.fresh_table(job);
                self.transfer_once(job, Start::Given(fresh, table, None))
                    .await
                    .map_err(Resumed::into_inner)
            }
            other => other.map_err(Resumed::into_inner),
        }
    }

    fn fresh_table(&self, job: &BlobJob) -> ChunkTable {
        let ranges = self.settings.chunks(job.size, self.budget.limit());
        ChunkTable::new(&job.dest.identity(), job.size, &ranges)
    }

    /// One attempt at a blob.
    async fn transfer_once(&self, job: &BlobJob, start: Start) -> Result<Fetched, Resumed> {
        let (landing, table, first) = match start {
            Start::Given(landing, table, first) => (landing, table, first),
            Start::Resume => {
                let dest = Arc::clone(&job.dest);
                let size = job.size;
                let fresh = self.fresh_table(job);
                let (landing, table) = blocking(move || match dest.resume(size)? {
                    Some(found) => Ok(found),
                    None => Ok((dest.begin()?, fresh)),
                })
                .await
                .map_err(Resumed::Fresh)?;
                (landing, table, None)
            }
        };
        let resumed_bytes = table.done_bytes();
        let temp_path = landing.path().to_path_buf();
        let file = Arc::new(
            landing
                .file()
                .try_clone()
                .map_err(|e| Resumed::Fresh(Error::io("open", &temp_path, e)))?,
        );
        let progress = FileProgress::new(
            job.file,
            job.size,
            self.reporter.clone(),
            self.tracker.clone(),
        );
        self.reporter.report(&Event::FileStarted {
            file: job.file,
            repo: job.source.clone(),
            path: job.path.clone(),
            size: job.size,
            resumed: resumed_bytes,
        });
        if resumed_bytes > 0 {
            tracing::info!(
                "{}: resuming `{}` with {resumed_bytes} of {} bytes already on disk",
                job.source,
                job.path,
                job.size
            );
            progress.resume(resumed_bytes);
        }
        let ranges = Arc::new(Ranges::new(&table, temp_path.clone()));
        let mut record_on_drop = PersistOnDrop(Some(Arc::clone(&ranges)));

        let outcome = transfer::fetch_ranges(self, job, &file, &ranges, &progress, first).await;
        // Every end below handles the resume record itself; only a dropped transfer needs the
        // guard.
        record_on_drop.disarm();
        let outcome = match outcome {
            Ok(digest) => self
                .verify(job, &file, &temp_path, &digest)
                .map(|()| digest),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(digest) => {
                drop(file);
                let d = digest.clone();
                let path = blocking(move || landing.commit(&d)).await.map_err(|e| {
                    resume::remove(&temp_path);
                    Resumed::Fresh(e)
                })?;
                resume::remove(&temp_path);
                Ok(Fetched {
                    downloaded: progress.downloaded(),
                    digest: Some(digest),
                    path: Some(path),
                })
            }
            Err(
                e @ (Error::Integrity { .. } | Error::SizeMismatch { .. } | Error::Changed { .. }),
            ) => {
                // Bad bytes are never kept: the partial and its state go.
                drop(file);
                landing.discard();
                resume::remove(&temp_path);
                progress.rewind(progress.done());
                Err(if resumed_bytes > 0 {
                    Resumed::Resumed(e)
                } else {
                    Resumed::Fresh(e)
                })
            }
            Err(e) => {
                // Keep every written byte for the next run: the partial stays, with its state.
                ranges.persist(true);
                drop(file);
                landing.keep();
                Err(Resumed::Fresh(e))
            }
        }
    }

    fn verify(
        &self,
        job: &BlobJob,
        file: &std::fs::File,
        temp_path: &std::path::Path,
        digest: &str,
    ) -> Result<()> {
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", temp_path, e))?
            .len();
        if len != job.size {
            return Err(Error::SizeMismatch {
                source_label: job.source.clone(),
                path: job.path.clone(),
                expected: job.size,
                actual: len,
            });
        }
        if let Some(expected) = job.expected.hex()
            && digest != expected
        {
            return Err(Error::Integrity {
                source_label: job.source.clone(),
                path: job.path.clone(),
                algorithm: job.expected.algorithm(),
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        Ok(())
    }
}

/// Records a transfer's resume state when the transfer is dropped before it ends: a caller
/// cancelled it (Ctrl-C in Python, a timeout, an aborted task). Its partial is kept (destinations
/// keep uncommitted partials), so the next run resumes from every byte recorded. The write is one
/// small file, done on the dropping thread: there is no runtime to hand it to while a future is
/// being dropped.
struct PersistOnDrop(Option<Arc<Ranges>>);

impl PersistOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for PersistOnDrop {
    fn drop(&mut self) {
        if let Some(ranges) = self.0.take() {
            ranges.persist(true);
        }
    }
}

/// Removes its URLs from the registry when dropped, however the transfer ended.
pub(crate) struct TrackedUrls {
    registry: crate::UrlRegistry,
    urls: Vec<String>,
}

impl Drop for TrackedUrls {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.lock() {
            for url in &self.urls {
                map.remove(url);
            }
        }
    }
}

/// Runs blocking cache work on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_one_range() {
        let s = EngineSettings::default();
        assert_eq!(s.chunks(0, 8), vec![0..0]);
        assert_eq!(s.chunks(10, 8), vec![0..10]);
        assert_eq!(s.chunks(16 << 20, 8).len(), 2);
    }

    #[test]
    fn ranges_cover_the_file_exactly() {
        let s = EngineSettings::default();
        for size in [16 << 20, (1 << 30) + 17, 5_000_000_000u64] {
            for n in [1, 8, 64] {
                let chunks = s.chunks(size, n);
                assert_eq!(chunks[0].start, 0);
                assert_eq!(chunks.last().map(|c| c.end), Some(size));
                for pair in chunks.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                assert!(chunks.iter().all(|c| c.end - c.start <= s.max_chunk));
            }
        }
    }
}
