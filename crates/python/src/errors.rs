//! Library errors as Python exceptions.
//!
//! The exception classes live in Python (`pipefetch/errors.py`): their hierarchy mirrors
//! huggingface_hub's (`RepositoryNotFoundError` is an `HfHubHTTPError` is an `OSError`, …), which is
//! easier to read and to keep in step there. Here each error becomes a [`Failure`]: the class name,
//! the text the CLI prints (the message, each cause that adds something, the first hint any layer
//! knows) and attributes. Failures are built without the GIL, in the task that failed, and turned
//! into exceptions by the thread that collects the result.

use pipefetch_hub_client::Error as HubError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Value, json};

/// An error on its way to Python.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exception class in `pipefetch.errors`.
    pub class: &'static str,
    /// `str(exception)`.
    pub message: String,
    /// Attributes set on the exception (`hint`, `causes`, `status_code`, `diagnostics`, …).
    pub attrs: serde_json::Map<String, Value>,
}

impl Failure {
    /// A failure of `class` with this message and no attributes.
    pub fn new(class: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
            attrs: serde_json::Map::new(),
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, name: &str, value: Value) -> Failure {
        self.attrs.insert(name.to_string(), value);
        self
    }

    /// The call was cancelled (Ctrl-C, a raising callback, an asyncio cancellation); whoever
    /// cancelled raises their own exception, so this one is rarely seen.
    pub fn cancelled() -> Failure {
        Failure::new(
            "PipefetchError",
            "the download was cancelled; what was downloaded is kept and a rerun resumes it",
        )
    }

    /// The Python exception.
    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        let build = || -> PyResult<PyErr> {
            let errors = py.import("pipefetch.errors")?;
            let attrs = crate::convert::json_to_py(py, &Value::Object(self.attrs))?;
            let attrs = attrs.cast_into::<PyDict>()?;
            let exc = errors.getattr("_from_native")?.call1((
                self.class,
                self.message.as_str(),
                attrs,
            ))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|e| e)
    }
}

/// The CLI's rendering of an error: the message, then `caused by:` for each cause that adds
/// something, then the hint. The CLI prints `error: ` before the first line.
fn render(err: &(dyn std::error::Error + 'static), hint: Option<&str>) -> (String, Vec<String>) {
    let causes = pipefetch_fetcher::distinct_causes(err);
    let mut text = err.to_string();
    for cause in &causes {
        text.push_str("\n  caused by: ");
        text.push_str(cause);
    }
    if let Some(hint) = hint {
        text.push_str("\n  hint: ");
        text.push_str(hint);
    }
    (text, causes)
}

/// The first hint any layer of the chain knows (as the CLI finds it).
fn hint_of(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut layer = Some(err);
    while let Some(e) = layer {
        if let Some(hint) = pipefetch_fetcher::hint_of_layer(e) {
            return Some(hint);
        }
        layer = e.source();
    }
    None
}

/// The deepest Hub client error of the chain worth naming (retries unwrapped to their last error).
fn hub_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a HubError> {
    let mut cur = Some(err);
    let mut found = None;
    while let Some(e) = cur {
        // Layers keep the client's error boxed (it is large); look through the box too.
        if let Some(h) = e
            .downcast_ref::<HubError>()
            .or_else(|| e.downcast_ref::<Box<HubError>>().map(|b| &**b))
        {
            found = Some(h);
        }
        cur = e.source();
    }
    found
}

/// huggingface_hub's class for a client error, with the attributes it carries.
fn hub_class(e: &HubError, transfer: bool) -> (&'static str, Value) {
    match e {
        HubError::RepoNotFound { repo, .. } => (
            "RepositoryNotFoundError",
            json!({"repo_id": repo.id.as_str()}),
        ),
        HubError::GatedRepo {
            repo,
            authenticated,
            ..
        } => (
            "GatedRepoError",
            json!({"repo_id": repo.id.as_str(), "status_code": if *authenticated { 403 } else { 401 }}),
        ),
        HubError::DisabledRepo { repo } => {
            ("DisabledRepoError", json!({"repo_id": repo.id.as_str()}))
        }
        HubError::RevisionNotFound { repo, revision } => (
            "RevisionNotFoundError",
            json!({"repo_id": repo.id.as_str(), "revision": revision, "status_code": 404}),
        ),
        HubError::EntryNotFound {
            repo,
            revision,
            path,
            ..
        } => (
            "RemoteEntryNotFoundError",
            json!({"repo_id": repo.id.as_str(), "revision": revision, "path": path, "status_code": 404}),
        ),
        HubError::Offline { .. } => ("OfflineModeIsEnabled", json!({})),
        HubError::InvalidToken { .. } => ("HfHubHTTPError", json!({"status_code": 401})),
        HubError::RateLimited { .. } => ("HfHubHTTPError", json!({"status_code": 429})),
        HubError::Http { status, .. } => ("HfHubHTTPError", json!({"status_code": status})),
        HubError::InvalidRepoId { .. } | HubError::InvalidRepoType { .. } => {
            ("HFValidationError", json!({}))
        }
        HubError::RetriesExhausted { last, .. } => hub_class(last, transfer),
        // The Hub could not be reached for metadata: huggingface_hub says the file is neither
        // reachable nor cached. Bytes that stop mid-transfer are a download error.
        e if e.is_network() && !transfer => ("LocalEntryNotFoundError", json!({})),
        _ => ("DownloadError", json!({})),
    }
}

impl From<pipefetch_fetcher::Error> for Failure {
    fn from(err: pipefetch_fetcher::Error) -> Failure {
        use pipefetch_fetcher::Error as E;
        let hint = hint_of(&err);
        let (message, causes) = render(&err, hint.as_deref());
        let (class, attrs) = match &err {
            E::NotCached {
                repo,
                revision,
                path,
                ..
            } => (
                "LocalEntryNotFoundError",
                json!({"repo_id": repo, "revision": revision, "path": path}),
            ),
            E::Integrity { .. } | E::SizeMismatch { .. } | E::PinMismatch { .. } => {
                ("IntegrityError", json!({}))
            }
            E::NotWeights { url, .. } => ("DownloadError", json!({"url": url})),
            E::NotEnoughSpace {
                needed, available, ..
            } => (
                "NotEnoughSpaceError",
                json!({"needed": needed, "available": available}),
            ),
            E::DiskFull { .. } => ("NotEnoughSpaceError", json!({})),
            E::Plan { problems } => ("PlanError", json!({"problems": problems})),
            E::Select(_) => ("PlanError", json!({})),
            E::Invalid(_) => ("HFValidationError", json!({})),
            E::Cache(_) | E::Io { .. } => ("CacheError", json!({})),
            E::Hub { source, .. } => hub_class(source, false),
            E::Transfer { source, .. } | E::UrlTransfer { source, .. } => hub_class(source, true),
            _ => match hub_error(&err) {
                Some(h) => hub_class(h, false),
                None => ("PipefetchError", json!({})),
            },
        };
        let mut failure = Failure::new(class, message)
            .attr("hint", hint.map_or(Value::Null, Value::String))
            .attr("causes", json!(causes));
        if let Value::Object(extra) = attrs {
            failure.attrs.extend(extra);
        }
        failure
    }
}

impl From<pipefetch_hub_cache::Error> for Failure {
    fn from(err: pipefetch_hub_cache::Error) -> Failure {
        let hint = hint_of(&err);
        let (message, causes) = render(&err, hint.as_deref());
        Failure::new("CacheError", message)
            .attr("hint", hint.map_or(Value::Null, Value::String))
            .attr("causes", json!(causes))
    }
}

impl From<pipefetch_hub_client::Error> for Failure {
    fn from(err: pipefetch_hub_client::Error) -> Failure {
        let hint = err.hint();
        let (message, causes) = render(&err, hint.as_deref());
        let (class, attrs) = hub_class(&err, false);
        let mut failure = Failure::new(class, message)
            .attr("hint", hint.map_or(Value::Null, Value::String))
            .attr("causes", json!(causes));
        if let Value::Object(extra) = attrs {
            failure.attrs.extend(extra);
        }
        failure
    }
}

/// Every diagnostic of an invalid spec, rendered as `pipefetch validate` prints them.
pub(crate) fn spec_failure(
    diagnostics: &pipefetch_spec::Diagnostics,
    text: Option<&str>,
) -> Failure {
    let items: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            json!({
                "file": d.file,
                "line": d.line,
                "column": d.column,
                "width": d.width,
                "severity": match d.severity {
                    pipefetch_spec::Severity::Warning => "warning",
                    _ => "error",
                },
                "message": d.message,
                "help": d.help,
                "excerpt": d.excerpt,
                "rendered": d.render(false),
            })
        })
        .collect();
    Failure::new("SpecError", diagnostics.render(false))
        .attr("diagnostics", Value::Array(items))
        .attr(
            "spec_text",
            text.map_or(Value::Null, |t| Value::String(t.into())),
        )
}
