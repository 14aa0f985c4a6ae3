//! "Is this pipeline here?" — answered from disk alone, never with a request.
//!
//! The plan is computed cache-only (commit from `refs/`, listing from `trees/<commit>.json`,
//! `model_index.json` and shard indexes from the snapshot), then every file is checked with `stat`:
//! present, complete (size), not a dangling link, no interrupted download. `verify` re-hashes every
//! file against its digest. A partial pipeline is never reported available.

use std::path::{Path, PathBuf};

use pipefetch_spec::PipelineSpec;
use serde::Serialize;

use super::assemble::{self, MANIFEST};
use super::plan::{Plan, SpecOrigin};
use crate::engine::blocking;
use crate::error::Result;
use crate::verify::Expected;
use crate::{Fetcher, LoadedSpec};

/// The answer of [`Fetcher::is_available_locally`].
#[derive(Debug, Clone, Serialize)]
pub struct Availability {
    /// True only when every file is present and complete (and verified, when asked).
    pub available: bool,
    /// Files the pipeline needs (0 when it could not even be planned offline).
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Everything missing or damaged.
    pub problems: Vec<Problem>,
}

/// One missing or damaged file.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Its path in the pipeline folder (or `*` when the pipeline cannot be planned offline).
    pub target: String,
    /// Where it comes from.
    pub origin: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with a file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// Not downloaded.
    Missing,
    /// Partly downloaded (an interrupted transfer).
    Incomplete {
        /// Bytes on disk.
        bytes: u64,
        /// Bytes expected.
        size: u64,
    },
    /// Present with the wrong size (truncated or replaced).
    WrongSize {
        /// Bytes on disk.
        actual: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// A snapshot link whose blob is gone.
    DanglingLink,
    /// Re-hashing found other bytes than the source announced.
    Corrupt {
        /// The expected digest.
        expected: String,
        /// The digest on disk.
        actual: String,
    },
    /// The pipeline cannot be planned from the cache (e.g. its `model_index.json` or file listing
    /// was never downloaded).
    NotPlannable {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.kind {
            ProblemKind::Missing => "missing".to_string(),
            ProblemKind::Incomplete { bytes, size } => {
                format!("incomplete download ({bytes} of {size} bytes)")
            }
            ProblemKind::WrongSize { actual, expected } => {
                format!("wrong size ({actual} bytes, expected {expected})")
            }
            ProblemKind::DanglingLink => "dangling link (its blob is gone)".to_string(),
            ProblemKind::Corrupt { expected, actual } => {
                format!("corrupt (hash {actual}, expected {expected})")
            }
            ProblemKind::NotPlannable { reason } => return write!(f, "{reason}"),
        };
        write!(f, "{}: {what} [{}]", self.target, self.origin)
    }
}

impl Fetcher {
    /// Whether every file `spec` needs is here, complete; with `verify`, also re-hashed. Makes no
    /// request at all, whatever the fetcher's online setting.
    pub async fn is_available_locally(
        &self,
        spec: &PipelineSpec,
        origin: &SpecOrigin,
        verify: bool,
    ) -> Result<Availability> {
        let plan = match self.plan(spec, origin, true).await {
            Ok(plan) => plan,
            Err(e) => {
                return Ok(Availability {
                    available: false,
                    files: 0,
                    bytes: 0,
                    problems: vec![Problem {
                        target: "*".into(),
                        origin: spec.repo_id.to_string(),
                        kind: ProblemKind::NotPlannable {
                            reason: crate::render_chain(&e),
                        },
                    }],
                });
            }
        };
        Ok(self.check_plan(plan, verify).await)
    }
}

impl Fetcher {
    /// Whether the pipeline of `spec` is here: planned from the cache alone, or, where that is not
    /// possible (a pull from a lockfile or a mirror leaves no listing or `model_index.json` of the
    /// base repo in the cache), from the spec's lockfile beside it, else from the lock the last
    /// locked pull of exactly this spec kept. Never a request.
    pub async fn is_available(&self, spec: &LoadedSpec, verify: bool) -> Result<Availability> {
        let planned = self
            .is_available_locally(&spec.spec, &spec.origin, verify)
            .await?;
        let unplannable = planned
            .problems
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::NotPlannable { .. }));
        if !unplannable {
            return Ok(planned);
        }
        let lock = spec
            .read_lock(None)
            .ok()
            .or_else(|| self.kept_lock(&spec.text));
        match lock {
            Some(lock) => self.is_available_locked(&lock, verify).await,
            None => Ok(planned),
        }
    }

    /// Checks every file of `plan` on disk (blocking work on the blocking pool).
    pub(crate) async fn check_plan(&self, plan: Plan, verify: bool) -> Availability {
        let fetcher = self.clone();
        let checked = blocking(move || Ok(check_files(&fetcher, &plan, verify))).await;
        checked.unwrap_or_else(|e| Availability {
            available: false,
            files: 0,
            bytes: 0,
            problems: vec![Problem {
                target: "*".into(),
                origin: String::new(),
                kind: ProblemKind::NotPlannable {
                    reason: crate::render_chain(&e),
                },
            }],
        })
    }
}

fn check_files(fetcher: &Fetcher, plan: &Plan, verify: bool) -> Availability {
    let mut problems = Vec::new();
    for file in &plan.files {
        if let Some(kind) = file.origin.problem(fetcher, file, verify) {
            problems.push(Problem {
                target: file.target.clone(),
                origin: file.origin.describe(),
                kind,
            });
        }
    }
    Availability {
        available: problems.is_empty(),
        files: plan.files.len(),
        bytes: plan.total_bytes(),
        problems,
    }
}

/// Re-hashes `path` against `expected` (`size` is the file's length, for git blob ids);
/// `Some(Corrupt)` when it does not match, `None` when it does or nothing is expected. Blocking.
pub(crate) fn verify_file(path: &Path, expected: &Expected, size: u64) -> Option<ProblemKind> {
    let want = expected.hex()?;
    let mut hasher = expected.hasher(size);
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let got = hasher.finish_hex();
    (got != want).then(|| ProblemKind::Corrupt {
        expected: want.to_string(),
        actual: got,
    })
}

/// An assembled pipeline folder, as `pipefetch list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LocalPipeline {
    /// Its name.
    pub name: String,
    /// Its folder.
    pub path: PathBuf,
    /// Files it holds.
    pub files: usize,
    /// Their bytes (as recorded at assembly).
    pub bytes: u64,
    /// Whether every file resolves to a file of the recorded size.
    pub complete: bool,
    /// The first few broken files.
    pub broken: Vec<String>,
}

/// The pipelines assembled under `dir` (`$HF_HOME/pipelines`), by name. Stat calls only.
pub fn list_pipelines(dir: &Path) -> Vec<LocalPipeline> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') || !path.join(MANIFEST).is_file() {
            continue;
        }
        let Some(manifest) = assemble::read_manifest(&path) else {
            continue;
        };
        let mut broken = Vec::new();
        for f in &manifest.files {
            let ok = std::fs::metadata(path.join(&f.target)).is_ok_and(|m| {
                m.is_file()
                    && f.size
                        .is_none_or(|s| s == m.len() || f.target.ends_with(".index.json"))
            });
            if !ok {
                broken.push(f.target.clone());
            }
        }
        out.push(LocalPipeline {
            name: manifest.name.clone(),
            path,
            files: manifest.files.len(),
            bytes: manifest.files.iter().filter_map(|f| f.size).sum(),
            complete: broken.is_empty(),
            broken: broken.into_iter().take(5).collect(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
