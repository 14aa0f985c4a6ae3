//! The request log: every request seen by either listener, for tests to assert on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::faults::FaultAction;

/// What kind of route a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Route {
    /// `/{repo}/resolve/{rev}/{path}` (and `/datasets/...`).
    Resolve,
    /// `/api/resolve-cache/...`, the target of a regular file's relative redirect.
    ResolveCache,
    /// `/api/{models|datasets}/{repo}[/revision/{rev}]` and `/refs`.
    ApiRepo,
    /// `/api/{models|datasets}/{repo}/tree/{rev}[/{path}]`.
    ApiTree,
    /// `POST /api/{models|datasets}/{repo}/paths-info/{rev}`.
    ApiPathsInfo,
    /// Anything on the CDN listener.
    Cdn,
    /// `/_control/...`.
    Control,
    /// Anything else on the hub listener (answered 404).
    Other,
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LoggedRequest {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The route kind.
    pub route: Route,
    /// The status of the response (for a cut body: the status that was sent before the cut).
    pub status: u16,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `Authorization` header, if any, verbatim (tests check tokens never reach the CDN).
    pub authorization: Option<String>,
    /// The injected fault applied to this request, if any (its JSON `kind`).
    pub fault: Option<String>,
    /// That fault in full (for a random one: where the cut or stall fell, the trickle rate).
    #[serde(default)]
    pub fault_action: Option<FaultAction>,
    /// Whether the fault came from the queue (`"queue"`) or a [`crate::FaultMix`] (`"mix"`).
    #[serde(default)]
    pub fault_source: Option<String>,
    /// The connection the request arrived on, numbered from 1 in accept order across both
    /// listeners: requests with the same number shared a kept-alive connection.
    #[serde(default)]
    pub connection: u64,
    /// File body bytes handed to the connection so far (0 for anything but a file body). Read
    /// while a body is still streaming, it is the progress so far; a client that hangs up
    /// early leaves it short of the length.
    #[serde(default)]
    pub sent: u64,
}

impl LoggedRequest {
    /// Whether an `Authorization` header arrived.
    pub fn has_authorization(&self) -> bool {
        self.authorization.is_some()
    }
}

/// All requests so far, in arrival order of their responses.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<Vec<(LoggedRequest, Option<Arc<AtomicU64>>)>>,
}

impl RequestLog {
    /// A copy of every entry, with the body bytes sent so far.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.lock()
            .iter()
            .map(|(e, sent)| {
                let mut e = e.clone();
                if let Some(sent) = sent {
                    e.sent = sent.load(Ordering::Relaxed);
                }
                e
            })
            .collect()
    }

    /// File body bytes handed to connections for requests of `route`, summed.
    pub fn sent(&self, route: Route) -> u64 {
        self.lock()
            .iter()
            .filter(|(e, _)| e.route == route)
            .filter_map(|(_, sent)| sent.as_ref())
            .map(|s| s.load(Ordering::Relaxed))
            .sum()
    }

    /// How many requests hit `route`.
    pub fn count(&self, route: Route) -> usize {
        self.lock().iter().filter(|(e, _)| e.route == route).count()
    }

    /// Request counts per route kind (kinds with no request are absent).
    pub fn counts(&self) -> BTreeMap<Route, usize> {
        let mut counts = BTreeMap::new();
        for (e, _) in self.lock().iter() {
            *counts.entry(e.route).or_insert(0) += 1;
        }
        counts
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Adds an entry; `sent` is the counter a streaming body advances.
    pub(crate) fn push(&self, entry: LoggedRequest, sent: Option<Arc<AtomicU64>>) {
        self.lock().push((entry, sent));
    }

    #[allow(clippy::type_complexity)]
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(LoggedRequest, Option<Arc<AtomicU64>>)>> {
        // A panic while holding this lock cannot leave the Vec inconsistent, so poison is ignored.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
