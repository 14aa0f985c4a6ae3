//! The transfer engine: moves the bytes of one blob from a URL into the cache, verified.
//!
//! One engine serves every source. Its rules:
//! - **One connection budget.** Every HTTP body transfer (a whole small file, or one range of a big
//!   one) holds a permit of one shared semaphore, so "8 connections" means 8 in all, not 8 per file.
//! - **Big files in ranges.** A file of at least two chunks is cut into ranges fetched in parallel from
//!   its final (CDN) URL, written in place with positional writes into a private temp file.
//! - **Hash while streaming.** A small file is hashed as its bytes arrive. A big file is hashed by a
//!   blocking thread that follows the completed prefix of ranges, re-reading it from the page cache;
//!   only completed ranges are hashed, so a range that restarts can never slip unhashed bytes in.
//! - **Nothing partial under a final name.** Bytes go to `blobs/<etag>.<rand>.incomplete`; only after
//!   size and digest match is the file renamed to `blobs/<etag>` (see `pipefetch_hub_cache::PartialBlob`).
//! - **Locks only avoid duplicate work.** The per-blob lock is taken with a bounded wait; after it,
//!   the blob is checked again (another process may have finished it).
//!
//! Blocking file I/O runs on tokio's blocking pool in 1 MiB writes; memory use is bounded by
//! `connections × 1 MiB` plus the hasher's 4 MiB buffer per big file, whatever the file sizes.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipefetch_hub_cache::CacheRepo;
use pipefetch_hub_client::{BodySink, HubClient, Url};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::progress::{Event, FileId, SharedReporter};
use crate::resume::{self, ChunkTable, SharedTable};
use crate::verify::{Expected, Hasher};

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

/// Bytes gathered before one positional write.
const WRITE_BUFFER: usize = 1 << 20;
/// Bytes read per step by the hasher that follows completed ranges.
const HASH_BUFFER: usize = 4 << 20;

/// Knobs of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Concurrent HTTP body transfers, across all files.
    pub connections: usize,
    /// Smallest range a big file is cut into.
    pub min_chunk: u64,
    /// Largest range a big file is cut into.
    pub max_chunk: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            connections: 8,
            min_chunk: 8 << 20,
            max_chunk: 64 << 20,
        }
    }
}

impl EngineSettings {
    /// The ranges `size` bytes are cut into: one when the file is small, else about two ranges per
    /// connection, each between `min_chunk` and `max_chunk`.
    pub fn chunks(&self, size: u64) -> Vec<Range<u64>> {
        if size < self.min_chunk.saturating_mul(2) {
            #[allow(clippy::single_range_in_vec_init)]
            return vec![0..size];
        }
        let wanted = (self.connections.max(1) as u64).saturating_mul(2);
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

/// Counters shared by all transfers of one run, read by the heartbeat.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Bytes of the plan on disk (cached ones included).
    pub bytes_done: AtomicU64,
    /// Bytes of the plan in all.
    pub bytes_total: AtomicU64,
    /// Files in the plan.
    pub files_total: AtomicU64,
    /// Bytes that crossed the network.
    pub bytes_downloaded: AtomicU64,
    /// Files being transferred.
    pub active_files: AtomicU64,
    /// Milliseconds after `started` when the last byte arrived.
    pub last_byte_ms: AtomicU64,
    started: Mutex<Option<Instant>>,
}

impl Tracker {
    fn start_instant(&self) -> Instant {
        let mut s = self.started.lock().unwrap_or_else(|p| p.into_inner());
        *s.get_or_insert_with(Instant::now)
    }

    fn touch(&self) {
        let ms = self.start_instant().elapsed().as_millis() as u64;
        self.last_byte_ms.store(ms, Ordering::Relaxed);
    }

    /// Milliseconds since the last byte arrived.
    pub fn stalled_ms(&self) -> u64 {
        let now = self.start_instant().elapsed().as_millis() as u64;
        now.saturating_sub(self.last_byte_ms.load(Ordering::Relaxed))
    }
}

/// One blob to bring into the cache.
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
    /// The URL the bytes finally come from, when already known (a CDN location from a HEAD): ranges
    /// go there directly.
    pub direct_url: Option<Url>,
    /// Its exact size.
    pub size: u64,
    /// What its bytes must hash to.
    pub expected: Expected,
    /// The blob's name in the cache.
    pub etag: String,
    /// The cache repo it lands in.
    pub repo: CacheRepo,
}

/// The transfer engine. Cheap to clone; clones share the connection budget.
#[derive(Clone)]
pub struct Engine {
    client: HubClient,
    budget: Arc<Semaphore>,
    settings: EngineSettings,
    reporter: SharedReporter,
    tracker: Arc<Tracker>,
    urls: crate::UrlRegistry,
}

impl Engine {
    /// An engine over `client` with its own connection budget.
    pub fn new(
        client: HubClient,
        settings: EngineSettings,
        reporter: SharedReporter,
        tracker: Arc<Tracker>,
        urls: crate::UrlRegistry,
    ) -> Engine {
        let budget = Arc::new(Semaphore::new(settings.connections.max(1)));
        Engine {
            client,
            budget,
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

    /// Brings `job`'s blob into the cache (unless it is there already) and returns how many bytes
    /// crossed the network for it.
    pub async fn fetch(&self, job: &BlobJob) -> Result<u64> {
        if self.blob_present(job).await? {
            return Ok(0);
        }
        // Avoid downloading what another process is downloading right now. The lock is advisory:
        // the cache degrades it to a no-op where flock does not work, and correctness never needs it.
        let repo = job.repo.clone();
        let etag = job.etag.clone();
        let _lock = blocking(move || repo.lock(&etag).map_err(Error::from)).await?;
        if self.blob_present(job).await? {
            return Ok(0);
        }

        self.tracker.active_files.fetch_add(1, Ordering::Relaxed);
        let urls: Vec<&str> = [Some(&job.url), job.direct_url.as_ref()]
            .into_iter()
            .flatten()
            .map(Url::as_str)
            .collect();
        let tracked = self.track_urls(&urls, job.file);
        let result = self.transfer(job).await;
        drop(tracked);
        self.tracker.active_files.fetch_sub(1, Ordering::Relaxed);
        result
    }

    /// Attributes the client's retries on `urls` to `file` (in `Retry` events) until the guard drops.
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

    /// Whether the blob is in the cache with its size. A blob of another size is damage (blobs are
    /// named by their content): it is removed so that it gets downloaded again.
    async fn blob_present(&self, job: &BlobJob) -> Result<bool> {
        let repo = job.repo.clone();
        let (etag, size) = (job.etag.clone(), job.size);
        blocking(move || {
            let path = repo.blob_path(&etag)?;
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && m.len() == size => Ok(true),
                Ok(m) if m.is_file() => {
                    tracing::warn!(
                        "{} has {} bytes instead of {size}; downloading it again",
                        path.display(),
                        m.len()
                    );
                    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                    Ok(false)
                }
                _ => Ok(repo.has_blob(&etag)),
            }
        })
        .await
    }

    async fn transfer(&self, job: &BlobJob) -> Result<u64> {
        let first = self.transfer_once(job, true).await;
        match first {
            // A resumed partial whose bytes do not verify: its old bytes were bad (written by a
            // server that changed the file, or lost in a crash). Start once more from zero.
            Err(Resumed::Resumed(e)) => {
                tracing::warn!("{e}; the resumed partial is discarded, starting again from zero");
                self.transfer_once(job, false)
                    .await
                    .map_err(Resumed::into_inner)
            }
            other => other.map_err(Resumed::into_inner),
        }
    }

    /// One attempt at a blob. With `resume`, adopts a partial left by an earlier run.
    async fn transfer_once(&self, job: &BlobJob, resume: bool) -> Result<u64, Resumed> {
        let repo = job.repo.clone();
        let (etag, size) = (job.etag.clone(), job.size);
        let default_ranges = self.settings.chunks(job.size);
        let (partial, table) = blocking(move || {
            if resume {
                for path in repo.find_partials(&etag)? {
                    if let Some(table) = resume::load(&path, &etag, size) {
                        let mut partial = repo.adopt_partial(&path)?;
                        // Kept even when this transfer is dropped before it ends (see
                        // `RecordOnDrop`): only bad bytes are deleted, and explicitly.
                        partial.keep();
                        return Ok((partial, table));
                    }
                }
            }
            let mut partial = repo.begin_blob(&etag)?;
            partial.keep();
            let table = ChunkTable::new(&etag, size, &default_ranges);
            Ok((partial, table))
        })
        .await
        .map_err(Resumed::Fresh)?;
        let resumed_bytes = table.done_bytes();
        let temp_path = partial.path().to_path_buf();
        let file = Arc::new(
            partial
                .file()
                .try_clone()
                .map_err(|e| Resumed::Fresh(Error::io("open", &temp_path, e)))?,
        );
        let progress = FileProgress::new(job, self.reporter.clone(), self.tracker.clone());
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
        let shared = Arc::new(SharedTable::new(temp_path.clone(), table.clone()));
        let mut record_on_drop = RecordOnDrop(Some(Arc::clone(&shared)));

        let outcome = self
            .transfer_ranges(job, &file, &table, &shared, &progress)
            .await;
        let outcome = match outcome {
            Ok(digest) => self.verify(job, &file, &temp_path, digest),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                record_on_drop.disarm();
                drop(file);
                let (r, e) = (job.repo.clone(), job.etag.clone());
                blocking(move || match partial.commit() {
                    Ok(_) => Ok(()),
                    // Another writer (where locks do not work) committed the same blob first.
                    Err(_) if r.has_blob(&e) => Ok(()),
                    Err(err) => Err(Error::from(err)),
                })
                .await
                .map_err(Resumed::Fresh)?;
                resume::remove(&temp_path);
                Ok(progress.downloaded())
            }
            Err(e @ (Error::Integrity { .. } | Error::SizeMismatch { .. })) => {
                // Bad bytes are never kept: the partial and its state go.
                record_on_drop.disarm();
                let _ = std::fs::remove_file(partial.into_resumable());
                resume::remove(&temp_path);
                progress.rewind(progress.done());
                Err(if resumed_bytes > 0 {
                    Resumed::Resumed(e)
                } else {
                    Resumed::Fresh(e)
                })
            }
            Err(e) => {
                // Keep every verified-so-far byte for the next run: the partial stays, with its state.
                record_on_drop.disarm();
                shared.flush();
                let _ = partial.into_resumable();
                Err(Resumed::Fresh(e))
            }
        }
    }

    fn verify(
        &self,
        job: &BlobJob,
        file: &File,
        temp_path: &std::path::Path,
        digest: String,
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
                actual: digest,
            });
        }
        Ok(())
    }

    /// Fetches every incomplete range of `table` (in parallel, under the budget) while a blocking
    /// hasher follows the completed prefix; returns the digest of the whole file.
    async fn transfer_ranges(
        &self,
        job: &BlobJob,
        file: &Arc<File>,
        table: &ChunkTable,
        shared: &Arc<SharedTable>,
        progress: &FileProgress,
    ) -> Result<String> {
        let chunks = table.ranges();
        // Ranges go straight to the final (CDN) URL when we know it; one range goes through the
        // resolve URL and lets the client follow its redirect.
        let url = match (&job.direct_url, chunks.len()) {
            (Some(url), n) if n > 1 => url.clone(),
            _ => job.url.clone(),
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, Option<Hasher>)>();
        let hasher = job.expected.hasher(job.size);
        let hash_file = Arc::clone(file);
        let hash_chunks = chunks.clone();
        let hashing = tokio::task::spawn_blocking(move || {
            follow_and_hash(&hash_file, &hash_chunks, &done_rx, hasher)
        });

        let mut tasks = tokio::task::JoinSet::new();
        for (index, &(start, end, done)) in table.chunks.iter().enumerate() {
            if start + done >= end {
                let _ = done_tx.send((index, None));
                continue;
            }
            // The first range, fetched from its start, is hashed as it streams: a file of one
            // range is never read back, and a big file's hasher starts from there.
            let inline =
                (index == 0 && start == 0 && done == 0).then(|| job.expected.hasher(job.size));
            let engine = self.clone();
            let url = url.clone();
            let file = Arc::clone(file);
            let progress = progress.clone();
            let done_tx = done_tx.clone();
            let job = job.clone();
            let shared = Arc::clone(shared);
            tasks.spawn(async move {
                let _permit = engine.permit().await?;
                let mut sink = FileSink::new(
                    file,
                    start..end,
                    start + done,
                    progress,
                    shared,
                    index,
                    inline,
                );
                let fetched = engine.client.download(&url, start..end, &mut sink).await;
                // Bytes received before a failure are kept (and recorded) for the next run.
                sink.flush()
                    .await
                    .map_err(|e| engine.write_error(&job, e))?;
                fetched.map_err(|e| Error::transfer(&job, e))?;
                let _ = done_tx.send((index, sink.take_hasher()));
                Ok::<(), Error>(())
            });
        }
        drop(done_tx);
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let outcome = joined.unwrap_or_else(|e| Err(Error::Internal(e.to_string())));
            if let Err(e) = outcome
                && first_error.is_none()
            {
                first_error = Some(e);
                // Stop the other ranges: the file failed; what they wrote so far is recorded.
                tasks.abort_all();
            }
        }
        if let Some(e) = first_error {
            // The hasher sees its channel close and stops; wait for it so no thread outlives us.
            let _ = hashing.await;
            return Err(e);
        }
        let digest = hashing
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::io("hash", job.repo.path(), e))?;
        digest.ok_or_else(|| Error::Internal("hasher stopped before the last range".into()))
    }

    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.budget)
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("connection budget closed".into()))
    }

    fn write_error(&self, job: &BlobJob, e: io::Error) -> Error {
        Error::write(job.repo.blobs_dir(), job.size, e)
    }
}

/// Records a transfer's progress in its state file when the transfer is dropped before it ends: a
/// caller cancelled it (Ctrl-C in Python, a timeout, an aborted task). The partial itself is kept
/// (its `PartialBlob` is marked to be kept from the start), so the next run resumes from every
/// byte written so far, as after a failure. The write is one small file, done on the dropping
/// thread: there is no runtime to hand it to while a future is being dropped.
struct RecordOnDrop(Option<Arc<SharedTable>>);

impl RecordOnDrop {
    /// The transfer reached an end that handles the state itself.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for RecordOnDrop {
    fn drop(&mut self) {
        if let Some(table) = self.0.take() {
            table.flush();
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

/// Hashes `chunks` of `file` in order, each as soon as it and all before it are complete.
/// Returns `None` when the senders went away first (the transfer failed).
fn follow_and_hash(
    file: &File,
    chunks: &[Range<u64>],
    done: &std::sync::mpsc::Receiver<(usize, Option<Hasher>)>,
    fresh: Hasher,
) -> io::Result<Option<String>> {
    let mut complete = vec![false; chunks.len()];
    let mut next = 0;
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut fresh = Some(fresh);
    let mut hasher: Option<Hasher> = None;
    while next < chunks.len() {
        match done.recv() {
            Ok((i, inline)) if i < complete.len() => {
                complete[i] = true;
                // The first range's sink hashes as it writes; its hasher carries on from there.
                if i == 0
                    && let Some(h) = inline
                {
                    hasher = Some(h);
                    next = 1;
                }
            }
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
        while next < chunks.len() && complete[next] {
            let h = match hasher.as_mut() {
                Some(h) => h,
                None => hasher.insert(fresh.take().unwrap_or(Hasher::None)),
            };
            let range = &chunks[next];
            let mut pos = range.start;
            while pos < range.end {
                let want = ((range.end - pos) as usize).min(buf.len());
                let n = file.read_at(&mut buf[..want], pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "temp file shorter than its completed ranges",
                    ));
                }
                h.update(&buf[..n]);
                pos += n as u64;
            }
            next += 1;
        }
    }
    let hasher = match hasher {
        Some(h) => h,
        None => fresh.unwrap_or(Hasher::None),
    };
    Ok(Some(hasher.finish_hex()))
}

/// Per-file byte accounting, turned into `Progress` events.
#[derive(Clone)]
struct FileProgress {
    inner: Arc<FileProgressInner>,
}

struct FileProgressInner {
    file: FileId,
    total: u64,
    done: AtomicU64,
    downloaded: AtomicU64,
    last_report: Mutex<Instant>,
    reporter: SharedReporter,
    tracker: Arc<Tracker>,
}

impl FileProgress {
    fn new(job: &BlobJob, reporter: SharedReporter, tracker: Arc<Tracker>) -> FileProgress {
        FileProgress {
            inner: Arc::new(FileProgressInner {
                file: job.file,
                total: job.size,
                done: AtomicU64::new(0),
                downloaded: AtomicU64::new(0),
                last_report: Mutex::new(Instant::now()),
                reporter,
                tracker,
            }),
        }
    }

    fn add(&self, n: u64) {
        let i = &self.inner;
        let done = i.done.fetch_add(n, Ordering::Relaxed) + n;
        i.downloaded.fetch_add(n, Ordering::Relaxed);
        i.tracker.bytes_done.fetch_add(n, Ordering::Relaxed);
        i.tracker.bytes_downloaded.fetch_add(n, Ordering::Relaxed);
        i.tracker.touch();
        // Events at most every 50 ms per file (and always for the last byte): enough for smooth bars
        // and relays, cheap at gigabytes per second.
        let mut last = i.last_report.lock().unwrap_or_else(|p| p.into_inner());
        if done >= i.total || last.elapsed() >= Duration::from_millis(50) {
            *last = Instant::now();
            i.reporter.report(&Event::Progress {
                file: i.file,
                bytes_done: done.min(i.total),
                bytes_total: i.total,
            });
        }
    }

    fn rewind(&self, n: u64) {
        let i = &self.inner;
        let done = i.done.fetch_sub(n, Ordering::Relaxed).saturating_sub(n);
        i.tracker.bytes_done.fetch_sub(n, Ordering::Relaxed);
        i.reporter.report(&Event::Progress {
            file: i.file,
            bytes_done: done,
            bytes_total: i.total,
        });
    }

    fn downloaded(&self) -> u64 {
        self.inner.downloaded.load(Ordering::Relaxed)
    }

    fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    /// Bytes found on disk from an earlier run: done, but not downloaded now (`FileStarted`
    /// carries them to reporters).
    fn resume(&self, n: u64) {
        let i = &self.inner;
        i.done.fetch_add(n, Ordering::Relaxed);
        i.tracker.bytes_done.fetch_add(n, Ordering::Relaxed);
    }
}

/// Writes one range of a file at its offsets and records its progress for resuming; the first range
/// of a file is hashed as it is written.
struct FileSink {
    file: Arc<File>,
    range: Range<u64>,
    /// Absolute offset up to which bytes are written to the file.
    flushed: u64,
    /// Frames received and not yet written, kept as they came (no copy).
    pending: Vec<Bytes>,
    pending_len: usize,
    progress: FileProgress,
    table: Arc<SharedTable>,
    index: usize,
    /// The running digest of everything this sink wrote, when it hashes inline. Dropped (the file
    /// is then hashed from disk) if a server makes it rewrite bytes it already hashed.
    hasher: Option<Hasher>,
}

impl FileSink {
    fn new(
        file: Arc<File>,
        range: Range<u64>,
        from: u64,
        progress: FileProgress,
        table: Arc<SharedTable>,
        index: usize,
        hasher: Option<Hasher>,
    ) -> FileSink {
        FileSink {
            file,
            flushed: from,
            range,
            pending: Vec::new(),
            pending_len: 0,
            progress,
            table,
            index,
            hasher,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let frames = std::mem::take(&mut self.pending);
        let len = std::mem::take(&mut self.pending_len) as u64;
        let file = Arc::clone(&self.file);
        let pos = self.flushed;
        let table = Arc::clone(&self.table);
        let (index, done) = (self.index, pos + len - self.range.start);
        let mut hasher = self.hasher.take();
        let hasher = tokio::task::spawn_blocking(move || -> io::Result<Option<Hasher>> {
            let mut at = pos;
            for frame in &frames {
                file.write_all_at(frame, at)?;
                if let Some(h) = hasher.as_mut() {
                    h.update(frame);
                }
                at += frame.len() as u64;
            }
            table.record(index, done);
            Ok(hasher)
        })
        .await
        .map_err(io::Error::other)??;
        self.hasher = hasher;
        self.flushed += len;
        Ok(())
    }

    /// The inline digest state, for the hasher that continues after this range.
    fn take_hasher(&mut self) -> Option<Hasher> {
        self.hasher.take()
    }
}

impl BodySink for FileSink {
    async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let room = self.range.end.saturating_sub(self.position());
        if chunk.len() as u64 > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "server sent more bytes than the {} requested",
                    self.range.end - self.range.start
                ),
            ));
        }
        self.progress.add(chunk.len() as u64);
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        if self.pending_len >= WRITE_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn restart(&mut self, from: u64) -> io::Result<()> {
        // The server could not resume: bytes from `from` on are sent again and overwrite what we
        // had. Bytes already hashed inline cannot be taken back, so the file is then hashed from
        // disk once complete; other ranges are only hashed once complete anyway.
        let from = from.clamp(self.range.start, self.range.end);
        let rewound = self.position().saturating_sub(from);
        if from < self.flushed {
            self.hasher = None;
        }
        self.pending.clear();
        self.pending_len = 0;
        self.flushed = from;
        self.progress.rewind(rewound);
        Ok(())
    }

    fn position(&self) -> u64 {
        self.flushed + self.pending_len as u64
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
        assert_eq!(s.chunks(0), vec![0..0]);
        assert_eq!(s.chunks(10), vec![0..10]);
        assert_eq!(s.chunks(16 << 20).len(), 2);
    }

    #[test]
    fn ranges_cover_the_file_exactly() {
        let s = EngineSettings::default();
        for size in [16 << 20, (1 << 30) + 17, 5_000_000_000u64] {
            let chunks = s.chunks(size);
            assert_eq!(chunks[0].start, 0);
            assert_eq!(chunks.last().map(|c| c.end), Some(size));
            for pair in chunks.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
            assert!(chunks.iter().all(|c| c.end - c.start <= s.max_chunk));
        }
    }
}
