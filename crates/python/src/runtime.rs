//! The one tokio runtime every call of the process shares.
//!
//! Built on first use. A process that forks after using pipefetch (gunicorn's pre-fork workers,
//! `multiprocessing` with `fork`) gets a copy of the runtime without its threads; the child notices
//! its new process id and builds a runtime of its own. The parent's copy is leaked in the child on
//! purpose: dropping it would wait for threads that do not exist there.

use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// The process's runtime, built on first use (again after a fork).
pub(crate) fn runtime() -> std::io::Result<Arc<Runtime>> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if let Some((owner, rt)) = slot.as_ref()
        && *owner == pid
    {
        return Ok(Arc::clone(rt));
    }
    let rt = Arc::new(
        // One worker per core, as the CLI's runtime has: hashing and file writes run on tokio's
        // blocking pool, so the workers only move bytes between sockets and buffers.
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("pipefetch")
            .enable_all()
            .build()?,
    );
    if let Some((_, inherited)) = slot.replace((pid, Arc::clone(&rt))) {
        std::mem::forget(inherited);
    }
    Ok(rt)
}
