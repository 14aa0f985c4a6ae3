//! What the CDN link looks like: a per-connection rate cap, an added latency, and counters.
//!
//! A real CDN edge gives one connection about 40 MB/s and answers after a round trip; loopback
//! gives one connection gigabytes a second at once. Both shape how a client should use its
//! connections, so the CDN listener can imitate a real edge:
//!
//! - The **rate cap** is per connection, like nginx's `limit_rate`: a client that opens more
//!   connections gets more aggregate bandwidth. It is applied where hyper writes to the socket
//!   (a pacing wrapper around the socket), so headers count too, and every connection has its own schedule.
//! - The **latency** delays a new connection before its first request is read (the handshake)
//!   and every response before its head is written (the request's trip), so a first response
//!   on a new connection costs two delays and one on a kept-alive connection costs one.
//!
//! Both are read from atomics on every use, so a test (or `POST /_control/link`) can change
//! them while connections are open.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::error::Error;

/// How long one paced write may take at the cap: writes are at most `rate * SLICE` bytes, so
/// a connection wakes about 100 times a second whatever its rate.
const SLICE: Duration = Duration::from_millis(10);
/// The smallest paced write: below this, a low cap would wake the task for a few bytes.
const MIN_QUANTUM: u64 = 1024;
/// The largest paced write (a high cap needs no bigger writes to keep a socket busy).
const MAX_QUANTUM: u64 = 1024 * 1024;

/// The link settings and counters of the CDN listener, shared by its connections.
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// Bytes per second per connection; 0 is no cap.
    rate: AtomicU64,
    /// Added latency in milliseconds.
    latency_ms: AtomicU64,
    connections: AtomicU64,
    open: AtomicU64,
    peak_open: AtomicU64,
    bodies: AtomicU64,
    peak_bodies: AtomicU64,
    bytes_written: AtomicU64,
    pauses: AtomicU64,
    paused_micros: AtomicU64,
    latency_waits: AtomicU64,
}

/// Counters of the CDN listener since the server started (or since `POST /_control/reset`).
///
/// Tests assert on them instead of on elapsed time: that the cap made the server wait, how many
/// connections a client held at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LinkStats {
    /// CDN connections accepted.
    pub connections: u64,
    /// CDN connections open now.
    pub open: u64,
    /// The most CDN connections open at once.
    pub peak_open: u64,
    /// CDN file bodies being sent now.
    pub bodies: u64,
    /// The most CDN file bodies sent at once (connections actually transferring, where
    /// `peak_open` also counts idle kept-alive ones).
    pub peak_bodies: u64,
    /// Bytes written to CDN sockets, headers included.
    pub bytes_written: u64,
    /// How many times the rate cap made a connection wait before writing.
    pub pauses: u64,
    /// The total of those waits, in milliseconds (summed over connections).
    pub paused_ms: u64,
    /// How many latency delays were applied (one per new connection, one per response).
    pub latency_waits: u64,
}

impl Link {
    pub(crate) fn new(rate: Option<u64>, latency: Duration) -> Link {
        let link = Link::default();
        link.set_rate(rate);
        link.set_latency(latency);
        link
    }

    pub(crate) fn rate(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|&r| r > 0)
    }

    pub(crate) fn set_rate(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// Waits out the added latency, if any, and counts it.
    pub(crate) async fn delay(&self) {
        let latency = self.latency();
        if !latency.is_zero() {
            self.latency_waits.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(latency).await;
        }
    }

    /// Counts a new connection until the guard drops.
    pub(crate) fn open_connection(self: &Arc<Self>) -> Gauge {
        self.connections.fetch_add(1, Ordering::Relaxed);
        Gauge::new(self.clone(), |l| (&l.open, &l.peak_open))
    }

    /// Counts a file body being sent until the guard drops.
    pub(crate) fn start_body(self: &Arc<Self>) -> Gauge {
        Gauge::new(self.clone(), |l| (&l.bodies, &l.peak_bodies))
    }

    pub(crate) fn stats(&self) -> LinkStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkStats {
            connections: get(&self.connections),
            open: get(&self.open),
            peak_open: get(&self.peak_open),
            bodies: get(&self.bodies),
            peak_bodies: get(&self.peak_bodies),
            bytes_written: get(&self.bytes_written),
            pauses: get(&self.pauses),
            paused_ms: get(&self.paused_micros) / 1000,
            latency_waits: get(&self.latency_waits),
        }
    }

    /// Zeroes the cumulative counters; the peaks restart from what is open now.
    pub(crate) fn reset_stats(&self) {
        for a in [
            &self.connections,
            &self.bytes_written,
            &self.pauses,
            &self.paused_micros,
            &self.latency_waits,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        self.peak_open
            .store(self.open.load(Ordering::Relaxed), Ordering::Relaxed);
        self.peak_bodies
            .store(self.bodies.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// A count of something open (a connection, a body), with its peak; decremented on drop.
#[derive(Debug)]
pub(crate) struct Gauge {
    link: Arc<Link>,
    pick: fn(&Link) -> (&AtomicU64, &AtomicU64),
}

impl Gauge {
    fn new(link: Arc<Link>, pick: fn(&Link) -> (&AtomicU64, &AtomicU64)) -> Gauge {
        let (now, peak) = pick(&link);
        let n = now.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(n, Ordering::Relaxed);
        Gauge { link, pick }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        let (now, _) = (self.pick)(&self.link);
        now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket whose writes are paced to the link's per-connection rate.
///
/// The schedule is a virtual clock (`next`: when the next byte may leave). A write waits until
/// `next`, sends at most one slice's worth, and moves `next` on by what it sent divided by the
/// rate. Time the client spent not reading is not saved up beyond one slice, so a connection
/// never bursts above the cap after a pause; the one slice of credit absorbs timer overshoot.
pub(crate) struct Shaped<S> {
    inner: S,
    link: Arc<Link>,
    next: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> Shaped<S> {
    pub(crate) fn new(inner: S, link: Arc<Link>) -> Shaped<S> {
        Shaped {
            inner,
            link,
            next: None,
            sleep: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Shaped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Shaped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(rate) = this.link.rate() else {
            this.next = None;
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
            this.link
                .bytes_written
                .fetch_add(n as u64, Ordering::Relaxed);
            return Poll::Ready(Ok(n));
        };
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
            }
            let now = Instant::now();
            let next = this
                .next
                .map_or(now, |n| n.max(now.checked_sub(SLICE).unwrap_or(now)));
            if next > now {
                let wait = next - now;
                this.link.pauses.fetch_add(1, Ordering::Relaxed);
                this.link
                    .paused_micros
                    .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
                this.sleep = Some(Box::pin(tokio::time::sleep_until(next.into())));
                continue;
            }
            let quantum =
                (rate / (1000 / SLICE.as_millis() as u64)).clamp(MIN_QUANTUM, MAX_QUANTUM);
            let len = buf
                .len()
                .min(usize::try_from(quantum).unwrap_or(usize::MAX));
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..len]))?;
            this.link
                .bytes_written
                .fetch_add(n as u64, Ordering::Relaxed);
            // The schedule restarts from `next` (not from now) so that timer overshoot within
            // one slice is made up, and from now when the client was slower than the cap.
            let cost = Duration::from_secs_f64(n as f64 / rate as f64);
            this.next = Some(next + cost);
            return Poll::Ready(Ok(n));
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Parses a rate in bytes per second: `40M`, `40MB`, `40m`, `1.3k`, `40MiB`, `1300`.
///
/// `k`, `M`, `G` (with or without `B`) are powers of 1000, `Ki`, `Mi`, `Gi` powers of 1024;
/// a trailing `/s` is allowed. `0` means no cap.
pub fn parse_rate(text: &str) -> Result<u64, Error> {
    let invalid = |why: &str| Error::InvalidConfig {
        message: format!(
            "invalid rate {text:?}: {why} (expected bytes per second, like 40M, 40MB, 1.3k or 1300)"
        ),
    };
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid("no number"))?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix('B')
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(invalid("unknown unit")),
    };
    let bytes = number * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(invalid("out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration: `40s`, `500ms`, `2m`, or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let invalid = || Error::InvalidConfig {
        message: format!("invalid duration {text:?} (expected 40s, 500ms, 2m or seconds)"),
    };
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let secs = number.trim().parse::<f64>().map_err(|_| invalid())? * scale;
    Duration::try_from_secs_f64(secs).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("40M").unwrap(), 40_000_000);
        assert_eq!(parse_rate("40MB").unwrap(), 40_000_000);
        assert_eq!(parse_rate("40m").unwrap(), 40_000_000);
        assert_eq!(parse_rate("40MB/s").unwrap(), 40_000_000);
        assert_eq!(parse_rate("1.3k").unwrap(), 1300);
        assert_eq!(parse_rate("1300").unwrap(), 1300);
        assert_eq!(parse_rate("2MiB").unwrap(), 2 * 1024 * 1024);
        assert_eq!(parse_rate("0").unwrap(), 0);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("40X").is_err());
        assert!(parse_rate("").is_err());
        assert!(parse_rate("-3").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("40s").unwrap(), Duration::from_secs(40));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
