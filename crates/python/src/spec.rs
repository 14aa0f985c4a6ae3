//! Pipeline specs from Python: a file, a spec hosted in a Hub repo, or a dict.
//!
//! A dict is written as JSON by the Python side (`json.dumps(spec, indent=2)`, in the caller's key
//! order) and parsed by `pipefetch_spec` like any spec file: JSON is YAML, so a dict gets exactly
//! the checks and the diagnostics a file gets, with lines and columns in that JSON text (kept on
//! the exception as `spec_text`).

use std::path::{Path, PathBuf};

use pipefetch_fetcher::{Fetcher, FileRequest, SpecOrigin};
use pipefetch_hub_client::Repo;
use pipefetch_spec::PipelineSpec;

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
    /// Parses and validates the spec (downloading it first when it is hosted).
    pub(crate) async fn load(
        &self,
        fetcher: &Fetcher,
        spec_revision: &str,
        offline: bool,
    ) -> Result<(PipelineSpec, SpecOrigin), Failure> {
        match self {
            SpecInput::Dict(text) => load_dict(text),
            SpecInput::Path(spec) => {
                if let Some((repo, file)) = hosted(spec) {
                    load_hosted(fetcher, &repo, file, spec_revision, offline).await
                } else {
                    let path = Path::new(spec);
                    match pipefetch_spec::load_file(path) {
                        Ok(parsed) => Ok((parsed, SpecOrigin::Local(path.to_path_buf()))),
                        Err(diagnostics) => Err(spec_failure(&diagnostics, None)),
                    }
                }
            }
        }
    }
}

/// `ORG/NAME/path.yaml` when `spec` names no local file and has that shape (as the CLI reads it).
fn hosted(spec: &str) -> Option<(String, &str)> {
    let is_hosted = !Path::new(spec).exists()
        && spec.split('/').count() >= 3
        && (spec.ends_with(".yaml") || spec.ends_with(".yml"));
    if !is_hosted {
        return None;
    }
    let mut parts = spec.splitn(3, '/');
    let (org, name, file) = (parts.next()?, parts.next()?, parts.next()?);
    Some((format!("{org}/{name}"), file))
}

async fn load_hosted(
    fetcher: &Fetcher,
    repo_id: &str,
    file: &str,
    revision: &str,
    offline: bool,
) -> Result<(PipelineSpec, SpecOrigin), Failure> {
    let repo = Repo::model(repo_id)?;
    let mut req = FileRequest::new(repo.clone(), file).revision(revision);
    req.local_files_only = offline;
    let local = fetcher.download_file(&req).await?;
    let text = std::fs::read_to_string(&local).map_err(|e| {
        Failure::new(
            "CacheError",
            format!("could not read the hosted spec at {}: {e}", local.display()),
        )
    })?;
    match pipefetch_spec::parse_str(&text, file) {
        Ok(spec) => Ok((
            spec,
            SpecOrigin::Hosted {
                repo,
                revision: revision.to_string(),
                path: file.to_string(),
            },
        )),
        Err(diagnostics) => Err(spec_failure(&diagnostics, Some(&text))),
    }
}

fn load_dict(text: &str) -> Result<(PipelineSpec, SpecOrigin), Failure> {
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
    match pipefetch_spec::parse_str(text, &origin) {
        Ok(spec) => Ok((spec, SpecOrigin::Local(origin))),
        Err(diagnostics) => {
            let renamed: Vec<_> = diagnostics
                .into_iter()
                .map(|mut d| {
                    d.file = DICT_NAME.to_string();
                    d
                })
                .collect();
            Err(spec_failure(&renamed.into(), Some(text)))
        }
    }
}
