//! Streaming file bodies: `Range` handling and the body faults (cut, stall, trickle, flip).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;

use crate::faults::FaultAction;
use crate::link::Gauge;
use crate::repo::CHUNK;

/// How long a cut body waits for the bytes before the cut to reach the client.
const CUT_FLUSH_PAUSE: Duration = Duration::from_millis(50);

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable range: send everything with 200.
    Full,
    /// Send `start..=end` with 206.
    Part { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range. Syntax the server does not understand (several ranges,
/// other units) is ignored, as RFC 9110 allows, and yields the full body.
pub(crate) fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix range: the last `n` bytes.
        let Ok(n) = b.parse::<u64>() else {
            return RangeRequest::Full;
        };
        if n == 0 || len == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Part {
            start: len.saturating_sub(n),
            end: len - 1,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeRequest::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return RangeRequest::Full,
        }
    };
    if start >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Part {
        start,
        end: end.min(len - 1),
    }
}

/// A body fault reduced to what the stream needs.
#[derive(Clone, Copy, Debug)]
enum BodyFault {
    Cut(u64),
    Stall(u64, Option<Duration>),
    Trickle(u64),
    Flip(u64),
}

struct State {
    path: PathBuf,
    file: Option<File>,
    start: u64,
    remaining: u64,
    sent: u64,
    fault: Option<BodyFault>,
    stalled: bool,
    failed: bool,
    /// Read but not yet handed on, when reads are split into smaller frames.
    pending: Bytes,
    /// The largest frame handed to hyper.
    frame: usize,
    /// The log entry's count of bytes sent.
    counter: Arc<AtomicU64>,
    /// Counts this body among those in flight until the stream is dropped.
    _gauge: Option<Gauge>,
}

/// Where a body reports what it sent: the log entry's counter, and the gauge of bodies in flight
/// (CDN only).
pub(crate) struct Tracking {
    pub(crate) sent: Arc<AtomicU64>,
    pub(crate) gauge: Option<Gauge>,
    /// Hand the data to hyper in frames of at most this size. On a rate-capped connection,
    /// small frames keep hyper from taking a whole 1 MiB read into its buffer at once, so
    /// the body (and its gauge) lives until the last bytes are nearly out, as on a real link.
    pub(crate) frame: Option<usize>,
}

/// Streams `len` bytes of `path` from `start`, in 1 MiB reads on the blocking pool, applying
/// `fault` if it is a body fault.
pub(crate) fn file_body(
    path: PathBuf,
    start: u64,
    len: u64,
    fault: Option<&FaultAction>,
    tracking: Tracking,
) -> Body {
    let fault = match fault {
        Some(FaultAction::CutAfter { bytes }) => Some(BodyFault::Cut(*bytes)),
        Some(FaultAction::StallAfter { bytes, millis }) => {
            Some(BodyFault::Stall(*bytes, millis.map(Duration::from_millis)))
        }
        Some(FaultAction::Trickle { bytes_per_second }) => {
            Some(BodyFault::Trickle(*bytes_per_second))
        }
        Some(FaultAction::FlipByte { offset }) => Some(BodyFault::Flip(*offset)),
        _ => None,
    };
    let state = State {
        path,
        file: None,
        start,
        remaining: len,
        sent: 0,
        fault,
        stalled: false,
        failed: false,
        pending: Bytes::new(),
        frame: tracking.frame.unwrap_or(usize::MAX).max(1),
        counter: tracking.sent,
        _gauge: tracking.gauge,
    };
    Body::from_stream(futures::stream::unfold(state, step))
}

async fn step(mut st: State) -> Option<(io::Result<Bytes>, State)> {
    if !st.pending.is_empty() {
        let frame = st.pending.split_to(st.pending.len().min(st.frame));
        st.counter.fetch_add(frame.len() as u64, Ordering::Relaxed);
        return Some((Ok(frame), st));
    }
    if st.failed || st.remaining == 0 {
        return None;
    }
    let mut limit = (CHUNK as u64).min(st.remaining);
    match st.fault {
        Some(BodyFault::Cut(after)) => {
            if st.sent >= after {
                st.failed = true;
                // hyper flushes what it buffered while the body is pending; without this
                // pause the bytes before the cut (even the headers) would be dropped with
                // the connection.
                tokio::time::sleep(CUT_FLUSH_PAUSE).await;
                // An error from the body stream makes hyper abort the connection, so the
                // client sees fewer bytes than `Content-Length` promised.
                return Some((Err(io::Error::other("injected fault: body cut")), st));
            }
            limit = limit.min(after - st.sent);
        }
        Some(BodyFault::Stall(after, duration)) if !st.stalled => {
            if st.sent >= after {
                st.stalled = true;
                match duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => futures::future::pending::<()>().await,
                }
            } else {
                limit = limit.min(after - st.sent);
            }
        }
        Some(BodyFault::Trickle(rate)) => {
            limit = limit.min((rate / 10).max(1));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        _ => {}
    }

    let file = st.file.take();
    let path = st.path.clone();
    let start = st.start;
    let read = tokio::task::spawn_blocking(move || -> io::Result<(File, Vec<u8>)> {
        let mut file = match file {
            Some(f) => f,
            None => {
                let mut f = File::open(&path)?;
                f.seek(SeekFrom::Start(start))?;
                f
            }
        };
        let mut buf = vec![0u8; usize::try_from(limit).unwrap_or(CHUNK)];
        file.read_exact(&mut buf)?;
        Ok((file, buf))
    })
    .await
    .unwrap_or_else(|e| Err(io::Error::other(e)));
    let (file, mut buf) = match read {
        Ok(r) => r,
        Err(e) => {
            st.failed = true;
            return Some((Err(e), st));
        }
    };
    if let Some(BodyFault::Flip(offset)) = st.fault
        && offset >= st.sent
        && let Some(b) = usize::try_from(offset - st.sent)
            .ok()
            .and_then(|i| buf.get_mut(i))
    {
        *b = !*b;
    }
    st.file = Some(file);
    st.sent += buf.len() as u64;
    st.remaining -= buf.len() as u64;
    let mut data = Bytes::from(buf);
    let frame = data.split_to(data.len().min(st.frame));
    st.pending = data;
    st.counter.fetch_add(frame.len() as u64, Ordering::Relaxed);
    Some((Ok(frame), st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(
            parse_range(Some("bytes=0-3"), 10),
            Part { start: 0, end: 3 }
        );
        assert_eq!(parse_range(Some("bytes=4-"), 10), Part { start: 4, end: 9 });
        assert_eq!(parse_range(Some("bytes=-3"), 10), Part { start: 7, end: 9 });
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            Part { start: 5, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=3-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
    }
}
