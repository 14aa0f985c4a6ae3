//! Fault injection: a queue of faults, each applied to the next N matching requests.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::log::Route;

/// One queued fault: which requests it hits, how many times, and what it does.
///
/// Built in code with the constructors and chained setters, or sent as JSON to
/// `POST /_control/faults` (see the crate docs for the shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Fault {
    /// Only requests of this route kind match (any if `None`).
    #[serde(default)]
    pub route: Option<Route>,
    /// Only requests whose percent-decoded target (path and query) contains this match.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Only requests with this method (`GET`, `HEAD`, ...) match.
    #[serde(default)]
    pub method: Option<String>,
    /// How many matching requests it applies to before it is used up.
    #[serde(default = "one")]
    pub times: u32,
    /// What happens.
    pub action: FaultAction,
}

fn one() -> u32 {
    1
}

/// What a fault does to a matching request.
///
/// The status kinds answer instead of the route. The body kinds only match requests that are
/// about to stream a file body (a `GET` answered 200/206); byte counts are relative to the
/// start of that response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultAction {
    /// Answer with this status and an error body.
    Status {
        /// The status code.
        status: u16,
    },
    /// Answer 429 with `Retry-After: {seconds}`.
    RetryAfter {
        /// The value of `Retry-After`.
        seconds: u64,
    },
    /// Answer 429 with `RateLimit: "resolvers";r=0;t={reset}`.
    RateLimit {
        /// Seconds until the window resets.
        reset: u64,
    },
    /// Send the full `Content-Length` but close the connection after `bytes` body bytes.
    CutAfter {
        /// Body bytes sent before the cut.
        bytes: u64,
    },
    /// Stop sending after `bytes` body bytes for `millis` (forever if absent), then continue.
    StallAfter {
        /// Body bytes sent before the stall.
        bytes: u64,
        /// Stall duration; `None` stalls until the client gives up.
        #[serde(default)]
        millis: Option<u64>,
    },
    /// Send the body slowly, about `bytes_per_second`, in ten small writes a second.
    Trickle {
        /// Target rate.
        bytes_per_second: u64,
    },
    /// Ignore `Range` and answer 200 with the full body.
    IgnoreRange,
    /// Invert the byte at `offset` of the response body (if the body is that long).
    FlipByte {
        /// Offset from the start of the response body.
        offset: u64,
    },
}

impl FaultAction {
    /// Whether this action alters a file body rather than replacing the response.
    pub(crate) fn is_body(&self) -> bool {
        !matches!(
            self,
            FaultAction::Status { .. }
                | FaultAction::RetryAfter { .. }
                | FaultAction::RateLimit { .. }
        )
    }

    /// The JSON `kind` name, for the log.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            FaultAction::Status { .. } => "status",
            FaultAction::RetryAfter { .. } => "retry_after",
            FaultAction::RateLimit { .. } => "rate_limit",
            FaultAction::CutAfter { .. } => "cut_after",
            FaultAction::StallAfter { .. } => "stall_after",
            FaultAction::Trickle { .. } => "trickle",
            FaultAction::IgnoreRange => "ignore_range",
            FaultAction::FlipByte { .. } => "flip_byte",
        }
    }
}

impl Fault {
    /// A fault with this action, matching every request once.
    pub fn new(action: FaultAction) -> Fault {
        Fault {
            route: None,
            path_contains: None,
            method: None,
            times: 1,
            action,
        }
    }

    /// Answer `status` (500, 503, 404, ...).
    pub fn status(status: u16) -> Fault {
        Fault::new(FaultAction::Status { status })
    }

    /// Answer 429 with `Retry-After: {seconds}`.
    pub fn retry_after(seconds: u64) -> Fault {
        Fault::new(FaultAction::RetryAfter { seconds })
    }

    /// Answer 429 with `RateLimit: "resolvers";r=0;t={reset}`.
    pub fn rate_limit(reset: u64) -> Fault {
        Fault::new(FaultAction::RateLimit { reset })
    }

    /// Close the connection after `bytes` body bytes (the headers promised more).
    pub fn cut_after(bytes: u64) -> Fault {
        Fault::new(FaultAction::CutAfter { bytes })
    }

    /// Stall after `bytes` body bytes, for `duration` or forever.
    pub fn stall_after(bytes: u64, duration: Option<Duration>) -> Fault {
        Fault::new(FaultAction::StallAfter {
            bytes,
            millis: duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
    }

    /// Send the body at about `bytes_per_second`.
    pub fn trickle(bytes_per_second: u64) -> Fault {
        Fault::new(FaultAction::Trickle { bytes_per_second })
    }

    /// Answer 200 with the full body even when a `Range` was asked for.
    pub fn ignore_range() -> Fault {
        Fault::new(FaultAction::IgnoreRange)
    }

    /// Invert the byte at `offset` of the response body.
    pub fn flip_byte(offset: u64) -> Fault {
        Fault::new(FaultAction::FlipByte { offset })
    }

    /// Only match requests of this route kind.
    pub fn on(mut self, route: Route) -> Fault {
        self.route = Some(route);
        self
    }

    /// Only match requests whose decoded path or query contains `needle`.
    pub fn path_contains(mut self, needle: impl Into<String>) -> Fault {
        self.path_contains = Some(needle.into());
        self
    }

    /// Only match requests with this method.
    pub fn method(mut self, method: impl Into<String>) -> Fault {
        self.method = Some(method.into());
        self
    }

    /// Apply to the next `n` matching requests instead of one.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = n;
        self
    }

    fn matches(&self, route: Route, method: &str, target: &str, body: bool) -> bool {
        self.times > 0
            && self.action.is_body() == body
            && self.route.is_none_or(|r| r == route)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|n| target.contains(n))
    }
}

/// The queue of pending faults, shared by both listeners.
#[derive(Debug, Default)]
pub struct Faults {
    queue: Mutex<Vec<Fault>>,
}

impl Faults {
    /// Queues a fault after the ones already pending (one with `times == 0` is dropped: it
    /// could never apply).
    pub fn push(&self, fault: Fault) {
        if fault.times > 0 {
            self.lock().push(fault);
        }
    }

    /// Drops every pending fault.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The faults not used up yet, with their remaining counts.
    pub fn pending(&self) -> Vec<Fault> {
        self.lock().clone()
    }

    /// Consumes one use of the first pending fault of the given class matching the request.
    pub(crate) fn take(
        &self,
        route: Route,
        method: &str,
        target: &str,
        body: bool,
    ) -> Option<FaultAction> {
        let mut queue = self.lock();
        let i = queue
            .iter()
            .position(|f| f.matches(route, method, target, body))?;
        let fault = &mut queue[i];
        fault.times -= 1;
        let action = fault.action.clone();
        if fault.times == 0 {
            queue.remove(i);
        }
        Some(action)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_matches() {
        let faults = Faults::default();
        faults.push(Fault::status(503).on(Route::Cdn).times(2));
        faults.push(Fault::cut_after(5).path_contains("unet"));
        assert_eq!(faults.take(Route::Resolve, "GET", "/x", false), None);
        assert_eq!(
            faults.take(Route::Cdn, "GET", "/x", false),
            Some(FaultAction::Status { status: 503 })
        );
        assert!(faults.take(Route::Cdn, "GET", "/x", false).is_some());
        assert_eq!(faults.take(Route::Cdn, "GET", "/x", false), None);
        assert_eq!(faults.take(Route::Cdn, "GET", "/vae/x", true), None);
        assert_eq!(
            faults.take(Route::Cdn, "GET", "/unet/x", true),
            Some(FaultAction::CutAfter { bytes: 5 })
        );
        assert!(faults.pending().is_empty());
    }

    #[test]
    fn json_shape() {
        let f: Fault = serde_json::from_str(
            r#"{"route":"cdn","path_contains":"unet","times":2,"action":{"kind":"stall_after","bytes":10}}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Fault::stall_after(10, None)
                .on(Route::Cdn)
                .path_contains("unet")
                .times(2)
        );
        let f: Fault = serde_json::from_str(r#"{"action":{"kind":"ignore_range"}}"#).unwrap();
        assert_eq!(f, Fault::ignore_range());
    }
}
