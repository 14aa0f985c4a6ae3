//! The retry policy: bounded exponential backoff with jitter that honours the server's hints.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// When and how often a failed request is tried again.
///
/// The delay before attempt `n + 1` is `base_delay × 2^(n-1)` capped at `max_delay`, reduced by up
/// to `jitter` (a fraction) at random so that many workers do not retry in lockstep. A wait the
/// server asks for (`Retry-After`, `RateLimit: …;r=0;t=N`) replaces it, capped at `max_server_wait`.
/// A download whose body broke after bytes arrived resumes at once (no delay): the server is up.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// The first delay.
    pub base_delay: Duration,
    /// The largest computed delay.
    pub max_delay: Duration,
    /// The fraction (0.0 to 1.0) of a computed delay that is randomised away.
    pub jitter: f64,
    /// The longest wait a server hint may impose.
    pub max_server_wait: Duration,
    /// Whether to actually sleep; tests turn this off and still observe the computed waits.
    pub sleep: bool,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            jitter: 0.5,
            // The Hub's rate-limit windows are 300 s long; waiting longer is never useful.
            max_server_wait: Duration::from_secs(300),
            sleep: true,
        }
    }
}

impl RetryPolicy {
    /// The default policy with the waits computed and reported but not slept, for tests.
    pub fn no_delay() -> RetryPolicy {
        RetryPolicy {
            sleep: false,
            ..RetryPolicy::default()
        }
    }

    /// No retries at all.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The same policy with `max_attempts` attempts.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> RetryPolicy {
        self.max_attempts = max_attempts;
        self
    }

    /// The wait after failed attempt `attempt` (1-based), given the server's hint if any.
    pub fn delay(&self, attempt: u32, server_hint: Option<Duration>) -> Duration {
        if let Some(hint) = server_hint {
            return hint.min(self.max_server_wait);
        }
        let exp = attempt.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return full;
        }
        full.mul_f64(1.0 - jitter * fastrand::f64())
    }
}

/// Why a request is being retried.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// The server answered with a retryable status (408, 429, 5xx).
    Status(u16),
    /// No answer or no bytes in time, or a trickle below the rate floor.
    Timeout,
    /// The connection could not be opened or broke.
    Connection,
    /// The body ended early; the next attempt resumes with `Range`.
    BodyCut,
}

/// One retry about to happen, for progress reporting.
#[derive(Clone)]
#[non_exhaustive]
pub struct RetryEvent {
    /// The request's URL, whole (an observer matches it against the URLs it asked for). Its
    /// query may be a credential (a presigned URL's signature): show it only through
    /// [`crate::redact_url_str`], as `Debug` does.
    pub url: String,
    /// Why.
    pub reason: RetryReason,
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// The attempts allowed.
    pub max_attempts: u32,
    /// How long we wait before the next attempt (computed even when the policy does not sleep).
    pub wait: Duration,
    /// The failure, as text.
    pub error: String,
    /// For downloads: the absolute offset the next attempt resumes from.
    pub resume_from: Option<u64>,
}

impl std::fmt::Debug for RetryEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryEvent")
            .field("url", &crate::redact_url_str(&self.url))
            .field("reason", &self.reason)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("wait", &self.wait)
            .field("error", &self.error)
            .field("resume_from", &self.resume_from)
            .finish()
    }
}

/// A callback that observes retries; it must not block.
pub type RetryObserver = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

/// Reads the server's requested wait: `RateLimit: "…";r=0;t=N` (wait N s when nothing remains),
/// else `Retry-After` (seconds or an HTTP date).
pub(crate) fn server_wait(headers: &HeaderMap) -> Option<Duration> {
    if let Some(v) = headers.get("ratelimit").and_then(|v| v.to_str().ok())
        && let Some(d) = parse_ratelimit(v)
    {
        return Some(d);
    }
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, SystemTime::now())
}

/// `"resolvers";r=0;t=89` → 89 s; `None` while requests remain (`r > 0`) or when malformed.
pub(crate) fn parse_ratelimit(value: &str) -> Option<Duration> {
    let mut remaining = None;
    let mut reset = None;
    for param in value.split(';').skip(1) {
        let (k, v) = param.trim().split_once('=')?;
        let v = v.trim().parse::<u64>().ok();
        match k.trim() {
            "r" => remaining = v,
            "t" => reset = v,
            _ => {}
        }
    }
    (remaining? == 0).then_some(Duration::from_secs(reset?))
}

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past means "now").
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_capped_without_jitter() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let secs: Vec<u64> = (1..=6).map(|a| p.delay(a, None).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 8, 8]);
        assert_eq!(p.delay(u32::MAX, None), Duration::from_secs(8));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy::default();
        for attempt in 1..=5 {
            let full = Duration::from_secs(1 << (attempt - 1)).min(Duration::from_secs(8));
            for _ in 0..200 {
                let d = p.delay(attempt, None);
                assert!(d <= full && d >= full / 2, "{attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn server_hint_wins_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(42))),
            Duration::from_secs(42)
        );
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(100_000))),
            Duration::from_secs(300)
        );
        assert_eq!(p.delay(1, Some(Duration::ZERO)), Duration::ZERO);
    }

    #[test]
    fn ratelimit_header() {
        assert_eq!(
            parse_ratelimit("\"resolvers\";r=0;t=89"),
            Some(Duration::from_secs(89))
        );
        assert_eq!(
            parse_ratelimit("\"api\"; r=0; t=7"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_ratelimit("\"resolvers\";r=12;t=89"), None);
        assert_eq!(parse_ratelimit("garbage"), None);
        assert_eq!(parse_ratelimit("\"x\";r=0"), None);
    }

    #[test]
    fn retry_after_header() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);

        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(server_wait(&h), Some(Duration::from_secs(3)));
        h.insert("ratelimit", "\"api\";r=0;t=11".parse().unwrap());
        assert_eq!(server_wait(&h), Some(Duration::from_secs(11)));
    }
}
