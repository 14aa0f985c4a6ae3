//! The connection budget: how many body transfers may run at once, across all files, and the
//! controller that sizes it at run time from what the link gives.
//!
//! # Why adaptive
//! A CDN edge gives one connection roughly 40 MB/s, whatever the link behind it: the best number of
//! connections depends on the link and the server and must be found while downloading. Too few
//! leave the link idle; too many are punished (a CDN that throttles aggressive clients to
//! 0.1–1 MB/s, a home link drowned). A fixed count tuned on one link is wrong on the next.
//!
//! # What the controller measures
//! Goodput: bytes written into files per second, over all transfers, in windows of a few hundred
//! milliseconds (at least four times the typical time to first byte, so that new connections have
//! delivered before they are judged; half that in slow start, where a doubling must show ×1.5). A window only counts when the budget was in use (connections
//! held for at least [`SATURATED`] of the limit on average): a budget that the work cannot fill
//! says nothing about the link, and is never grown ("never more connections than there is work").
//!
//! # When it adds connections
//! - **Slow start.** From [`INITIAL`] connections it doubles the limit after each window, as long
//!   as the added connections each bring at least half of what the existing ones average
//!   (goodput × `r ≥ 1 + ½(c − 1)` for a limit × `c`). Under a per-connection cap this finds
//!   16 → 32 → 64 in well under a second.
//! - **Probing.** Once growth stops paying, it holds, and every [`PROBE_EVERY`] tries a quarter
//!   more connections. A step that raised goodput by at least [`KEEP_GAIN`] is kept (a doubling
//!   that did, without bringing half, ends slow start there); else the limit goes back. The bar
//!   is low on purpose: a window in the middle of a run sees the link's steady state, while more
//!   connections also cover what windows do not see (request latency between ranges, the end of
//!   each file): on a 40 MB/s-per-connection link where the machine tops out near 650 MB/s, 32
//!   connections measured ×1.07–1.14 over 16 in windows, and finished the pull 20 % sooner.
//!
//! xet-core's controller (HH#4893) grows while requests succeed and their latency stays under a
//! target, so it kept adding connections that added no goodput until the CDN throttled it. This
//! one grows only while goodput rises.
//!
//! # When it removes connections
//! - **Throttling** (`429`, `503`, a `RateLimit` with nothing remaining): the limit halves at once,
//!   and does not grow again for [`BACKOFF`] or the wait the server asked for (capped at
//!   [`MAX_BACKOFF`]); a burst of such answers from many connections is one event (one cut per
//!   [`CUT_SPACING`]).
//! - **Broken connections** (resets, cut bodies, timeouts): the limit shrinks by an eighth, once
//!   per [`CUT_SPACING`], but not below [`BROKEN_FLOOR`]: a CDN that resets aggressive clients is
//!   met with fewer connections, while faults that strike at random (which fewer connections do
//!   not cure) cannot starve the transfer; probing grows the limit back when goodput allows.
//! - **A probe that did not pay** goes back to where it came from.
//!
//! `--connections N` pins the limit (no controller); `--max-connections` caps the adaptive one
//! ([`DEFAULT_MAX`] by default).
//!
//! Permits above a lowered limit are not taken from running transfers: they are withheld as they
//! come back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::progress::{Event, SharedReporter};

/// Connections the adaptive budget starts with. Each doubling costs a settle and a window (about
/// 0.3 s at 20 ms latency) spent below the link's speed: starting from 8, a 1 GiB file on 40 MB/s
/// connections finished 0.85× as fast as with 32 fixed; from 16, 0.95× (`cargo xtask bench link`).
/// Unthrottled, 16 run as fast as 8 did. Still a quarter of the default cap, and a sixth of the
/// ranges huggingface_hub gives hf_transfer.
pub const INITIAL: usize = 16;
/// The default cap of the adaptive budget. 64 connections of 40 MB/s are 2.5 GB/s, beyond what
/// one machine hashes; memory stays flat at that count (see `sink::write_buffer`).
pub const DEFAULT_MAX: usize = 64;
/// Concurrent metadata requests to the Hub's API host (HEADs that locate big files). The API is
/// rate-limited far more tightly than the CDN, and these requests are small: a few suffice.
pub const API_CONNECTIONS: usize = 4;

/// A step up is kept when goodput rose by this factor: above the noise of a window.
pub const KEEP_GAIN: f64 = 1.05;
/// A window counts when this fraction of the limit was held on average.
const SATURATED: f64 = 0.8;
/// Shortest settling time after a change before a window starts.
const MIN_SETTLE: Duration = Duration::from_millis(100);
/// Shortest measurement window.
const MIN_WINDOW: Duration = Duration::from_millis(200);
/// Longest measurement window (links with a very slow first byte).
const MAX_WINDOW: Duration = Duration::from_secs(2);
/// How often a settled budget tries more connections.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// No growth for this long after throttling.
pub const BACKOFF: Duration = Duration::from_secs(3);
/// The longest a server's wait holds growth back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Broken connections alone never take the budget below this: faults that strike connections at
/// random are not cured by fewer connections, and a few keep the file moving.
pub const BROKEN_FLOOR: usize = 4;
/// At most one cut per this interval: a burst of errors from many connections is one event.
pub const CUT_SPACING: Duration = Duration::from_millis(500);
/// How often the controller looks at its counters (driven by the transfers' own timers).
pub const TICK: Duration = Duration::from_millis(50);
/// Transfers shorter than this are not peers for straggler detection (latency dominates them).
const PEER_MIN_BYTES: u64 = 128 << 10;
/// Finished transfers remembered as peers.
const PEER_SAMPLES: usize = 16;
/// How long a finished transfer stays a peer.
const PEER_MEMORY: Duration = Duration::from_secs(30);

/// How the budget is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetMode {
    /// Exactly this many connections.
    Fixed(usize),
    /// Found at run time, between 1 and this many.
    Adaptive {
        /// The cap.
        max: usize,
    },
}

/// Something the network said that asks for fewer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `429`, `503`, or a `RateLimit` with nothing remaining; the server's wait, if it gave one.
    Throttled {
        /// The status.
        status: u16,
        /// The wait the server asked for.
        wait: Option<Duration>,
    },
    /// A connection broke, a body was cut, or an answer timed out.
    Broken,
}

/// A change of the limit, for events and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) reason: String,
}

/// The counters one controller step looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) now: Instant,
    /// Bytes delivered so far (cumulative).
    pub(crate) bytes: u64,
    /// Connection-seconds held so far (cumulative).
    pub(crate) busy: f64,
    /// The typical time to the first byte of a request.
    pub(crate) ttfb: Duration,
}

struct Window {
    start: Instant,
    bytes: u64,
    busy: f64,
}

/// The adaptive controller, a pure state machine over [`Sample`]s and [`Signal`]s (unit-tested
/// with synthetic time).
pub(crate) struct Controller {
    min: usize,
    max: usize,
    limit: usize,
    slow_start: bool,
    /// The goodput last measured at a limit.
    base: Option<(usize, f64)>,
    /// A probe in progress: the limit it came from.
    probing_from: Option<usize>,
    window: Option<Window>,
    /// No window starts before this (settling after a change).
    settle_until: Instant,
    /// No growth before this (after throttling).
    hold_until: Instant,
    next_probe: Instant,
    last_cut: Option<Instant>,
}

impl Controller {
    pub(crate) fn new(initial: usize, max: usize, now: Instant) -> Controller {
        let max = max.max(1);
        Controller {
            min: 1,
            max,
            limit: initial.clamp(1, max),
            slow_start: true,
            base: None,
            probing_from: None,
            window: None,
            settle_until: now,
            hold_until: now,
            next_probe: now,
            last_cut: None,
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    fn set(&mut self, to: usize, now: Instant, settle: Duration, reason: String) -> Option<Change> {
        let to = to.clamp(self.min, self.max);
        self.window = None;
        self.settle_until = now + settle;
        if to == self.limit {
            return None;
        }
        let from = self.limit;
        self.limit = to;
        Some(Change { from, to, reason })
    }

    /// Looks at the counters; returns a change of the limit when one is due.
    pub(crate) fn tick(&mut self, s: Sample) -> Option<Change> {
        let ttfb = s.ttfb.min(MAX_WINDOW);
        let settle = (ttfb * 2).max(MIN_SETTLE);
        // A doubling in slow start is kept only when goodput rose ×1.5, far above a window's
        // noise: half a window tells it, and each doubling reaches the link's speed sooner.
        let span = if self.slow_start {
            (ttfb * 2).clamp(MIN_WINDOW / 2, MAX_WINDOW)
        } else {
            (ttfb * 4).clamp(MIN_WINDOW, MAX_WINDOW)
        };
        if s.now < self.settle_until {
            return None;
        }
        let Some(w) = &self.window else {
            self.window = Some(Window {
                start: s.now,
                bytes: s.bytes,
                busy: s.busy,
            });
            return None;
        };
        let dt = s.now.duration_since(w.start);
        if dt < span {
            return None;
        }
        let secs = dt.as_secs_f64();
        let goodput = s.bytes.saturating_sub(w.bytes) as f64 / secs;
        let occupancy = (s.busy - w.busy) / secs / self.limit as f64;
        self.window = Some(Window {
            start: s.now,
            bytes: s.bytes,
            busy: s.busy,
        });

        if occupancy < SATURATED {
            // The work did not fill the budget: nothing is learnt about the link. A probe whose
            // extra connections found nothing to do goes back.
            self.base = None;
            if let Some(from) = self.probing_from.take() {
                return self.set(
                    from,
                    s.now,
                    settle,
                    format!(
                        "not enough work for more connections ({:.0} of {} in use)",
                        occupancy * self.limit as f64,
                        self.limit
                    ),
                );
            }
            return None;
        }
        let hold = s.now < self.hold_until;
        match self.probing_from.take() {
            None => {
                self.base = Some((self.limit, goodput));
                if hold || self.limit >= self.max {
                    return None;
                }
                if self.slow_start {
                    let to = (self.limit * 2).min(self.max);
                    self.probing_from = Some(self.limit);
                    return self.set(to, s.now, settle, "slow start".into());
                }
                if s.now >= self.next_probe {
                    let to = (self.limit + (self.limit / 4).max(2)).min(self.max);
                    self.probing_from = Some(self.limit);
                    return self.set(to, s.now, settle, "probing for more goodput".into());
                }
                None
            }
            Some(from) => {
                let Some((at, base)) = self.base.filter(|(at, g)| *at == from && *g > 0.0) else {
                    // No comparable measurement: keep the new limit and measure it.
                    self.base = Some((self.limit, goodput));
                    return None;
                };
                let ratio = goodput / base;
                let grown = self.limit as f64 / at as f64 - 1.0;
                let gain = format!(
                    "goodput ×{ratio:.2} at {} connections ({:.0} MB/s)",
                    self.limit,
                    goodput / 1e6
                );
                if self.slow_start && ratio >= 1.0 + 0.5 * grown && !hold {
                    self.base = Some((self.limit, goodput));
                    if self.limit >= self.max {
                        self.slow_start = false;
                        self.next_probe = s.now + PROBE_EVERY;
                        return None;
                    }
                    let to = (self.limit * 2).min(self.max);
                    self.probing_from = Some(self.limit);
                    return self.set(to, s.now, settle, format!("slow start: {gain}"));
                }
                self.slow_start = false;
                self.next_probe = s.now + PROBE_EVERY;
                if ratio >= KEEP_GAIN {
                    self.base = Some((self.limit, goodput));
                    tracing::debug!("connection budget stays at {}: {gain}", self.limit);
                    None
                } else {
                    self.base = Some((from, base));
                    self.set(from, s.now, settle, format!("no gain: {gain}"))
                }
            }
        }
    }

    /// Reacts to a sign of throttling or trouble.
    pub(crate) fn signal(&mut self, signal: Signal, now: Instant) -> Option<Change> {
        if self
            .last_cut
            .is_some_and(|t| now.duration_since(t) < CUT_SPACING)
        {
            return None;
        }
        self.last_cut = Some(now);
        self.slow_start = false;
        self.probing_from = None;
        self.base = None;
        let (to, reason) = match signal {
            Signal::Throttled { status, wait } => {
                let hold = wait.unwrap_or(BACKOFF).clamp(BACKOFF, MAX_BACKOFF);
                self.hold_until = now + hold;
                self.next_probe = now + hold;
                (self.limit / 2, format!("throttled (HTTP {status})"))
            }
            Signal::Broken => {
                self.next_probe = now + PROBE_EVERY;
                let to = (self.limit - (self.limit / 8).max(1)).max(BROKEN_FLOOR);
                (to.min(self.limit), "a connection broke".to_string())
            }
        };
        self.set(to, now, MIN_SETTLE, reason)
    }
}

struct Inner {
    /// The limit the semaphore enforces.
    limit: usize,
    /// Permits to withhold as they come back (the limit was lowered below what is in use).
    debt: usize,
    in_flight: usize,
    /// Connection-seconds held, up to `busy_at`.
    busy: f64,
    busy_at: Instant,
    controller: Option<Controller>,
    last_tick: Instant,
    /// Typical time to first byte (exponential average), seconds.
    ttfb: f64,
    /// Recent aggregate goodput (exponential average over about a second), bytes/s.
    rate: f64,
    rate_at: (Instant, u64),
    /// Goodput of recently finished transfers (when they finished, bytes/s).
    recent: std::collections::VecDeque<(Instant, f64)>,
}

/// The shared connection budget of one fetcher: a semaphore whose size the controller changes.
pub(crate) struct Budget {
    semaphore: Semaphore,
    inner: Mutex<Inner>,
    /// Bytes delivered by every transfer (goodput).
    bytes: AtomicU64,
    /// Transfers waiting for a slot.
    waiting: std::sync::atomic::AtomicUsize,
    reporter: SharedReporter,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.limit())
            .finish_non_exhaustive()
    }
}

/// One connection's slot; given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    budget: Arc<Budget>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.release();
    }
}

impl Budget {
    pub(crate) fn new(mode: BudgetMode, reporter: SharedReporter) -> Arc<Budget> {
        let now = Instant::now();
        let (limit, controller) = match mode {
            BudgetMode::Fixed(n) => (n.max(1), None),
            BudgetMode::Adaptive { max } => {
                let c = Controller::new(INITIAL, max, now);
                (c.limit(), Some(c))
            }
        };
        Arc::new(Budget {
            semaphore: Semaphore::new(limit),
            inner: Mutex::new(Inner {
                limit,
                debt: 0,
                in_flight: 0,
                busy: 0.0,
                busy_at: now,
                controller,
                last_tick: now,
                ttfb: 0.05,
                rate: 0.0,
                rate_at: (now, 0),
                recent: std::collections::VecDeque::new(),
            }),
            bytes: AtomicU64::new(0),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            reporter,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current limit.
    pub(crate) fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Connections in use now.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Whether the limit adapts.
    pub(crate) fn is_adaptive(&self) -> bool {
        self.lock().controller.is_some()
    }

    /// Waits for a slot.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Permit {
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&self.waiting);
        // The semaphore is never closed, so acquiring cannot fail; the permit is tracked by us
        // (forgotten by tokio) so that a lowered limit can withhold it when it comes back.
        if let Ok(p) = self.semaphore.acquire().await {
            p.forget();
        }
        drop(waiting);
        self.taken()
    }

    /// A slot if one is free now (nobody waits for it).
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        self.semaphore.try_acquire().ok()?.forget();
        Some(self.taken())
    }

    /// Whether transfers wait for a slot.
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    fn taken(self: &Arc<Self>) -> Permit {
        let mut inner = self.lock();
        account_busy(&mut inner, Instant::now());
        inner.in_flight += 1;
        drop(inner);
        Permit {
            budget: Arc::clone(self),
        }
    }

    fn release(&self) {
        let mut inner = self.lock();
        account_busy(&mut inner, Instant::now());
        inner.in_flight = inner.in_flight.saturating_sub(1);
        if inner.debt > 0 {
            inner.debt -= 1;
        } else {
            self.semaphore.add_permits(1);
        }
    }

    /// Whether more connections are in use than the limit allows (it was lowered): a transfer
    /// that finishes its work then gives its slot back instead of taking more work.
    pub(crate) fn over_limit(&self) -> bool {
        self.lock().debt > 0
    }

    /// Counts delivered bytes (goodput).
    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Records how long a request waited for its first byte.
    pub(crate) fn record_ttfb(&self, d: Duration) {
        let mut inner = self.lock();
        inner.ttfb = inner.ttfb * 0.8 + d.as_secs_f64().min(5.0) * 0.2;
    }

    /// Records a finished transfer of `bytes` that took `took`, as a peer of later ones. Short
    /// transfers say more about latency than about the link, and are left out.
    pub(crate) fn record_transfer(&self, bytes: u64, took: Duration) {
        if bytes < PEER_MIN_BYTES || took.is_zero() {
            return;
        }
        let mut inner = self.lock();
        let now = Instant::now();
        inner
            .recent
            .push_back((now, bytes as f64 / took.as_secs_f64()));
        while inner.recent.len() > PEER_SAMPLES {
            inner.recent.pop_front();
        }
    }

    /// What a connection delivers on this link now (bytes/s): the median of recently finished
    /// transfers, else the average of the connections in use when there are several; `None`
    /// when there is nothing to compare with (a single connection is judged by nobody).
    pub(crate) fn peer_rate(&self) -> Option<f64> {
        let mut inner = self.lock();
        let now = Instant::now();
        while inner
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > PEER_MEMORY)
        {
            inner.recent.pop_front();
        }
        if inner.recent.len() >= 3 {
            let mut rates: Vec<f64> = inner.recent.iter().map(|(_, r)| *r).collect();
            rates.sort_by(f64::total_cmp);
            return Some(rates[rates.len() / 2]);
        }
        (inner.in_flight >= 2 && inner.rate > 0.0).then(|| inner.rate / inner.in_flight as f64)
    }

    /// Runs a controller step when one is due. Cheap when not; called from every transfer's
    /// timer, so it runs while anything is being transferred and never otherwise.
    pub(crate) fn tick(&self) {
        let now = Instant::now();
        let bytes = self.bytes.load(Ordering::Relaxed);
        let mut inner = self.lock();
        if now.duration_since(inner.last_tick) < TICK {
            return;
        }
        inner.last_tick = now;
        account_busy(&mut inner, now);
        let (at, before) = inner.rate_at;
        let dt = now.duration_since(at).as_secs_f64();
        if dt > 0.0 {
            let instant = bytes.saturating_sub(before) as f64 / dt;
            // About a second of memory at one step per 50 ms.
            inner.rate = if inner.rate == 0.0 {
                instant
            } else {
                inner.rate * 0.9 + instant * 0.1
            };
            inner.rate_at = (now, bytes);
        }
        let sample = Sample {
            now,
            bytes,
            busy: inner.busy,
            ttfb: Duration::from_secs_f64(inner.ttfb),
        };
        let change = inner.controller.as_mut().and_then(|c| c.tick(sample));
        if let Some(change) = change {
            self.apply(&mut inner, change);
        }
    }

    /// Reacts to a sign of throttling or trouble from a transfer.
    pub(crate) fn signal(&self, signal: Signal) {
        let mut inner = self.lock();
        let change = inner
            .controller
            .as_mut()
            .and_then(|c| c.signal(signal, Instant::now()));
        if let Some(change) = change {
            self.apply(&mut inner, change);
        }
    }

    fn apply(&self, inner: &mut Inner, change: Change) {
        if change.to > inner.limit {
            let grow = change.to - inner.limit;
            let repaid = grow.min(inner.debt);
            inner.debt -= repaid;
            self.semaphore.add_permits(grow - repaid);
        } else {
            let shrink = inner.limit - change.to;
            let taken = self.semaphore.forget_permits(shrink);
            inner.debt += shrink - taken;
        }
        inner.limit = change.to;
        tracing::info!(
            "connection budget {} → {}: {}",
            change.from,
            change.to,
            change.reason
        );
        self.reporter.report(&Event::Budget {
            connections: change.to as u64,
            previous: change.from as u64,
            reason: change.reason,
        });
    }
}

fn account_busy(inner: &mut Inner, now: Instant) {
    let dt = now.duration_since(inner.busy_at).as_secs_f64();
    inner.busy += dt * inner.in_flight as f64;
    inner.busy_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a controller over a simulated link for `secs`: `goodput(n)` bytes/s at `n`
    /// connections, every connection busy. Returns the limit after each step.
    fn simulate(c: &mut Controller, secs: f64, goodput: impl Fn(usize) -> f64) -> Vec<usize> {
        let start = Instant::now();
        let mut t = 0.0;
        let mut bytes = 0.0;
        let mut busy = 0.0;
        let mut seen = Vec::new();
        while t < secs {
            let dt = 0.05;
            t += dt;
            bytes += goodput(c.limit()) * dt;
            busy += c.limit() as f64 * dt;
            let _ = c.tick(Sample {
                now: start + Duration::from_secs_f64(t),
                bytes: bytes as u64,
                busy,
                ttfb: Duration::from_millis(5),
            });
            seen.push(c.limit());
        }
        seen
    }

    #[test]
    fn a_per_connection_cap_is_met_with_more_connections_quickly() {
        // 40 MB/s per connection, the link saturates at 1 GB/s (25 connections).
        let mut c = Controller::new(INITIAL, DEFAULT_MAX, Instant::now());
        let seen = simulate(&mut c, 10.0, |n| (n as f64 * 40e6).min(1e9));
        // Past 16 within a second; settles at 32 (64 brought nothing, 32 brought +25%).
        let at_1s = seen[19];
        assert!(at_1s >= 16, "{seen:?}");
        // Settled: the second half is spent at 32 but for short probes.
        let late = &seen[seen.len() / 2..];
        let at_32 = late.iter().filter(|&&n| n == 32).count();
        assert!(at_32 * 10 >= late.len() * 7, "{seen:?}");
        assert!(seen.iter().all(|&n| n <= 64));
    }

    #[test]
    fn an_uncapped_link_keeps_the_start() {
        // The machine, not the connections, is the limit: more connections add nothing.
        let mut c = Controller::new(INITIAL, DEFAULT_MAX, Instant::now());
        let seen = simulate(&mut c, 10.0, |_| 650e6);
        // Probes are short and rare: most of the time is spent at the start, never far above it.
        let at_start = seen.iter().filter(|&&n| n == INITIAL).count();
        assert!(at_start * 10 >= seen.len() * 8, "{seen:?}");
        assert!(seen.iter().all(|&n| n <= 2 * INITIAL), "{seen:?}");
    }

    #[test]
    fn the_cap_is_respected() {
        let mut c = Controller::new(INITIAL, 12, Instant::now());
        let seen = simulate(&mut c, 5.0, |n| n as f64 * 40e6);
        assert!(seen.iter().all(|&n| n <= 12), "{seen:?}");
        assert_eq!(c.limit(), 12);
    }

    #[test]
    fn throttling_halves_and_holds_growth_back() {
        let now = Instant::now();
        let mut c = Controller::new(32, 64, now);
        let change = c
            .signal(
                Signal::Throttled {
                    status: 429,
                    wait: None,
                },
                now,
            )
            .expect("a cut");
        assert_eq!((change.from, change.to), (32, 16));
        // A burst is one event.
        assert!(
            c.signal(Signal::Broken, now + Duration::from_millis(100))
                .is_none()
        );
        // Growth waits out the back-off even on a link that would reward it.
        let seen = simulate(&mut c, 2.0, |n| n as f64 * 40e6);
        assert!(seen.iter().all(|&n| n <= 16), "{seen:?}");
        let later = simulate(&mut c, 6.0, |n| n as f64 * 40e6);
        assert!(later.iter().any(|&n| n > 16), "{later:?}");
    }

    #[test]
    fn broken_connections_shrink_gently_down_to_a_floor() {
        let mut now = Instant::now();
        let mut c = Controller::new(16, 64, now);
        let change = c.signal(Signal::Broken, now).expect("a cut");
        assert_eq!((change.from, change.to), (16, 14));
        for _ in 0..40 {
            now += CUT_SPACING;
            let _ = c.signal(Signal::Broken, now);
        }
        assert_eq!(c.limit(), BROKEN_FLOOR);
        // Throttling goes below it.
        now += CUT_SPACING;
        let _ = c.signal(
            Signal::Throttled {
                status: 503,
                wait: None,
            },
            now,
        );
        assert_eq!(c.limit(), BROKEN_FLOOR / 2);
    }

    #[test]
    fn a_budget_the_work_cannot_fill_does_not_grow() {
        let start = Instant::now();
        let mut c = Controller::new(INITIAL, DEFAULT_MAX, start);
        let mut bytes = 0u64;
        for i in 1..200 {
            // Two connections busy, whatever the limit.
            bytes += 4_000_000;
            let _ = c.tick(Sample {
                now: start + Duration::from_millis(50 * i),
                bytes,
                busy: 2.0 * 0.05 * i as f64,
                ttfb: Duration::from_millis(5),
            });
        }
        assert_eq!(c.limit(), INITIAL);
    }

    #[tokio::test]
    async fn a_lowered_limit_withholds_permits_as_they_come_back() {
        let budget = Budget::new(
            BudgetMode::Adaptive { max: 64 },
            Arc::new(crate::progress::NoProgress),
        );
        let held: Vec<Permit> =
            futures::future::join_all((0..INITIAL).map(|_| budget.acquire())).await;
        assert_eq!(budget.in_flight(), INITIAL);
        budget.signal(Signal::Throttled {
            status: 503,
            wait: None,
        });
        assert_eq!(budget.limit(), INITIAL / 2);
        assert!(budget.over_limit());
        drop(held);
        assert!(!budget.over_limit());
        assert_eq!(budget.semaphore.available_permits(), INITIAL / 2);
    }
}
