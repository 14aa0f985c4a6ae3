//! Pipeline specs from Python: a file, a spec hosted in a Hub repo, or a dict.
//!
//! A dict is written as JSON by the Python side (`json.dumps(spec, indent=2)`, in the caller's key
//! order) and parsed by `pipefetch_spec` like any spec file: JSON is YAML, so a dict gets exactly
//! the checks and the diagnostics a file gets, with lines and columns in that JSON text (kept on
//! the exception as `spec_text`).

use std::path::PathBuf;

use pipefetch_fetcher::{Fetcher, LoadedSpec, SpecLoadError};

use crate::errors::{Failure, spec_failure};

/// What the caller passed as `spec`.
#[derive(Debug, Clone)]
pub(crate) enum SpecInput {
    /// A path, or `ORG/NAME/path.yaml` when no such file exists.
    Path(String),
    /// The JSON text of a dict.
    Dict(String),
}

/// How diagnostics name a dict spec.
const DICT_NAME: &str = "<dict>";

impl SpecInput {
    /// Parses and validates the spec (downloading it first when it is hosted), as the CLI does.
    pub(crate) async fn load(
        &self,
        fetcher: &Fetcher,
        spec_revision: &str,
        offline: bool,
    ) -> Result<LoadedSpec, Failure> {
        match self {
            SpecInput::Dict(text) => load_dict(fetcher, text),
            SpecInput::Path(spec) => fetcher
                .load_spec(spec, spec_revision, offline)
                .await
                .map_err(|e| failure(e, None)),
        }
    }
}

fn failure(e: SpecLoadError, dict_text: Option<&str>) -> Failure {
    match e {
        SpecLoadError::Invalid { diagnostics, text } => match dict_text {
            Some(dict) => {
                let renamed: Vec<_> = diagnostics
                    .into_iter()
                    .map(|mut d| {
                        d.file = DICT_NAME.to_string();
                        d
                    })
                    .collect();
                spec_failure(&renamed.into(), Some(dict))
            }
            None => spec_failure(&diagnostics, text.as_deref()),
        },
        SpecLoadError::Fetch(e) => e.into(),
        other => Failure::new("PipefetchError", other.to_string()),
    }
}

fn load_dict(fetcher: &Fetcher, text: &str) -> Result<LoadedSpec, Failure> {
    // The origin gives relative `local_path`s their folder (the working directory, as for a spec
    // file given by a relative path) and the default name: the base repo's name, as a file
    // `NAME.json` would get.
    let stem = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("repo_id")
                .and_then(|r| r.as_str())
                .and_then(|r| r.rsplit('/').next())
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "pipeline".to_string());
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let origin = dir.join(format!("{stem}.json"));
    fetcher
        .load_spec_text(text, &origin)
        .map_err(|e| failure(e, Some(text)))
}
