//! `scan_cache_dir` and the deletions of its strategy, over `pipefetch_hub_cache`.
//!
//! The scan comes back as plain data; `pipefetch/_cache.py` builds huggingface_hub's frozen
//! dataclasses from it and computes delete strategies (which paths, how many bytes) the way
//! huggingface_hub does. Only the deletion itself comes back here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pipefetch_hub_cache::{CacheInfo, HfCache, RepoType};
use pyo3::prelude::*;
use serde_json::{Value, json};

use crate::errors::Failure;

/// A timestamp as Python's `os.stat` gives it (`st_mtime`): the same arithmetic, so the floats are
/// equal to the last bit.
fn timestamp(t: Option<SystemTime>) -> Value {
    match t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()) {
        Some(d) => json!(d.as_secs() as f64 + f64::from(d.subsec_nanos()) * 1e-9),
        None => json!(0.0),
    }
}

/// Access and modification times of a file (following links, like `Path.stat()`).
fn times(path: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    match std::fs::metadata(path) {
        Ok(m) => (m.accessed().ok(), m.modified().ok()),
        Err(_) => (None, None),
    }
}

fn scan_json(info: &CacheInfo) -> Value {
    let mut blob_times: HashMap<PathBuf, (Option<SystemTime>, Option<SystemTime>)> = HashMap::new();
    let repos: Vec<Value> = info
        .repos
        .iter()
        .map(|repo| {
            let revisions: Vec<Value> = repo
                .revisions
                .iter()
                .map(|rev| {
                    let snapshot = repo.path.join("snapshots").join(&rev.commit);
                    let mut last_modified = None;
                    let files: Vec<Value> = rev
                        .files
                        .iter()
                        .map(|f| {
                            let (accessed, modified) = *blob_times
                                .entry(f.blob_path.clone())
                                .or_insert_with(|| times(&f.blob_path));
                            last_modified = last_modified.max(modified);
                            let file_path = snapshot.join(&f.path);
                            json!({
                                "file_name": file_path.file_name().map(|n| n.to_string_lossy()),
                                "file_path": file_path,
                                "blob_path": f.blob_path,
                                "size_on_disk": f.size,
                                "blob_last_accessed": timestamp(accessed),
                                "blob_last_modified": timestamp(modified),
                            })
                        })
                        .collect();
                    // An empty snapshot's time is the folder's own, as in huggingface_hub.
                    if rev.files.is_empty() {
                        last_modified = times(&snapshot).1;
                    }
                    json!({
                        "commit_hash": rev.commit,
                        "snapshot_path": snapshot,
                        "size_on_disk": rev.size_on_disk,
                        "files": files,
                        "refs": rev.refs,
                        "last_modified": timestamp(last_modified),
                    })
                })
                .collect();
            let incomplete: Vec<Value> = repo
                .incomplete
                .iter()
                .map(|f| json!({"file_path": f.path, "size_on_disk": f.size}))
                .collect();
            json!({
                "repo_id": repo.repo_id,
                "repo_type": repo.repo_type.as_str(),
                "repo_path": repo.path,
                "size_on_disk": repo.size_on_disk,
                "nb_files": repo.nb_files,
                "revisions": revisions,
                "last_accessed": timestamp(repo.last_accessed),
                "last_modified": timestamp(repo.last_modified),
                "incomplete_files": incomplete,
            })
        })
        .collect();
    let warnings: Vec<&str> = info.warnings.iter().map(|w| w.message.as_str()).collect();
    json!({
        "size_on_disk": info.size_on_disk,
        "repos": repos,
        "warnings": warnings,
    })
}

/// Scans the cache at `cache_dir` (an existing folder; the Python side checks that, with
/// huggingface_hub's exceptions). The GIL is released during the scan.
#[pyfunction]
pub(crate) fn scan_cache(py: Python<'_>, cache_dir: PathBuf) -> PyResult<Py<PyAny>> {
    let scanned = py.detach(move || HfCache::new(cache_dir).scan().map(|info| scan_json(&info)));
    match scanned {
        Ok(value) => Ok(crate::convert::json_to_py(py, &value)?.unbind()),
        Err(e) => Err(Failure::from(e).into_pyerr(py)),
    }
}

/// Deletes revisions of one repo (all of them: the whole repo folder) and returns the bytes freed.
#[pyfunction]
#[pyo3(signature = (cache_dir, repo_type, repo_id, commits, whole_repo))]
pub(crate) fn delete_revisions(
    py: Python<'_>,
    cache_dir: PathBuf,
    repo_type: &str,
    repo_id: String,
    commits: Vec<String>,
    whole_repo: bool,
) -> PyResult<u64> {
    let repo_type = match repo_type {
        "dataset" => RepoType::Dataset,
        "space" => RepoType::Space,
        "kernel" => RepoType::Kernel,
        _ => RepoType::Model,
    };
    let deleted = py.detach(move || -> Result<u64, pipefetch_hub_cache::Error> {
        let cache = HfCache::new(cache_dir);
        if whole_repo {
            return Ok(cache.delete_repo(repo_type, &repo_id)?.freed_bytes);
        }
        let repo = cache.repo(repo_type, &repo_id)?;
        let mut freed = 0;
        for commit in &commits {
            freed += repo.delete_revision(commit)?.freed_bytes;
        }
        Ok(freed)
    });
    deleted.map_err(|e| Failure::from(e).into_pyerr(py))
}

/// The cache folder the `HF_*` environment names now (`HF_HUB_CACHE`, else `$HF_HOME/hub`, ...).
#[pyfunction]
pub(crate) fn default_cache_dir() -> String {
    pipefetch_hub_client::HfEnv::from_env()
        .hub_cache
        .to_string_lossy()
        .into_owned()
}

/// huggingface_hub's cache folder name of a repo (`models--org--name`).
#[pyfunction]
#[pyo3(signature = (*, repo_id, repo_type))]
pub(crate) fn repo_folder_name(repo_id: &str, repo_type: &str) -> PyResult<String> {
    let repo_type = match repo_type {
        "model" => RepoType::Model,
        "dataset" => RepoType::Dataset,
        "space" => RepoType::Space,
        "kernel" => RepoType::Kernel,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "Invalid repo type: {other}"
            )));
        }
    };
    Ok(pipefetch_hub_cache::repo_folder_name(repo_type, repo_id))
}
