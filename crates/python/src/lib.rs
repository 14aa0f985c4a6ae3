//! `pipefetch._native`: the extension module under the `pipefetch` Python package.
//!
//! The package (`python/pipefetch`) offers huggingface_hub's download functions
//! (`hf_hub_download`, `snapshot_download`, `scan_cache_dir`, `repo_folder_name`) with the same
//! arguments and cache, plus `download_diffusers_pipeline`, `is_available_locally` and `plan` for
//! pipeline specs, in a blocking flavour and an asyncio one (`pipefetch.aio`). This crate is the
//! thin layer between them and `pipefetch_fetcher`:
//!
//! ```text
//!  pipefetch (Python)                        pipefetch._native (this crate)
//!  hf_hub_download(...) ──► _native.hf_hub_download(...) ──► Job: a task on the shared runtime
//!        │                                                     │  Fetcher::download_file(...)
//!        └──── job.wait(progress) ◄── events (coalesced) ◄─────┘  Reporter = the job's queue
//!  pipefetch.aio: await job via set_waker / take_events / result
//! ```
//!
//! # Design decisions
//! - **One runtime, one job per call.** Calls from many threads (or many asyncio tasks) share a
//!   multi-threaded tokio runtime; each call builds its fetcher from the `HF_*` environment as it
//!   is at that moment (huggingface_hub reads it at import; reading it per call is what a test or
//!   a server changing `HF_TOKEN` expects).
//! - **The GIL is never held while bytes move.** The waiting thread releases it; transfer tasks
//!   never take it. Progress events reach Python on the thread that waits (see the `job` module).
//! - **Cancellation keeps work.** Ctrl-C, a raising callback or an asyncio cancellation abort the
//!   task; the fetcher keeps partial files and their state, and the next call resumes.
//! - **Exceptions are defined in Python** (`pipefetch/errors.py`, mirroring huggingface_hub's
//!   hierarchy); this crate names the class and passes the CLI's text and the attributes.

#![deny(missing_docs)]

mod convert;
mod errors;
mod job;
mod ops;
mod runtime;
mod scan;
mod spec;

use pyo3::prelude::*;

/// The native half of the `pipefetch` package. Use `pipefetch` or `pipefetch.aio`, not this.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<job::Job>()?;
    m.add_function(wrap_pyfunction!(ops::hf_hub_download, m)?)?;
    m.add_function(wrap_pyfunction!(ops::snapshot_download, m)?)?;
    m.add_function(wrap_pyfunction!(ops::download_diffusers_pipeline, m)?)?;
    m.add_function(wrap_pyfunction!(ops::is_available_locally, m)?)?;
    m.add_function(wrap_pyfunction!(ops::plan, m)?)?;
    m.add_function(wrap_pyfunction!(scan::scan_cache, m)?)?;
    m.add_function(wrap_pyfunction!(scan::delete_revisions, m)?)?;
    m.add_function(wrap_pyfunction!(scan::repo_folder_name, m)?)?;
    m.add_function(wrap_pyfunction!(scan::default_cache_dir, m)?)?;
    m.add(
        "EVENT_SCHEMA_VERSION",
        pipefetch_fetcher::progress::EVENT_SCHEMA_VERSION,
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
