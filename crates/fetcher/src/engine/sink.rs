//! Where a connection's bytes go: positional writes into the partial file, the resume record,
//! inline hashing, and the byte counters behind progress events and the budget's controller.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipefetch_hub_client::BodySink;

use super::budget::Budget;
use super::ranges::{Ranges, WorkerId};
use crate::progress::{Event, FileId, SharedReporter};
use crate::verify::Hasher;

/// Bytes buffered before positional writes, over all connections: each connection's buffer is
/// this divided by the budget, between [`MIN_WRITE`] and [`MAX_WRITE`] (1 MiB at 8 connections,
/// 128 KiB at 64). Memory stays flat whatever the budget.
///
/// Frames are kept as they came (no copy: a copy cost ~10 % more CPU on a machine where hashing
/// already competes with the transfer). A kept frame pins the HTTP client's read buffer it was
/// cut from, which is why those are capped at 128 KiB (`hub-client`) and why this budget is
/// divided among connections: pinned memory stays about the size of what is buffered.
const WRITE_BUFFERS: usize = 8 << 20;
const MIN_WRITE: usize = 128 << 10;
const MAX_WRITE: usize = 1 << 20;

/// The write buffer of one connection when `connections` are in use.
pub(crate) fn write_buffer(connections: usize) -> usize {
    (WRITE_BUFFERS / connections.max(1)).clamp(MIN_WRITE, MAX_WRITE)
}

/// Buffered bytes older than this are written at the next frame: a slow connection's bytes are
/// recorded (and survive a kill) within about a second.
const WRITE_AGE: Duration = Duration::from_secs(1);

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

/// Per-file byte accounting, turned into `Progress` events.
#[derive(Clone)]
pub(crate) struct FileProgress {
    inner: Arc<FileProgressInner>,
}

struct FileProgressInner {
    file: FileId,
    total: u64,
    done: AtomicU64,
    received: AtomicU64,
    last_report: Mutex<Instant>,
    reporter: SharedReporter,
    tracker: Arc<Tracker>,
}

impl FileProgress {
    pub(crate) fn new(
        file: FileId,
        total: u64,
        reporter: SharedReporter,
        tracker: Arc<Tracker>,
    ) -> FileProgress {
        FileProgress {
            inner: Arc::new(FileProgressInner {
                file,
                total,
                done: AtomicU64::new(0),
                received: AtomicU64::new(0),
                last_report: Mutex::new(Instant::now()),
                reporter,
                tracker,
            }),
        }
    }

    /// Bytes that crossed the network (written or not).
    fn received(&self, n: u64) {
        let i = &self.inner;
        i.received.fetch_add(n, Ordering::Relaxed);
        i.tracker.bytes_downloaded.fetch_add(n, Ordering::Relaxed);
        i.tracker.touch();
    }

    /// Bytes of the file accepted for writing.
    fn add(&self, n: u64) {
        let i = &self.inner;
        let done = i.done.fetch_add(n, Ordering::Relaxed) + n;
        i.tracker.bytes_done.fetch_add(n, Ordering::Relaxed);
        // Events at most every 50 ms per file (and always for the last byte): enough for smooth
        // bars and relays, cheap at gigabytes per second.
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

    /// Bytes accepted but lost before they were written (a cancelled connection): they will be
    /// fetched again.
    pub(crate) fn rewind(&self, n: u64) {
        if n == 0 {
            return;
        }
        let i = &self.inner;
        let done = i.done.fetch_sub(n, Ordering::Relaxed).saturating_sub(n);
        i.tracker.bytes_done.fetch_sub(n, Ordering::Relaxed);
        i.reporter.report(&Event::Progress {
            file: i.file,
            bytes_done: done,
            bytes_total: i.total,
        });
    }

    /// Bytes that crossed the network for this file.
    pub(crate) fn downloaded(&self) -> u64 {
        self.inner.received.load(Ordering::Relaxed)
    }

    /// Bytes of the file done.
    pub(crate) fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    /// Bytes found on disk from an earlier run: done, but not downloaded now.
    pub(crate) fn resume(&self, n: u64) {
        let i = &self.inner;
        i.done.fetch_add(n, Ordering::Relaxed);
        i.tracker.bytes_done.fetch_add(n, Ordering::Relaxed);
    }
}

/// What one worker did, for telling stragglers from their peers.
#[derive(Debug)]
pub(crate) struct WorkerStats {
    pub(crate) started: Instant,
    /// Bytes received from the network.
    pub(crate) received: AtomicU64,
    /// Bytes accepted for writing (claimed).
    pub(crate) taken: AtomicU64,
    /// Milliseconds from `started` to the first byte (0 = none yet).
    pub(crate) first_byte_ms: AtomicU64,
}

impl WorkerStats {
    pub(crate) fn new() -> WorkerStats {
        WorkerStats {
            started: Instant::now(),
            received: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            first_byte_ms: AtomicU64::new(0),
        }
    }
}

/// The shared parts every sink of one file needs.
#[derive(Clone)]
pub(crate) struct SinkCtx {
    pub(crate) file: Arc<File>,
    pub(crate) ranges: Arc<Ranges>,
    pub(crate) progress: FileProgress,
    pub(crate) budget: Arc<Budget>,
    /// Writes into the file at once. Buffered writes to one file serialise on its inode lock
    /// anyway: more at once only spin on that lock (eight 1 MiB writers made an unthrottled pull
    /// ~25 % slower) and hold blocking threads (hundreds with 64 connections).
    pub(crate) writers: Arc<tokio::sync::Semaphore>,
}

/// Writes into one file at once (see [`SinkCtx::writers`]).
pub(crate) const WRITERS_PER_FILE: usize = 2;

/// Writes one worker's stream into the file at its offsets, as far as its segment allows.
pub(crate) struct SegmentSink {
    ctx: SinkCtx,
    worker: WorkerId,
    /// The segment the worker writes into (it changes when a race is won).
    seg: u64,
    /// The absolute offset of the next byte of the stream.
    pos: u64,
    /// Accepted bytes not yet written, as they came (no copy), starting at `pending_at`.
    pending: Vec<Bytes>,
    pending_len: usize,
    pending_at: u64,
    pending_since: Option<Instant>,
    stop: bool,
    /// Bytes buffered before a write.
    buffer: usize,
    /// The running digest of bytes `0..` written by this sink, when it hashes inline.
    hasher: Option<Hasher>,
    /// Where the inline digest stands.
    hashed_to: u64,
    stats: Arc<WorkerStats>,
}

impl SegmentSink {
    pub(crate) fn new(
        ctx: SinkCtx,
        worker: WorkerId,
        seg: u64,
        from: u64,
        hasher: Option<Hasher>,
        stats: Arc<WorkerStats>,
    ) -> SegmentSink {
        SegmentSink {
            buffer: write_buffer(ctx.budget.limit()),
            ctx,
            worker,
            seg,
            pos: from,
            pending: Vec::new(),
            pending_len: 0,
            pending_at: from,
            pending_since: None,
            stop: false,
            hashed_to: from,
            hasher: hasher.filter(|_| from == 0),
            stats,
        }
    }

    /// The segment the sink writes into now.
    pub(crate) fn seg(&self) -> u64 {
        self.seg
    }

    /// Writes what is buffered and records it.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut data = std::mem::take(&mut self.pending);
        let len = std::mem::take(&mut self.pending_len) as u64;
        self.pending_since = None;
        let at = self.pending_at;
        self.pending_at = at + len;
        let ctx = self.ctx.clone();
        let (worker, seg) = (self.worker, self.seg);
        // Only bytes that continue the digest contiguously from byte 0 are hashed inline.
        let mut hasher = self.hasher.take().filter(|_| self.hashed_to == at);
        let writer = Arc::clone(&self.ctx.writers)
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let (data, hasher) = tokio::task::spawn_blocking(move || {
            let mut pos = at;
            for frame in &data {
                ctx.file.write_all_at(frame, pos)?;
                pos += frame.len() as u64;
            }
            // The file is free for the other writers while this one hashes.
            drop(writer);
            if let Some(h) = hasher.as_mut() {
                for frame in &data {
                    h.update(frame);
                }
            }
            let recorded = ctx.ranges.flushed(worker, seg, at + len);
            data.clear();
            // Bytes another connection owns now are not this digest's to vouch for.
            Ok::<_, io::Error>((data, hasher.filter(|_| recorded)))
        })
        .await
        .map_err(io::Error::other)??;
        self.pending = data;
        if hasher.is_some() {
            self.hashed_to = at + len;
        }
        self.hasher = hasher;
        Ok(())
    }

    /// The inline digest state and how far it covers, for the hasher that continues after it.
    pub(crate) fn take_hasher(&mut self) -> (Option<Hasher>, u64) {
        (self.hasher.take(), self.hashed_to)
    }
}

impl BodySink for SegmentSink {
    async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let len = chunk.len();
        if len == 0 {
            return Ok(());
        }
        if self.stats.received.fetch_add(len as u64, Ordering::Relaxed) == 0 {
            let ms = self.stats.started.elapsed().as_millis().max(1) as u64;
            self.stats.first_byte_ms.store(ms, Ordering::Relaxed);
            self.ctx.budget.record_ttfb(Duration::from_millis(ms));
        }
        self.ctx.progress.received(len as u64);
        let before = self.seg;
        let claim = self
            .ctx
            .ranges
            .claim(self.worker, &mut self.seg, self.pos, len);
        if self.seg != before {
            // A race was won: this sink now writes into the segment it took over.
            self.pending_at = self.pos + claim.skip as u64;
            self.hasher = None;
        }
        if claim.take > 0 {
            let at = self.pos + claim.skip as u64;
            // Not contiguous (a race was won), or it would not fit: write what is there first,
            // so that the buffer never grows past its size.
            let full = self.pending_len + claim.take > self.buffer;
            if !self.pending.is_empty() && (self.pending_at + self.pending_len as u64 != at || full)
            {
                self.flush().await?;
            }
            if self.pending.is_empty() {
                self.pending_at = at;
                self.pending_since = Some(Instant::now());
            }
            self.pending
                .push(chunk.slice(claim.skip..claim.skip + claim.take));
            self.pending_len += claim.take;
            self.stats
                .taken
                .fetch_add(claim.take as u64, Ordering::Relaxed);
            self.ctx.progress.add(claim.take as u64);
            self.ctx.budget.add_bytes(claim.take as u64);
        }
        self.pos += len as u64;
        if claim.stop {
            self.stop = true;
            self.flush().await?;
        } else if self.pending_len >= self.buffer
            || self.pending_since.is_some_and(|t| t.elapsed() >= WRITE_AGE)
        {
            self.flush().await?;
        }
        Ok(())
    }

    async fn restart(&mut self, from: u64) -> io::Result<()> {
        // The server could not resume and sends from `from` again: what was already accepted is
        // skipped as it comes again (see `Ranges::claim`), so nothing is rewritten and an inline
        // digest stays valid.
        self.pos = from;
        Ok(())
    }

    fn position(&self) -> u64 {
        self.pos
    }

    fn finished(&self) -> bool {
        self.stop
    }
}
