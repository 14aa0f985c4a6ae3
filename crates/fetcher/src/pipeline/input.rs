//! Reading a spec the way every front end does: a local file, a spec hosted in a Hub repo
//! (`ORG/NAME/path/spec.yaml`, when no such local file exists), or text held in memory (a Python
//! dict as JSON). The result keeps the spec's text, whose sha256 a lockfile records and checks, and
//! where the spec's lockfile goes by default.

use std::path::{Path, PathBuf};

use pipefetch_hub_client::Repo;
use pipefetch_spec::{Diagnostics, PipelineSpec};

use super::plan::SpecOrigin;
use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::{Fetcher, FileRequest};

/// A spec as read for planning, pulling or locking.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The typed spec.
    pub spec: PipelineSpec,
    /// Where it was read from.
    pub origin: SpecOrigin,
    /// The text it was parsed from.
    pub text: String,
    /// Where its lockfile goes unless told otherwise: beside a local file (`flux.yaml` →
    /// `flux.lock`), or `<stem>.lock` in the current folder for a hosted spec or text.
    pub lockfile: PathBuf,
}

/// Why a spec could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpecLoadError {
    /// The text is not a valid spec: every problem, with its line and column.
    Invalid {
        /// The problems.
        diagnostics: Diagnostics,
        /// The text, when it was read (a hosted spec's, for showing excerpts).
        text: Option<String>,
    },
    /// The spec could not be fetched (a hosted spec) or read.
    Fetch(Error),
}

impl From<Error> for SpecLoadError {
    fn from(e: Error) -> SpecLoadError {
        SpecLoadError::Fetch(e)
    }
}

impl std::fmt::Display for SpecLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecLoadError::Invalid { diagnostics, .. } => write!(f, "{diagnostics}"),
            SpecLoadError::Fetch(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SpecLoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpecLoadError::Invalid { .. } => None,
            SpecLoadError::Fetch(e) => Some(e),
        }
    }
}

/// The repo and path of a hosted spec, `ORG/NAME/path/spec.yaml`, when `spec` names no local file
/// and has that shape.
pub fn hosted_spec(spec: &str) -> Option<(String, &str)> {
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

impl Fetcher {
    /// Reads `spec`: a local file, or `ORG/NAME/path/spec.yaml` hosted in a Hub repo at `revision`
    /// (downloaded into the cache like any file; with `offline`, only from the cache). URLs may use
    /// the schemes of every registered source.
    pub async fn load_spec(
        &self,
        spec: &str,
        revision: &str,
        offline: bool,
    ) -> Result<LoadedSpec, SpecLoadError> {
        let options = self.spec_options();
        let Some((repo_id, file)) = hosted_spec(spec) else {
            let path = Path::new(spec);
            // A read error comes back from the loader as a diagnostic, like any other problem.
            let text = pipefetch_spec::read_spec_file(path).unwrap_or_default();
            let parsed = pipefetch_spec::load_file_with(path, &options).map_err(|diagnostics| {
                SpecLoadError::Invalid {
                    diagnostics,
                    text: None,
                }
            })?;
            return Ok(LoadedSpec {
                spec: parsed,
                origin: SpecOrigin::Local(path.to_path_buf()),
                text,
                lockfile: Lock::path_for(path),
            });
        };
        let repo = Repo::model(&repo_id).map_err(|e| {
            Error::hub(
                format!("`{spec}` is neither a file nor ORG/NAME/path.yaml"),
                e,
            )
        })?;
        let mut req = FileRequest::new(repo.clone(), file).revision(revision);
        req.local_files_only = offline;
        let local = self.download_file(&req).await.map_err(|e| {
            SpecLoadError::Fetch(Error::Context {
                what: format!("could not get the hosted spec {spec}"),
                source: Box::new(e),
            })
        })?;
        let text = std::fs::read_to_string(&local).map_err(|e| Error::io("read", &local, e))?;
        let parsed =
            pipefetch_spec::parse_str_with(&text, file, &options).map_err(|diagnostics| {
                SpecLoadError::Invalid {
                    diagnostics,
                    text: Some(text.clone()),
                }
            })?;
        Ok(LoadedSpec {
            spec: parsed,
            origin: SpecOrigin::Hosted {
                repo,
                revision: revision.to_string(),
                path: file.to_string(),
            },
            lockfile: stem_lockfile(file),
            text,
        })
    }

    /// Reads a spec held in memory, named `origin` (its folder resolves relative `local_path`s,
    /// its stem is the default name).
    pub fn load_spec_text(&self, text: &str, origin: &Path) -> Result<LoadedSpec, SpecLoadError> {
        let parsed = pipefetch_spec::parse_str_with(text, origin, &self.spec_options()).map_err(
            |diagnostics| SpecLoadError::Invalid {
                diagnostics,
                text: Some(text.to_string()),
            },
        )?;
        Ok(LoadedSpec {
            spec: parsed,
            origin: SpecOrigin::Local(origin.to_path_buf()),
            text: text.to_string(),
            lockfile: stem_lockfile(&origin.to_string_lossy()),
        })
    }
}

impl LoadedSpec {
    /// The spec's lockfile (`path`, else its default), checked against the spec's text.
    pub fn read_lock(&self, path: Option<&Path>) -> Result<Lock> {
        let path = path.unwrap_or(&self.lockfile);
        let lock = Lock::read(path).map_err(|e| match e {
            Error::Locked { what } if !path.exists() => Error::Locked {
                what: format!("{what}; create it with `pipefetch lock`"),
            },
            other => other,
        })?;
        lock.check_spec(&self.text)?;
        Ok(lock)
    }
}

/// `<stem>.lock` in the current folder.
fn stem_lockfile(file: &str) -> PathBuf {
    let stem = Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".into());
    PathBuf::from(format!("{stem}.lock"))
}
