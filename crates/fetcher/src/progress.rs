//! Progress events: what the engine tells the outside world while it works.
//!
//! The engine emits typed [`Event`]s to a [`Reporter`]. Renderers live elsewhere: the CLI draws bars
//! for people and writes JSON lines for programs (the same events, serialised with
//! [`Event::to_json_line`]); a server can relay them over SSE or gRPC.
//!
//! Positions are integer byte counts, never fractions; a total of `0` means "unknown". While a
//! transfer is active a [`Event::Heartbeat`] arrives at least once a second, even when no byte moves,
//! so a relay can tell "stalled but alive" from "dead".
//!
//! # The JSON lines schema (version 2)
//! One object per line, always with `"v": 2` and an `"event"` tag; fields are exactly those of the
//! variant below (snake_case). New variants or fields may be added within a version; a field is
//! never removed or changes meaning without bumping `v`.
//! ```text
//! {"v":2,"event":"plan","files":12,"total_bytes":2147483648,"cached_files":2,"cached_bytes":1024}
//! {"v":2,"event":"file_started","file":3,"repo":"org/name","path":"unet/x.safetensors","size":1024,"resumed":0}
//! {"v":2,"event":"progress","file":3,"bytes_done":512,"bytes_total":1024}
//! {"v":2,"event":"retry","file":3,"reason":"HTTP 503","attempt":1,"wait_ms":1000}
//! {"v":2,"event":"budget","connections":16,"previous":8,"reason":"slow start: goodput ×1.98 at 16 connections (640 MB/s)"}
//! {"v":2,"event":"file_done","file":3,"bytes":1024,"downloaded":1024}
//! {"v":2,"event":"file_failed","file":3,"error":"..."}
//! {"v":2,"event":"heartbeat","bytes_done":512,"bytes_total":2048,"rate_bps":1000,"active_files":1,"stalled_ms":0,"connections":16,"active_connections":12}
//! {"v":2,"event":"done","files":12,"bytes_downloaded":2048,"elapsed_ms":5000}
//! ```
//!
//! Version 2 (from version 1): the connection budget adapts at run time, so it is reported — a
//! `budget` event whenever it changes, and `connections` / `active_connections` in every
//! heartbeat. `file_done.downloaded` counts every byte received for the file, including the few
//! a raced connection delivered twice. Everything else is as in version 1.

use std::sync::Arc;

use serde::Serialize;

/// The version of the JSON-lines schema, written into every line as `"v"`.
pub const EVENT_SCHEMA_VERSION: u32 = 2;

/// Identifies one file within one run (stable for the run, assigned in plan order).
pub type FileId = u64;

/// Something the engine reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The work is known: how many files and bytes in all, and how much of it is already cached.
    Plan {
        /// Files in the plan, cached ones included.
        files: u64,
        /// Bytes of all files in the plan (0 when unknown).
        total_bytes: u64,
        /// Files already present, that need no transfer.
        cached_files: u64,
        /// Bytes of those files.
        cached_bytes: u64,
    },
    /// A file's transfer starts.
    FileStarted {
        /// The file.
        file: FileId,
        /// Where it comes from (a repo id, a URL host, a folder).
        repo: String,
        /// Its path in that source.
        path: String,
        /// Its size in bytes (0 when unknown).
        size: u64,
        /// Bytes already on disk from an interrupted earlier run (the transfer resumes after them;
        /// they are not downloaded again).
        resumed: u64,
    },
    /// Bytes of a file are on disk. `bytes_done` only goes back after a `retry` event whose server
    /// could not resume and sent the file again from its start.
    Progress {
        /// The file.
        file: FileId,
        /// Bytes written so far.
        bytes_done: u64,
        /// Its size in bytes (0 when unknown).
        bytes_total: u64,
    },
    /// A request failed and will be tried again.
    Retry {
        /// The file, when the request was for one.
        file: Option<FileId>,
        /// Why (an HTTP status, a timeout, a reset connection).
        reason: String,
        /// Which attempt failed, from 1.
        attempt: u32,
        /// How long the engine waits before the next attempt.
        wait_ms: u64,
    },
    /// A file is complete, verified and in place.
    FileDone {
        /// The file.
        file: FileId,
        /// Its size.
        bytes: u64,
        /// Bytes that actually crossed the network for it (0 when it came from the cache).
        downloaded: u64,
    },
    /// A file failed for good.
    FileFailed {
        /// The file.
        file: FileId,
        /// The error, rendered with its causes.
        error: String,
    },
    /// At least once a second while transfers are active.
    Heartbeat {
        /// Bytes of the whole plan done so far (cached bytes included).
        bytes_done: u64,
        /// Bytes of the whole plan (0 when unknown).
        bytes_total: u64,
        /// Bytes per second over the last few seconds.
        rate_bps: u64,
        /// Files being transferred now.
        active_files: u64,
        /// Milliseconds since the last byte arrived (0 while bytes flow).
        stalled_ms: u64,
        /// The connection budget now: how many body transfers may run at once.
        connections: u64,
        /// Connections in use now.
        active_connections: u64,
    },
    /// The connection budget changed (it adapts to the link unless pinned).
    Budget {
        /// The new budget.
        connections: u64,
        /// The budget before.
        previous: u64,
        /// Why (`slow start: …`, `throttled (HTTP 429)`, `no gain: …`, `a connection broke`).
        reason: String,
    },
    /// All work ended (successfully or not: failures were reported before).
    Done {
        /// Files in the plan.
        files: u64,
        /// Bytes that crossed the network.
        bytes_downloaded: u64,
        /// Wall time of the run.
        elapsed_ms: u64,
    },
}

impl Event {
    /// The event as one JSON line (without the newline), with the schema version.
    pub fn to_json_line(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            v: u32,
            #[serde(flatten)]
            event: &'a Event,
        }
        serde_json::to_string(&Line {
            v: EVENT_SCHEMA_VERSION,
            event: self,
        })
        .unwrap_or_else(|_| String::from("{\"v\":2,\"event\":\"unserialisable\"}"))
    }
}

/// Receives events. Implementations must return quickly and never block: the engine calls them
/// from its transfer tasks. The default implementation ignores everything.
pub trait Reporter: Send + Sync {
    /// Called for every event, in the order they happen for a given file.
    fn report(&self, event: &Event) {
        let _ = event;
    }
}

/// A reporter that drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Reporter for NoProgress {}

impl<F> Reporter for F
where
    F: Fn(&Event) + Send + Sync,
{
    fn report(&self, event: &Event) {
        self(event)
    }
}

/// A shared, cheaply cloned reporter.
pub type SharedReporter = Arc<dyn Reporter>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_the_version_and_tag() {
        let line = Event::Progress {
            file: 3,
            bytes_done: 512,
            bytes_total: 1024,
        }
        .to_json_line();
        assert_eq!(
            line,
            r#"{"v":2,"event":"progress","file":3,"bytes_done":512,"bytes_total":1024}"#
        );
        let line = Event::Retry {
            file: None,
            reason: "HTTP 503".into(),
            attempt: 2,
            wait_ms: 1500,
        }
        .to_json_line();
        assert_eq!(
            line,
            r#"{"v":2,"event":"retry","file":null,"reason":"HTTP 503","attempt":2,"wait_ms":1500}"#
        );
    }
}
