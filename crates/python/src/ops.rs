//! The functions of `pipefetch._native` that download or plan: each starts a [`Job`].
//!
//! Arguments arrive normalised by the Python layer (`pipefetch/__init__.py`): patterns as lists,
//! `None` for defaults, specs tagged as a path or a dict's JSON text.

use std::path::PathBuf;

use pipefetch_fetcher::pipeline::plan::Presence;
use pipefetch_fetcher::{Fetcher, FileRequest, Plan, PullOptions, SharedReporter, SnapshotRequest};
use pipefetch_hub_client::{HfEnv, Repo, RepoId, RepoType, Token};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBool;
use serde_json::{Value, json};

use crate::errors::Failure;
use crate::job::{Job, Outcome};
use crate::spec::SpecInput;

/// `token=`: huggingface_hub's meaning. `None` or `True`: the configured token (`HF_TOKEN`, the
/// token file); `False`: none at all; a string: that token.
#[derive(Debug, Clone, Default)]
pub(crate) enum TokenChoice {
    #[default]
    Configured,
    Disabled,
    Given(String),
}

impl<'py> FromPyObject<'_, 'py> for TokenChoice {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            Ok(TokenChoice::Configured)
        } else if let Ok(b) = obj.cast::<PyBool>() {
            Ok(if b.is_true() {
                TokenChoice::Configured
            } else {
                TokenChoice::Disabled
            })
        } else if let Ok(s) = obj.extract::<String>() {
            Ok(TokenChoice::Given(s))
        } else {
            Err(PyTypeError::new_err("token must be a str, a bool or None"))
        }
    }
}

/// What every function takes besides its own arguments.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub endpoint: Option<String>,
    pub token: TokenChoice,
    pub cache_dir: Option<PathBuf>,
    pub connections: Option<usize>,
}

impl Settings {
    /// A fetcher for one call: the `HF_*` environment as it is now, these overrides, `reporter`.
    fn fetcher(&self, reporter: SharedReporter) -> Result<Fetcher, Failure> {
        let mut env = HfEnv::from_env();
        if matches!(self.token, TokenChoice::Disabled) {
            env.token = None;
        }
        let mut builder = Fetcher::builder().env(env).reporter(reporter);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.endpoint(endpoint.clone());
        }
        if let TokenChoice::Given(token) = &self.token {
            builder = builder.token(Token::clean(token).map(Token::new));
        }
        if let Some(dir) = &self.cache_dir {
            builder = builder.cache_dir(dir.clone());
        }
        if let Some(n) = self.connections {
            builder = builder.connections(n);
        }
        Ok(builder.build()?)
    }
}

fn repo(repo_id: &str, repo_type: Option<&str>) -> Result<Repo, Failure> {
    let repo_type: RepoType = repo_type.unwrap_or("model").parse()?;
    Ok(Repo::new(repo_type, RepoId::new(repo_id)?))
}

fn path_result(path: PathBuf) -> Outcome {
    Ok(Box::new(move |py| {
        Ok(path
            .display()
            .to_string()
            .into_pyobject(py)?
            .into_any()
            .unbind())
    }))
}

fn json_result(value: Value) -> Outcome {
    Ok(Box::new(move |py| {
        Ok(crate::convert::json_to_py(py, &value)?.unbind())
    }))
}

/// `hf_hub_download`: starts the download of one file.
#[pyfunction]
#[pyo3(signature = (repo_id, filename, subfolder, repo_type, revision, cache_dir, token, local_files_only, force_download, endpoint))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn hf_hub_download(
    repo_id: String,
    filename: String,
    subfolder: Option<String>,
    repo_type: Option<String>,
    revision: Option<String>,
    cache_dir: Option<PathBuf>,
    token: TokenChoice,
    local_files_only: bool,
    force_download: bool,
    endpoint: Option<String>,
) -> PyResult<Job> {
    let settings = Settings {
        endpoint,
        token,
        cache_dir,
        connections: None,
    };
    Job::start(move |reporter| async move {
        let fetcher = settings.fetcher(reporter)?;
        let mut req = FileRequest::new(repo(&repo_id, repo_type.as_deref())?, filename);
        req.subfolder = subfolder;
        req.revision = revision.unwrap_or_else(|| "main".into());
        req.local_files_only = local_files_only;
        req.force_download = force_download;
        path_result(fetcher.download_file(&req).await?)
    })
}

/// `snapshot_download`: starts the download of a repo, or of the files matching patterns.
#[pyfunction]
#[pyo3(signature = (repo_id, repo_type, revision, cache_dir, allow_patterns, ignore_patterns, token, local_files_only, force_download, endpoint, max_workers))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn snapshot_download(
    repo_id: String,
    repo_type: Option<String>,
    revision: Option<String>,
    cache_dir: Option<PathBuf>,
    allow_patterns: Vec<String>,
    ignore_patterns: Vec<String>,
    token: TokenChoice,
    local_files_only: bool,
    force_download: bool,
    endpoint: Option<String>,
    max_workers: usize,
) -> PyResult<Job> {
    let settings = Settings {
        endpoint,
        token,
        cache_dir,
        connections: Some(max_workers),
    };
    Job::start(move |reporter| async move {
        let fetcher = settings.fetcher(reporter)?;
        let mut req = SnapshotRequest::new(repo(&repo_id, repo_type.as_deref())?);
        req.revision = revision.unwrap_or_else(|| "main".into());
        req.allow_patterns = allow_patterns;
        req.ignore_patterns = ignore_patterns;
        req.local_files_only = local_files_only;
        req.force_download = force_download;
        path_result(fetcher.snapshot(&req).await?.path)
    })
}

/// The spec argument: `("path", str)` or `("dict", json_text)`.
fn spec_input(kind: &str, value: String) -> PyResult<SpecInput> {
    match kind {
        "path" => Ok(SpecInput::Path(value)),
        "dict" => Ok(SpecInput::Dict(value)),
        other => Err(PyTypeError::new_err(format!("unknown spec kind {other:?}"))),
    }
}

/// `download_diffusers_pipeline`: plans, downloads what is missing, assembles the folder.
#[pyfunction]
#[pyo3(signature = (spec_kind, spec, spec_revision, out, locked, check_disk, cache_dir, token, endpoint, max_workers))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn download_diffusers_pipeline(
    spec_kind: &str,
    spec: String,
    spec_revision: String,
    out: Option<PathBuf>,
    locked: bool,
    check_disk: bool,
    cache_dir: Option<PathBuf>,
    token: TokenChoice,
    endpoint: Option<String>,
    max_workers: usize,
) -> PyResult<Job> {
    let input = spec_input(spec_kind, spec)?;
    let settings = Settings {
        endpoint,
        token,
        cache_dir,
        connections: Some(max_workers),
    };
    Job::start(move |reporter| async move {
        let fetcher = settings.fetcher(reporter)?;
        let loaded = input.load(&fetcher, &spec_revision, false).await?;
        let options = PullOptions {
            out,
            skip_disk_check: !check_disk,
            ..PullOptions::default()
        };
        let folder = if locked {
            // Exactly the files of the spec's lockfile (`pipefetch lock`), nothing resolved.
            let lock = loaded.read_lock(None)?;
            fetcher.pull_locked(&lock, &options).await?
        } else {
            fetcher
                .download_diffusers_pipeline(&loaded.spec, &loaded.origin, &options)
                .await?
        };
        path_result(folder.path)
    })
}

/// `is_available_locally`: whether every file is here and whole, from the disk alone.
#[pyfunction]
#[pyo3(signature = (spec_kind, spec, spec_revision, verify, cache_dir))]
pub(crate) fn is_available_locally(
    spec_kind: &str,
    spec: String,
    spec_revision: String,
    verify: bool,
    cache_dir: Option<PathBuf>,
) -> PyResult<Job> {
    let input = spec_input(spec_kind, spec)?;
    let settings = Settings {
        cache_dir,
        ..Settings::default()
    };
    Job::start(move |reporter| async move {
        let fetcher = settings.fetcher(reporter)?;
        // A hosted spec is read from the cache: this question never touches the network.
        let loaded = input.load(&fetcher, &spec_revision, true).await?;
        let availability = fetcher.is_available(&loaded, verify).await?;
        let value = serde_json::to_value(&availability)
            .map_err(|e| Failure::new("PipefetchError", e.to_string()))?;
        json_result(value)
    })
}

/// `plan`: every file the pipeline needs, its source, size and state.
#[pyfunction]
#[pyo3(signature = (spec_kind, spec, spec_revision, local_files_only, cache_dir, token, endpoint))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan(
    spec_kind: &str,
    spec: String,
    spec_revision: String,
    local_files_only: bool,
    cache_dir: Option<PathBuf>,
    token: TokenChoice,
    endpoint: Option<String>,
) -> PyResult<Job> {
    let input = spec_input(spec_kind, spec)?;
    let settings = Settings {
        endpoint,
        token,
        cache_dir,
        connections: None,
    };
    Job::start(move |reporter| async move {
        let fetcher = settings.fetcher(reporter)?;
        let loaded = input
            .load(&fetcher, &spec_revision, local_files_only)
            .await?;
        let plan = fetcher
            .plan(&loaded.spec, &loaded.origin, local_files_only)
            .await?;
        let disk_ok = fetcher.check_disk(&plan).is_ok();
        json_result(plan_json(&plan, disk_ok))
    })
}

/// The plan as `pipefetch plan --json` prints it, each file with its source described and its
/// state flattened (`cached`, `partial` with `bytes_on_disk`, `missing`).
fn plan_json(plan: &Plan, disk_ok: bool) -> Value {
    let files: Vec<Value> = plan
        .files
        .iter()
        .map(|f| {
            let (state, on_disk) = match f.presence {
                Presence::Cached => ("cached", f.size.unwrap_or(0)),
                Presence::Partial { bytes } => ("partial", bytes),
                Presence::Missing => ("missing", 0),
                _ => ("unknown", 0),
            };
            json!({
                "target": f.target,
                "component": f.component,
                "source": f.origin.describe(),
                "origin": serde_json::to_value(&f.origin).unwrap_or(Value::Null),
                "size": f.size,
                "digest": f.digest,
                "state": state,
                "bytes_on_disk": on_disk,
            })
        })
        .collect();
    json!({
        "name": plan.name,
        "files": files,
        "total_bytes": plan.total_bytes(),
        "missing_bytes": plan.missing_bytes(),
        "unknown_sizes": plan.unknown_sizes(),
        "disk_ok": disk_ok,
        "model_index": plan.model_index,
    })
}
