//! A running call: its task on the shared runtime, its progress events, its result.
//!
//! Every function of the package starts a [`Job`] and then either waits for it on the calling
//! thread ([`Job::wait`], the blocking functions) or lets an asyncio loop drive it
//! ([`Job::set_waker`], [`Job::take_events`], `pipefetch.aio`). The engine never calls Python: its
//! events go into a queue without the GIL, and the thread that waits (or the event loop) hands them
//! to the callback. So a slow callback never stalls a transfer, and callbacks run on the caller's
//! thread (or loop), where raising is safe.
//!
//! **Rate.** `progress` and `heartbeat` events are coalesced: a newer one replaces the one of the
//! same file (or the older heartbeat) still waiting, in place. Waiters wake at once for every other
//! event and at the end, and otherwise every [`TICK`], so a callback sees at most about ten
//! progress events per file per second, however fast bytes move, and never falls behind.
//!
//! **Cancellation.** [`Job::cancel`] aborts the task; the engine keeps partial files and their
//! state for the next run (`RecordOnDrop` in the fetcher's engine). The blocking wait checks for
//! signals every [`TICK`], so Ctrl-C raises `KeyboardInterrupt` within about that time, after the
//! task has been dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pipefetch_fetcher::{Event, Reporter};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::Failure;

/// How often a waiter looks at coalesced events and at signals.
const TICK: Duration = Duration::from_millis(100);

/// How long a cancelled call waits for its task to be dropped (it takes one poll of the task; the
/// bound only matters if a blocking file operation is underway).
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Turns a task's value into a Python object once the GIL is held.
pub(crate) type Convert = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// What a task ends with.
pub(crate) type Outcome = Result<Convert, Failure>;

#[derive(Default)]
struct State {
    events: VecDeque<Event>,
    outcome: Option<Outcome>,
    finished: bool,
    /// Called (with the GIL) when a waiter should look: an event that is not coalesced arrived,
    /// or the task finished. Set by `pipefetch.aio`.
    waker: Option<Arc<Py<PyAny>>>,
}

/// The queue between the task (and its reporter) and whoever waits.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes blocked waiters, and the event loop's waker if there is one.
    fn wake(&self, waker: Option<Arc<Py<PyAny>>>) {
        self.cond.notify_all();
        if let Some(waker) = waker {
            Python::attach(|py| {
                if let Err(e) = waker.call0(py) {
                    // The loop may be closed; the caller sees the outcome when it looks again.
                    e.write_unraisable(py, None);
                }
            });
        }
    }

    fn finish(&self, outcome: Outcome) {
        let waker = {
            let mut state = self.lock();
            if state.finished {
                return;
            }
            state.outcome = Some(outcome);
            state.finished = true;
            state.waker.clone()
        };
        self.wake(waker);
    }

    /// Waits until something is worth delivering: an urgent event or the end, or a tick passed.
    /// Returns the events and whether the task has finished. Call without the GIL.
    fn next_batch(&self, last: Instant) -> (Vec<Event>, bool) {
        let mut state = self.lock();
        loop {
            if state.finished {
                break;
            }
            let urgent = state.events.iter().any(|e| !is_coalesced(e));
            let waited = last.elapsed();
            if urgent || waited >= TICK {
                break;
            }
            state = self
                .cond
                .wait_timeout(state, TICK - waited)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        (state.events.drain(..).collect(), state.finished)
    }

    fn take_outcome(&self) -> Option<Outcome> {
        self.lock().outcome.take()
    }
}

/// Events that a newer one of the same kind (and file) makes obsolete.
fn is_coalesced(e: &Event) -> bool {
    matches!(e, Event::Progress { .. } | Event::Heartbeat { .. })
}

/// Whether `newer` replaces `older` in the queue.
fn replaces(newer: &Event, older: &Event) -> bool {
    match (newer, older) {
        (Event::Progress { file: a, .. }, Event::Progress { file: b, .. }) => a == b,
        (Event::Heartbeat { .. }, Event::Heartbeat { .. }) => true,
        _ => false,
    }
}

impl Reporter for Shared {
    fn report(&self, event: &Event) {
        let waker = {
            let mut state = self.lock();
            if is_coalesced(event) {
                if let Some(slot) = state.events.iter_mut().find(|e| replaces(event, e)) {
                    *slot = event.clone();
                } else {
                    state.events.push_back(event.clone());
                }
                // Picked up at the next tick: no wake-up, so a flood of progress costs nothing.
                return;
            }
            state.events.push_back(event.clone());
            state.waker.clone()
        };
        self.wake(waker);
    }
}

/// Records the task's end, including when the task is dropped unfinished (aborted).
struct FinishOnDrop {
    shared: Arc<Shared>,
    outcome: Option<Outcome>,
}

impl FinishOnDrop {
    fn set(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err(Failure::cancelled()));
        self.shared.finish(outcome);
    }
}

/// A call in progress. Returned by the functions of `pipefetch._native`; `pipefetch` and
/// `pipefetch.aio` wait for it.
#[pyclass(frozen, module = "pipefetch._native")]
pub struct Job {
    shared: Arc<Shared>,
    abort: tokio::task::AbortHandle,
}

impl Job {
    /// Starts `work` on the shared runtime. `work` gets the reporter its fetcher should use.
    pub(crate) fn start<F, Fut>(work: F) -> PyResult<Job>
    where
        F: FnOnce(pipefetch_fetcher::SharedReporter) -> Fut,
        Fut: std::future::Future<Output = Outcome> + Send + 'static,
    {
        let rt = crate::runtime::runtime()
            .map_err(|e| PyRuntimeError::new_err(format!("could not start the runtime: {e}")))?;
        let shared = Arc::new(Shared::default());
        let future = work(Arc::clone(&shared) as pipefetch_fetcher::SharedReporter);
        let mut guard = FinishOnDrop {
            shared: Arc::clone(&shared),
            outcome: None,
        };
        let handle = rt.spawn(async move {
            guard.set(future.await);
        });
        Ok(Job {
            shared,
            abort: handle.abort_handle(),
        })
    }

    /// Aborts the task and waits (without the GIL) until it has been dropped, so partial files
    /// are recorded before the caller's exception propagates.
    fn cancel_and_wait(&self, py: Python<'_>) {
        self.abort.abort();
        let shared = Arc::clone(&self.shared);
        py.detach(move || {
            let deadline = Instant::now() + CANCEL_WAIT;
            let mut state = shared.lock();
            while !state.finished && Instant::now() < deadline {
                state = shared
                    .cond
                    .wait_timeout(state, TICK)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        });
    }

    fn outcome(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.shared.take_outcome() {
            Some(Ok(convert)) => convert(py),
            Some(Err(failure)) => Err(failure.into_pyerr(py)),
            None => Err(PyRuntimeError::new_err(
                "the result of this call was taken already, or it has not finished",
            )),
        }
    }
}

impl Drop for Job {
    /// A call nobody holds any more is stopped (a no-op once it has finished).
    fn drop(&mut self) {
        self.abort.abort();
    }
}

#[pymethods]
impl Job {
    /// Waits for the end, handing each event (a dict) to `progress` on this thread, and returns
    /// the result or raises its exception. The GIL is released while waiting. Ctrl-C (in the main
    /// thread) and an exception raised by `progress` cancel the call and propagate.
    #[pyo3(signature = (progress=None))]
    fn wait(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let mut last = Instant::now();
        loop {
            let shared = Arc::clone(&self.shared);
            let (events, finished) = py.detach(move || shared.next_batch(last));
            last = Instant::now();
            if let Some(callback) = &progress {
                for event in &events {
                    let delivered = crate::convert::event_to_py(py, event)
                        .and_then(|dict| callback.call1(py, (dict,)));
                    if let Err(e) = delivered {
                        self.cancel_and_wait(py);
                        return Err(e);
                    }
                }
            }
            if finished {
                return self.outcome(py);
            }
            if let Err(e) = py.check_signals() {
                self.cancel_and_wait(py);
                return Err(e);
            }
        }
    }

    /// The events since the last call, as dicts (for `pipefetch.aio`).
    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let events: Vec<Event> = self.shared.lock().events.drain(..).collect();
        events
            .iter()
            .map(|e| crate::convert::event_to_py(py, e))
            .collect()
    }

    /// Calls `waker()` (from another thread) whenever an event other than progress or a
    /// heartbeat arrives, and at the end; at once if there is something already.
    fn set_waker(&self, py: Python<'_>, waker: Py<PyAny>) -> PyResult<()> {
        let call_now = {
            let mut state = self.shared.lock();
            state.waker = Some(Arc::new(waker.clone_ref(py)));
            state.finished || !state.events.is_empty()
        };
        if call_now {
            waker.call0(py)?;
        }
        Ok(())
    }

    /// Whether the call has ended (its result is ready).
    fn done(&self) -> bool {
        self.shared.lock().finished
    }

    /// The result, or the exception, of a finished call.
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.outcome(py)
    }

    /// Stops the call. Bytes already written stay on disk; a rerun resumes them.
    fn cancel(&self) {
        self.abort.abort();
    }
}
