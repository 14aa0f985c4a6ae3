//! The ranges of one file in flight: which bytes are on disk, which connection fetches what, work
//! stealing and hedging, and the resume record.
//!
//! A file is a list of segments tiling `0..size`, sorted by start. Each has a `flushed` offset
//! (bytes `start..flushed` are written to the file) and a `claimed` offset (bytes up to there were
//! accepted from a connection and are being written), and at most one worker that owns it.
//!
//! - **Work stealing.** A free connection takes an unowned incomplete segment; when there is none,
//!   it splits the owned segment with the most bytes left at the middle of what is left, if both
//!   halves keep at least the minimum size, and takes the tail. The owner's segment ends at the
//!   split: its worker stops there (the client closes that connection).
//! - **Hedging.** A segment whose worker is far slower than its peers is marked; the next free
//!   connection asks for the rest of it (from what is claimed so far) while the slow one carries
//!   on. When the new connection's first bytes arrive, the segment is split where the slow one
//!   stands: it keeps what it has, the new one owns the rest. Whichever delivers first wins, and
//!   no byte is written twice.
//! - **Exact resume.** Only `flushed` offsets are recorded in the `.state` sidecar
//!   (`crate::resume`), written atomically. A split turns one segment into two that tile the same
//!   bytes, so the sidecar before and after it are both exact: a process killed at any moment
//!   leaves a record that never claims a byte that is not on disk. The format is the one of version
//!   1: a list of `[start, end, done]` that tiles the file, with no new fields.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::resume::{self, ChunkTable};

/// Identifies one worker (one connection's turn at one piece of work) within a file.
pub(crate) type WorkerId = u64;

/// How often the sidecar is rewritten while bytes flow (and at every completed segment).
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// Splits land on multiples of this, so that positional writes stay page-aligned.
const ALIGN: u64 = 64 * 1024;

#[derive(Debug, Clone)]
struct Seg {
    start: u64,
    end: u64,
    /// Bytes `start..flushed` are on disk.
    flushed: u64,
    /// Bytes `start..claimed` were accepted from the owner's connection (`≥ flushed`).
    claimed: u64,
    owner: Option<WorkerId>,
    /// A worker racing the owner for the rest of the segment, with the offset it asked from.
    hedge: Option<(WorkerId, u64)>,
}

impl Seg {
    fn left(&self) -> u64 {
        self.end - self.claimed
    }
}

/// A piece of work for a free connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    /// The segment (by its start).
    pub(crate) seg: u64,
    /// The first byte to ask for.
    pub(crate) from: u64,
    /// One past the last byte (the segment's end when the work was given).
    pub(crate) end: u64,
    /// Whether this races the segment's owner instead of owning the segment.
    pub(crate) hedge: bool,
}

/// What a worker may do with bytes `pos..pos + len` of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Leading bytes to drop (already written by someone).
    pub(crate) skip: usize,
    /// Bytes after those to write, at `pos + skip`.
    pub(crate) take: usize,
    /// Whether the worker is done: its segment ends here (or was taken over).
    pub(crate) stop: bool,
}

impl Claim {
    fn stop() -> Claim {
        Claim {
            skip: 0,
            take: 0,
            stop: true,
        }
    }
}

struct Inner {
    segs: Vec<Seg>,
    /// Segments (by start) whose owner should be raced.
    hedge_wanted: BTreeSet<u64>,
    /// Bumped by every change that the sidecar records.
    generation: u64,
}

impl Inner {
    fn find(&self, seg: u64) -> Option<usize> {
        self.segs.binary_search_by_key(&seg, |s| s.start).ok()
    }
}

/// The ranges of one file, shared by its workers and its hasher.
pub(crate) struct Ranges {
    inner: Mutex<Inner>,
    partial: PathBuf,
    identity: String,
    size: u64,
    /// The generation last written to the sidecar, and when.
    persisted: Mutex<(u64, Instant)>,
}

impl Ranges {
    /// The ranges of a partial file described by `table`, recorded beside `partial`.
    pub(crate) fn new(table: &ChunkTable, partial: PathBuf) -> Ranges {
        let segs = table
            .chunks
            .iter()
            .filter(|c| c.1 > c.0 || table.size == 0)
            .map(|&(start, end, done)| Seg {
                start,
                end,
                flushed: start + done,
                claimed: start + done,
                owner: None,
                hedge: None,
            })
            .collect();
        Ranges {
            inner: Mutex::new(Inner {
                segs,
                hedge_wanted: BTreeSet::new(),
                generation: 0,
            }),
            partial,
            identity: table.etag.clone(),
            size: table.size,
            persisted: Mutex::new((0, Instant::now())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file's size.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Work for `worker`, if any: a race against a straggler first, then a segment nobody owns,
    /// then (with `split`) the tail of the owned segment with the most bytes left, when both
    /// halves keep `split` bytes.
    pub(crate) fn next_work(&self, worker: WorkerId, split: Option<u64>) -> Option<Work> {
        let mut inner = self.lock();
        while let Some(seg) = inner.hedge_wanted.pop_first() {
            let Some(i) = inner.find(seg) else { continue };
            let s = &mut inner.segs[i];
            if s.owner.is_none() || s.hedge.is_some() || s.claimed >= s.end {
                continue;
            }
            s.hedge = Some((worker, s.claimed));
            return Some(Work {
                seg,
                from: s.claimed,
                end: s.end,
                hedge: true,
            });
        }
        if let Some(s) = inner
            .segs
            .iter_mut()
            .find(|s| s.owner.is_none() && s.flushed < s.end)
        {
            s.owner = Some(worker);
            s.claimed = s.flushed;
            return Some(Work {
                seg: s.start,
                from: s.flushed,
                end: s.end,
                hedge: false,
            });
        }
        let min_split = split?.max(1);
        let i = inner
            .segs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.owner.is_some() && s.hedge.is_none())
            .filter(|(_, s)| s.left() >= min_split.saturating_mul(2))
            .max_by_key(|(_, s)| s.left())
            .map(|(i, _)| i)?;
        let s = &mut inner.segs[i];
        let mut mid = s.claimed + s.left() / 2;
        let aligned = mid / ALIGN * ALIGN;
        if aligned >= s.claimed + min_split {
            mid = aligned;
        }
        let tail = Seg {
            start: mid,
            end: s.end,
            flushed: mid,
            claimed: mid,
            owner: Some(worker),
            hedge: None,
        };
        s.end = mid;
        inner.segs.insert(i + 1, tail);
        inner.generation += 1;
        Some(Work {
            seg: mid,
            from: mid,
            end: inner.segs[i + 1].end,
            hedge: false,
        })
    }

    /// Whether `next_work` would find something without splitting (a race to start, a segment
    /// nobody owns).
    pub(crate) fn has_queued_work(&self) -> bool {
        let inner = self.lock();
        !inner.hedge_wanted.is_empty()
            || inner
                .segs
                .iter()
                .any(|s| s.owner.is_none() && s.flushed < s.end)
    }

    /// Whether `next_work` could split a segment at `min_split`.
    pub(crate) fn can_split(&self, min_split: u64) -> bool {
        let inner = self.lock();
        let min_split = min_split.max(1);
        inner.segs.iter().any(|s| {
            s.owner.is_some() && s.hedge.is_none() && s.left() >= min_split.saturating_mul(2)
        })
    }

    /// Whether `next_work` would find something.
    pub(crate) fn has_work(&self, min_split: u64) -> bool {
        self.has_queued_work() || self.can_split(min_split)
    }

    /// Asks for the owner of segment `seg` to be raced by the next free connection.
    pub(crate) fn want_hedge(&self, seg: u64) {
        let mut inner = self.lock();
        if let Some(i) = inner.find(seg)
            && inner.segs[i].hedge.is_none()
        {
            inner.hedge_wanted.insert(seg);
        }
    }

    /// `worker` received bytes `pos..pos + len` of its stream for segment `*seg`. Says which of
    /// them to write; a racing worker whose first bytes arrive takes the segment over here (and
    /// `*seg` becomes the segment it now owns).
    pub(crate) fn claim(&self, worker: WorkerId, seg: &mut u64, pos: u64, len: usize) -> Claim {
        let mut inner = self.lock();
        let Some(mut i) = inner.find(*seg) else {
            return Claim::stop();
        };
        let s = &inner.segs[i];
        if s.owner != Some(worker) {
            if s.hedge.map(|h| h.0) != Some(worker) {
                return Claim::stop();
            }
            // The race is decided: this connection delivered while the owner stands at
            // `claimed`. The owner keeps what it has; this one owns the rest.
            if s.claimed >= s.end {
                inner.segs[i].hedge = None;
                return Claim::stop();
            }
            let cut = s.claimed.max(pos);
            let s = &mut inner.segs[i];
            s.hedge = None;
            if cut == s.start {
                // The owner had nothing: the segment simply changes hands.
                s.owner = Some(worker);
                s.claimed = s.flushed;
            } else {
                let tail = Seg {
                    start: cut,
                    end: s.end,
                    flushed: cut,
                    claimed: cut,
                    owner: Some(worker),
                    hedge: None,
                };
                s.end = cut;
                inner.segs.insert(i + 1, tail);
                i += 1;
            }
            inner.generation += 1;
            *seg = inner.segs[i].start;
        }
        let s = &mut inner.segs[i];
        if pos > s.claimed {
            // A gap would leave bytes unwritten; a worker's stream never skips ahead.
            return Claim::stop();
        }
        let begin = s.claimed;
        let end = (pos + len as u64).min(s.end);
        let take = end.saturating_sub(begin);
        s.claimed += take;
        Claim {
            skip: (begin - pos).min(len as u64) as usize,
            take: take as usize,
            stop: s.claimed >= s.end,
        }
    }

    /// Records that bytes of segment `seg` up to `upto` are on disk (by its owner `worker`), and
    /// rewrites the sidecar when due. Returns whether the bytes were recorded (a worker that lost
    /// its segment is not). Blocking (a small file write): call from blocking code.
    pub(crate) fn flushed(&self, worker: WorkerId, seg: u64, upto: u64) -> bool {
        let complete = {
            let mut inner = self.lock();
            let Some(i) = inner.find(seg) else {
                return false;
            };
            let s = &mut inner.segs[i];
            if s.owner != Some(worker) {
                return false;
            }
            s.flushed = upto.clamp(s.flushed, s.claimed);
            let complete = s.flushed >= s.end;
            inner.generation += 1;
            complete
        };
        self.persist(complete);
        true
    }

    /// `worker` ended (done, failed or cancelled) in segment `seg`: bytes it claimed but did not
    /// write are unclaimed (returned: they will be fetched again), and its segment, if
    /// incomplete, waits for another connection.
    pub(crate) fn ended(&self, worker: WorkerId, seg: u64) -> u64 {
        let mut inner = self.lock();
        let Some(i) = inner.find(seg) else { return 0 };
        release(&mut inner.segs[i], worker)
    }

    /// Like [`Ranges::ended`], for a worker whose segment is not known (it was cancelled).
    pub(crate) fn ended_any(&self, worker: WorkerId) -> u64 {
        let mut inner = self.lock();
        inner.segs.iter_mut().map(|s| release(s, worker)).sum()
    }

    /// Whether `worker` is racing the owner of some segment.
    pub(crate) fn is_racing(&self, worker: WorkerId) -> bool {
        let inner = self.lock();
        inner
            .segs
            .iter()
            .any(|s| s.hedge.is_some_and(|h| h.0 == worker))
    }

    /// The segment `worker` owns, if any: `(start, claimed, end, flushed)`.
    pub(crate) fn owned_by(&self, worker: WorkerId) -> Option<(u64, u64, u64, u64)> {
        let inner = self.lock();
        inner
            .segs
            .iter()
            .find(|s| s.owner == Some(worker))
            .map(|s| (s.start, s.claimed, s.end, s.flushed))
    }

    /// Whether segment `seg` is being raced (or a race is wanted).
    pub(crate) fn is_hedged(&self, seg: u64) -> bool {
        let inner = self.lock();
        inner.hedge_wanted.contains(&seg)
            || inner
                .find(seg)
                .is_some_and(|i| inner.segs[i].hedge.is_some())
    }

    /// Bytes `0..frontier` are all on disk.
    pub(crate) fn frontier(&self) -> u64 {
        let inner = self.lock();
        inner
            .segs
            .iter()
            .find(|s| s.flushed < s.end)
            .map_or(self.size, |s| s.flushed)
    }

    /// Whether every byte is on disk.
    pub(crate) fn complete(&self) -> bool {
        self.lock().segs.iter().all(|s| s.flushed >= s.end)
    }

    /// Bytes on disk.
    #[cfg(test)]
    pub(crate) fn done_bytes(&self) -> u64 {
        self.lock().segs.iter().map(|s| s.flushed - s.start).sum()
    }

    /// The resume record as it stands.
    pub(crate) fn table(&self) -> ChunkTable {
        let inner = self.lock();
        let mut table = ChunkTable::new(&self.identity, self.size, &[]);
        table.chunks = inner
            .segs
            .iter()
            .map(|s| (s.start, s.end, s.flushed - s.start))
            .collect();
        if table.chunks.is_empty() {
            table.chunks.push((0, 0, 0));
        }
        table
    }

    /// Rewrites the sidecar if something changed and `now` is set or a second passed. Blocking.
    pub(crate) fn persist(&self, now: bool) {
        let mut last = self.persisted.lock().unwrap_or_else(|p| p.into_inner());
        if !now && last.1.elapsed() < PERSIST_EVERY {
            return;
        }
        // Read under the `persisted` lock: two writers never put an older table over a newer one.
        let generation = self.lock().generation;
        if generation <= last.0 && last.0 != 0 {
            return;
        }
        if let Err(e) = resume::persist(&self.partial, &self.table()) {
            tracing::debug!("could not record download state: {e}");
        }
        *last = (generation.max(1), Instant::now());
    }
}

/// Takes `worker` off `s`; returns the bytes it had claimed but not written.
fn release(s: &mut Seg, worker: WorkerId) -> u64 {
    let mut lost = 0;
    if s.owner == Some(worker) {
        lost = s.claimed - s.flushed;
        s.owner = None;
        s.claimed = s.flushed;
    }
    if s.hedge.is_some_and(|h| h.0 == worker) {
        s.hedge = None;
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(size: u64, cuts: &[std::ops::Range<u64>]) -> Ranges {
        Ranges::new(
            &ChunkTable::new("e", size, cuts),
            PathBuf::from("/nonexistent/x"),
        )
    }

    /// One range over the whole file.
    fn whole(size: u64) -> Ranges {
        ranges(size, std::slice::from_ref(&(0..size)))
    }

    fn write(r: &Ranges, worker: WorkerId, seg: &mut u64, pos: u64, len: usize) -> Claim {
        let c = r.claim(worker, seg, pos, len);
        if c.take > 0 {
            assert!(r.flushed(worker, *seg, pos + c.skip as u64 + c.take as u64));
        }
        c
    }

    fn tiles(r: &Ranges) {
        let t = r.table();
        let mut at = 0;
        for &(s, e, d) in &t.chunks {
            assert_eq!(s, at, "{t:?}");
            assert!(e >= s && d <= e - s, "{t:?}");
            at = e;
        }
        assert_eq!(at, t.size, "{t:?}");
    }

    #[test]
    fn free_segments_first_then_the_largest_tail() {
        let r = ranges(1000, &[0..500, 500..1000]);
        let a = r.next_work(1, Some(100)).expect("work");
        let b = r.next_work(2, Some(100)).expect("work");
        assert_eq!((a.seg, a.from, a.end), (0, 0, 500));
        assert_eq!((b.seg, b.from, b.end), (500, 500, 1000));
        // Worker 1 has 100 bytes: its 400 left are split in two.
        let mut seg = 0;
        assert_eq!(write(&r, 1, &mut seg, 0, 100).take, 100);
        let c = r.next_work(3, Some(100)).expect("steal");
        assert_eq!(
            (c.seg, c.from, c.end),
            (750, 750, 1000),
            "the largest tail is worker 2's"
        );
        let d = r.next_work(4, Some(100)).expect("steal");
        assert_eq!((d.seg, d.from, d.end), (300, 300, 500));
        // Splitting goes on while both halves keep 100 bytes, and then stops.
        let mut id = 5;
        while r.next_work(id, Some(100)).is_some() {
            id += 1;
        }
        assert_eq!(id, 9, "{:?}", r.table());
        assert!(r.table().chunks.iter().all(|c| c.1 - c.0 >= 100));
        assert!(!r.has_work(100));
        tiles(&r);
    }

    #[test]
    fn a_split_stops_the_owner_at_the_cut_and_nothing_is_written_twice() {
        let r = whole(1000);
        let w = r.next_work(1, Some(10)).expect("work");
        assert_eq!((w.from, w.end), (0, 1000));
        let mut seg = 0;
        write(&r, 1, &mut seg, 0, 200);
        let tail = r.next_work(2, Some(10)).expect("steal");
        assert_eq!(tail.from, 600);
        // The owner's stream carries on past the cut: only bytes before it are taken.
        let c = write(&r, 1, &mut seg, 200, 500);
        assert_eq!(
            c,
            Claim {
                skip: 0,
                take: 400,
                stop: true
            }
        );
        let mut seg2 = tail.seg;
        let c = write(&r, 2, &mut seg2, 600, 400);
        assert_eq!((c.take, c.stop), (400, true));
        assert!(r.complete());
        assert_eq!(r.frontier(), 1000);
        assert_eq!(r.table().chunks, vec![(0, 600, 600), (600, 1000, 400)]);
    }

    #[test]
    fn a_hedge_takes_over_where_the_straggler_stands_when_its_bytes_arrive() {
        let r = whole(1000);
        r.next_work(1, Some(10)).expect("work");
        let mut slow = 0;
        write(&r, 1, &mut slow, 0, 100);
        r.want_hedge(0);
        let h = r.next_work(2, Some(10)).expect("hedge");
        assert!(h.hedge);
        assert_eq!((h.from, h.end), (100, 1000));
        // The straggler moves on a little before the hedge's first bytes arrive.
        write(&r, 1, &mut slow, 100, 50);
        let mut fast = h.seg;
        let c = write(&r, 2, &mut fast, 100, 200);
        // Bytes 100..150 are the straggler's: skipped; the hedge owns 150.. from now on.
        assert_eq!(
            c,
            Claim {
                skip: 50,
                take: 150,
                stop: false
            }
        );
        assert_eq!(fast, 150);
        // The straggler is done: its segment ends where it stood.
        let c = r.claim(1, &mut slow, 150, 10);
        assert_eq!(c, Claim::stop());
        let c = write(&r, 2, &mut fast, 300, 700);
        assert_eq!((c.take, c.stop), (700, true));
        assert!(r.complete());
        tiles(&r);
    }

    #[test]
    fn a_straggler_that_finishes_first_wins_the_race() {
        let r = whole(100);
        r.next_work(1, Some(10)).expect("work");
        let mut slow = 0;
        write(&r, 1, &mut slow, 0, 90);
        r.want_hedge(0);
        let h = r.next_work(2, Some(10)).expect("hedge");
        write(&r, 1, &mut slow, 90, 10);
        let mut fast = h.seg;
        assert_eq!(r.claim(2, &mut fast, 90, 10), Claim::stop());
        assert!(r.complete());
    }

    #[test]
    fn unwritten_claims_go_back_to_the_pool_when_a_worker_ends() {
        let r = whole(1000);
        r.next_work(1, Some(10)).expect("work");
        let mut seg = 0;
        write(&r, 1, &mut seg, 0, 100);
        // Claimed but never written (the worker was cancelled with bytes in its buffer).
        let c = r.claim(1, &mut seg, 100, 100);
        assert_eq!(c.take, 100);
        assert_eq!(r.ended(1, 0), 100);
        let w = r.next_work(2, Some(10)).expect("work");
        assert_eq!((w.seg, w.from, w.end, w.hedge), (0, 100, 1000, false));
        assert_eq!(r.frontier(), 100);
        // A late write from the cancelled worker is not recorded.
        assert!(!r.flushed(1, 0, 200));
        assert_eq!(r.done_bytes(), 100);
    }

    #[test]
    fn a_restarted_stream_skips_what_it_already_sent() {
        let r = whole(1000);
        r.next_work(1, Some(10)).expect("work");
        let mut seg = 0;
        write(&r, 1, &mut seg, 0, 300);
        // The server ignored Range on a retry: the stream comes again from 0.
        let c = r.claim(1, &mut seg, 0, 400);
        assert_eq!(
            c,
            Claim {
                skip: 300,
                take: 100,
                stop: false
            }
        );
    }

    #[test]
    fn resumed_tables_keep_their_progress() {
        let mut t = ChunkTable::new("e", 300, &[0..100, 100..200, 200..300]);
        t.chunks[0].2 = 100;
        t.chunks[1].2 = 40;
        let r = Ranges::new(&t, PathBuf::from("/nonexistent/x"));
        assert_eq!(r.frontier(), 140);
        assert_eq!(r.done_bytes(), 140);
        let w = r.next_work(1, Some(10)).expect("work");
        assert_eq!((w.from, w.end), (140, 200));
        assert_eq!(r.table(), t);
    }
}
