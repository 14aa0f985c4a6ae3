//! The request log: every request seen by either listener, for tests to assert on.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

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
    entries: Mutex<Vec<LoggedRequest>>,
}

impl RequestLog {
    /// A copy of every entry.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.lock().clone()
    }

    /// How many requests hit `route`.
    pub fn count(&self, route: Route) -> usize {
        self.lock().iter().filter(|e| e.route == route).count()
    }

    /// Request counts per route kind (kinds with no request are absent).
    pub fn counts(&self) -> BTreeMap<Route, usize> {
        let mut counts = BTreeMap::new();
        for e in self.lock().iter() {
            *counts.entry(e.route).or_insert(0) += 1;
        }
        counts
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }

    pub(crate) fn push(&self, entry: LoggedRequest) {
        self.lock().push(entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LoggedRequest>> {
        // A panic while holding this lock cannot leave the Vec inconsistent, so poison is ignored.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
