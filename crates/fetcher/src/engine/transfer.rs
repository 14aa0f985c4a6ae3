//! One file in flight: a loop that gives its ranges to connections as the budget allows, steals
//! work for connections that free up, and races stragglers.
//!
//! # Stragglers
//! Every few ticks the loop compares each connection's goodput over the last
//! [`STRAGGLER_WINDOW`] with its peers' (the median of recently finished transfers, else the
//! average of the connections in use). A connection that has run at least that long, delivers less
//! than [`STRAGGLER_RATIO`] of its peers, and would still need longer for what it has left than a
//! fresh connection would, has the rest of its range asked for again on the next free connection
//! (see `ranges`: the first to deliver wins, bytes already written are kept). With no peers (one
//! connection in all) nothing is raced: a slow link is not a fault, and the client's absolute
//! rate floor still ends a connection that trickles.
//!
//! A connection whose range was taken over stops at its next bytes, or is told to stop by the
//! loop: it then writes what it had received and ends, so no byte it delivered is fetched again.
//! One that does not end within [`STOP_GRACE`] (stuck in a write) is cancelled, and what it had
//! not yet written is fetched again.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipefetch_hub_client::{BodySink as _, ByteStream, Url};
use tokio::task::JoinSet;

use super::budget::{Permit, TICK};
use super::hash::Follower;
use super::ranges::{Ranges, Work, WorkerId};
use super::sink::{FileProgress, SegmentSink, SinkCtx, WorkerStats};
use super::{BlobJob, Engine};
use crate::error::{Error, Result};
use crate::verify::Hasher;

/// How long a connection is watched before it can be called a straggler, and the span its
/// goodput is measured over.
pub const STRAGGLER_WINDOW: Duration = Duration::from_secs(2);
/// A straggler delivers less than this fraction of its peers' goodput (the issue's "1/8 of the
/// median"): far enough below that a busy but healthy connection is never raced.
pub const STRAGGLER_RATIO: f64 = 1.0 / 8.0;
/// How long a connection told to stop may take to write what it has and end.
pub const STOP_GRACE: Duration = Duration::from_secs(1);
/// Look for stragglers every this many ticks.
const STRAGGLER_TICKS: u32 = 5;

/// A connection already streaming part of the file (a URL source's ranged probe), handed to the
/// engine with its slot.
pub(crate) struct Prefetched {
    /// The body, from `offset`.
    pub(crate) stream: ByteStream,
    /// Frames already read from it.
    pub(crate) head: Vec<Bytes>,
    /// The absolute offset of the stream's first byte.
    pub(crate) offset: u64,
    /// The connection's slot in the budget.
    pub(crate) permit: Permit,
}

/// What a worker hands back when it ends.
struct Finished {
    id: WorkerId,
    seg: u64,
    permit: Permit,
    result: Result<()>,
    /// The inline digest state and how far it covers, from the worker that fetched byte 0.
    inline: Option<(Option<Hasher>, u64)>,
}

/// What the loop knows of a running worker.
struct Running {
    id: WorkerId,
    stats: Arc<WorkerStats>,
    hedge: bool,
    inline: bool,
    /// `(when, bytes taken)` samples over the last window.
    history: VecDeque<(Instant, u64)>,
    /// Since when its segment has nothing left for it to claim.
    stopping_since: Option<Instant>,
    /// Tells the worker to write what it has and end.
    stop: Arc<tokio::sync::Notify>,
    handle: tokio::task::AbortHandle,
}

type Acquire = Pin<Box<dyn Future<Output = Permit> + Send>>;

/// Fetches every missing byte of `ranges` into `file` under the budget, while the hasher follows;
/// returns the digest of the whole file.
pub(crate) async fn fetch_ranges(
    engine: &Engine,
    job: &BlobJob,
    file: &Arc<File>,
    ranges: &Arc<Ranges>,
    progress: &FileProgress,
    first: Option<Box<Prefetched>>,
) -> Result<String> {
    let inline_wanted = ranges.size() > 0 && ranges.frontier() == 0;
    let follower = Follower::new(
        Arc::clone(file),
        job.size,
        job.expected.hasher(job.size),
        inline_wanted,
    );
    let ctx = SinkCtx {
        file: Arc::clone(file),
        ranges: Arc::clone(ranges),
        progress: progress.clone(),
        budget: Arc::clone(engine.budget()),
        writers: Arc::new(tokio::sync::Semaphore::new(super::sink::WRITERS_PER_FILE)),
    };
    let mut fl = FileLoop {
        engine,
        job,
        ctx,
        workers: JoinSet::new(),
        running: HashMap::new(),
        next_id: 0,
        inline_given: !inline_wanted,
        follower,
        // Ranges go straight to the final (CDN) URL when it is known.
        url: job.direct_url.clone().unwrap_or_else(|| job.url.clone()),
    };
    let result = fl.run(first).await;
    // Stop whatever still runs (a race that lost, or everything after a failure), and wait for it,
    // so that nothing writes into the file after we return.
    fl.workers.abort_all();
    while fl.workers.join_next().await.is_some() {}
    result?;
    fl.follower
        .finish()
        .await
        .map_err(|e| Error::io("hash", job.dest.dir(), e))
}

struct FileLoop<'a> {
    engine: &'a Engine,
    job: &'a BlobJob,
    ctx: SinkCtx,
    workers: JoinSet<Finished>,
    running: HashMap<tokio::task::Id, Running>,
    next_id: WorkerId,
    /// Whether the inline digest was given to a worker already (or is not wanted).
    inline_given: bool,
    follower: Follower,
    url: Url,
}

impl FileLoop<'_> {
    async fn run(&mut self, first: Option<Box<Prefetched>>) -> Result<()> {
        let ranges = Arc::clone(&self.ctx.ranges);
        let budget = Arc::clone(self.engine.budget());
        let min_split = self.engine.settings().min_chunk;
        if let Some(first) = first {
            let first = *first;
            let id = self.new_id();
            match ranges.next_work(id, None) {
                Some(work) if !work.hedge && work.from == first.offset => {
                    let permit = first.permit;
                    self.spawn(id, work, permit, Some((first.stream, first.head)));
                }
                // The probe does not start where the work does: it is not used.
                Some(work) => {
                    ranges.ended(id, work.seg);
                }
                None => {}
            }
        }
        let mut acquire: Option<Acquire> = None;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        loop {
            if ranges.complete() {
                // Only connections racing for nothing can remain: stop them.
                if self.running.values().all(|r| r.hedge) {
                    return Ok(());
                }
            } else if self.workers.is_empty() && acquire.is_none() && !ranges.has_work(min_split) {
                return Err(Error::Internal(
                    "a file has missing bytes but no work left".into(),
                ));
            }
            // Work nobody does waits in line for a slot; splitting only takes slots that are
            // free (a file not started yet comes first: a split costs a connection). Every free
            // slot is taken at once: a budget that just grew is used from its next tick, not
            // one slot per tick.
            if acquire.is_none() && !budget.over_limit() {
                if ranges.has_queued_work() {
                    let b = Arc::clone(&budget);
                    acquire = Some(Box::pin(async move { b.acquire().await }));
                } else {
                    while ranges.can_split(min_split)
                        && let Some(permit) = budget.try_acquire()
                        && self.assign(permit)
                    {}
                }
            }
            self.follower.start(ranges.frontier());
            tokio::select! {
                hashed = self.follower.step(), if self.follower.is_running() => {
                    hashed.map_err(|e| Error::io("hash", self.job.dest.dir(), e))?;
                }
                joined = self.workers.join_next_with_id(), if !self.workers.is_empty() => {
                    match joined {
                        Some(Ok((task, done))) => self.finished(task, done)?,
                        Some(Err(e)) if e.is_cancelled() => self.cancelled(e.id()),
                        Some(Err(e)) => return Err(Error::Internal(e.to_string())),
                        None => {}
                    }
                }
                permit = async { match acquire.as_mut() { Some(a) => a.await, None => std::future::pending().await } }, if acquire.is_some() => {
                    acquire = None;
                    self.assign(permit);
                }
                _ = ticker.tick() => {
                    budget.tick();
                    ticks += 1;
                    if ticks.is_multiple_of(STRAGGLER_TICKS) {
                        self.watch();
                    }
                }
            }
        }
    }

    fn new_id(&mut self) -> WorkerId {
        self.next_id += 1;
        self.next_id
    }

    /// Gives a free slot work, or gives the slot back. It splits a range only when no other
    /// transfer waits for a slot.
    /// Whether it was given work.
    fn assign(&mut self, permit: Permit) -> bool {
        let budget = self.engine.budget();
        if budget.over_limit() {
            return false;
        }
        let split = (!budget.has_waiters()).then_some(self.engine.settings().min_chunk);
        let id = self.new_id();
        match self.ctx.ranges.next_work(id, split) {
            Some(work) => {
                self.spawn(id, work, permit, None);
                true
            }
            None => false,
        }
    }

    fn finished(&mut self, task: tokio::task::Id, done: Finished) -> Result<()> {
        let running = self.running.remove(&task);
        let ranges = &self.ctx.ranges;
        let owner = ranges.owned_by(done.id).is_some();
        let lost = ranges.ended(done.id, done.seg);
        self.ctx.progress.rewind(lost);
        if let Some((state, upto)) = done.inline {
            self.follower.inline_done(state, upto);
        }
        if let Some(r) = &running {
            let taken = r.stats.taken.load(Ordering::Relaxed);
            self.engine
                .budget()
                .record_transfer(taken, r.stats.started.elapsed());
        }
        match done.result {
            Ok(()) => {
                self.assign(done.permit);
                Ok(())
            }
            // A connection that lost its race (or never owned bytes) failing changes nothing.
            Err(e) if !owner => {
                tracing::debug!("{}: a raced connection failed: {e}", self.job.path);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn cancelled(&mut self, task: tokio::task::Id) {
        let Some(r) = self.running.remove(&task) else {
            return;
        };
        let lost = self.ctx.ranges.ended_any(r.id);
        self.ctx.progress.rewind(lost);
        if r.inline {
            self.follower.inline_done(None, 0);
        }
    }

    fn spawn(
        &mut self,
        id: WorkerId,
        work: Work,
        permit: Permit,
        first: Option<(ByteStream, Vec<Bytes>)>,
    ) {
        let inline = !self.inline_given && !work.hedge && work.from == 0;
        if inline {
            self.inline_given = true;
        }
        if work.hedge {
            tracing::info!(
                "{}: `{}`: a connection is far slower than its peers; asking again for bytes {}..{} on another",
                self.job.source,
                self.job.path,
                work.from,
                work.end
            );
        }
        let stats = Arc::new(WorkerStats::new());
        let hasher = inline.then(|| self.job.expected.hasher(self.job.size));
        let sink = SegmentSink::new(
            self.ctx.clone(),
            id,
            work.seg,
            work.from,
            hasher,
            Arc::clone(&stats),
        );
        let (engine, job, url) = (self.engine.clone(), self.job.clone(), self.url.clone());
        let stop = Arc::new(tokio::sync::Notify::new());
        let told = Arc::clone(&stop);
        let handle = self.workers.spawn(async move {
            let result = run_worker(&engine, &job, &url, &work, sink, first, &told).await;
            let (seg, inline_state, result) = result;
            Finished {
                id,
                seg,
                permit,
                result,
                inline: inline.then_some(inline_state),
            }
        });
        self.running.insert(
            handle.id(),
            Running {
                id,
                stats,
                hedge: work.hedge,
                inline,
                history: VecDeque::new(),
                stopping_since: None,
                stop,
                handle,
            },
        );
    }

    /// Looks for stragglers, stops connections that have nothing left to fetch, and cancels those
    /// that were told to stop and did not.
    fn watch(&mut self) {
        let now = Instant::now();
        let ranges = Arc::clone(&self.ctx.ranges);
        let peers = self.engine.budget().peer_rate();
        let mut cancel = Vec::new();
        let mut stop = |r: &mut Running, task: tokio::task::Id| {
            let since = *r.stopping_since.get_or_insert_with(|| {
                r.stop.notify_one();
                now
            });
            if now.duration_since(since) >= STOP_GRACE {
                cancel.push(task);
            }
        };
        for (task, r) in &mut self.running {
            let taken = r.stats.taken.load(Ordering::Relaxed);
            r.history.push_back((now, taken));
            while r
                .history
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > STRAGGLER_WINDOW)
            {
                r.history.pop_front();
            }
            let Some((seg, claimed, end, _)) = ranges.owned_by(r.id) else {
                if !r.hedge || !ranges.is_racing(r.id) {
                    // Its segment went to another connection, or its race is over.
                    stop(r, *task);
                }
                continue;
            };
            if claimed >= end {
                // Its range was taken over where it stood (or it is finishing): nothing is left
                // for it to fetch.
                stop(r, *task);
                continue;
            }
            let Some(peer) = peers else { continue };
            if now.duration_since(r.stats.started) < STRAGGLER_WINDOW || ranges.is_hedged(seg) {
                continue;
            }
            let Some(&(then, before)) = r.history.front() else {
                continue;
            };
            let span = now.duration_since(then).as_secs_f64();
            if span < STRAGGLER_WINDOW.as_secs_f64() * 0.75 {
                continue;
            }
            let rate = (taken - before) as f64 / span;
            let left = (end - claimed) as f64;
            // Worth it: a fresh connection at the peers' rate (plus a second to start) finishes
            // what is left well before this one would.
            let fresh = left / peer + 1.0;
            if rate < peer * STRAGGLER_RATIO && left / rate.max(1.0) > 2.0 * fresh {
                ranges.want_hedge(seg);
            }
        }
        for task in cancel {
            if let Some(r) = self.running.get(&task) {
                tracing::debug!(
                    "{}: cancelling connection {} of `{}`",
                    self.job.source,
                    r.id,
                    self.job.path
                );
            }
            // The join loop sees it cancelled and puts its unwritten bytes back.
            if let Some(r) = self.running.get(&task) {
                r.handle.abort();
            }
        }
    }
}

/// One connection's turn: fetch `work` into `sink` (first from a stream already open, if any)
/// until done or told to `stop`, then write what is buffered. Returns the segment the sink ended
/// in, its inline digest state, and the outcome.
async fn run_worker(
    engine: &Engine,
    job: &BlobJob,
    url: &Url,
    work: &Work,
    mut sink: SegmentSink,
    first: Option<(ByteStream, Vec<Bytes>)>,
    stop: &tokio::sync::Notify,
) -> (u64, (Option<Hasher>, u64), Result<()>) {
    let fetched = tokio::select! {
        result = fetch_into(engine, job, url, work, &mut sink, first) => result,
        () = stop.notified() => Ok(()),
    };
    // Bytes received before a failure or a stop are kept (and recorded) for the next run.
    let mut result = fetched;
    if let Err(e) = sink.flush().await
        && result.is_ok()
    {
        result = Err(Error::write(job.dest.dir(), job.size, e));
    }
    let seg = sink.seg();
    (seg, sink.take_hasher(), result)
}

/// The transfer part of [`run_worker`].
async fn fetch_into(
    engine: &Engine,
    job: &BlobJob,
    url: &Url,
    work: &Work,
    sink: &mut SegmentSink,
    first: Option<(ByteStream, Vec<Bytes>)>,
) -> Result<()> {
    let dest = &job.dest;
    let write_error = |e: std::io::Error| Error::write(dest.dir(), job.size, e);
    let mut result: Result<()> = Ok(());
    let mut fall_back = true;
    if let Some((mut stream, head)) = first {
        for chunk in head {
            if let Err(e) = sink.write(chunk).await {
                result = Err(write_error(e));
                break;
            }
        }
        while result.is_ok() && !sink.finished() {
            match stream.next_chunk().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = sink.write(chunk).await {
                        result = Err(write_error(e));
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_retryable() && engine.client().retry_policy().max_attempts > 1 => {
                    tracing::info!("{}: {e}; resuming at byte {}", job.path, sink.position());
                    break;
                }
                Err(e) => {
                    result = Err(dest.transfer_error(job, e));
                    fall_back = false;
                }
            }
        }
        if result.is_err() {
            fall_back = false;
        }
    }
    if fall_back && !sink.finished() && sink.position() < work.end {
        let from = sink.position();
        match engine
            .client()
            .download_url(url, job.auth.as_ref(), from..work.end, sink)
            .await
        {
            Ok(outcome) => {
                if let (Some(want), Some(got)) = (&job.validator, &outcome.info.etag)
                    && want != got
                {
                    result = Err(Error::Changed {
                        source_label: job.source.clone(),
                        path: job.path.clone(),
                    });
                }
            }
            Err(e) => result = Err(dest.transfer_error(job, e)),
        }
    }
    result
}
