//! Lockfiles: the exact bytes a spec resolved to, so that every machine of a fleet, on any day, pulls
//! the same files.
//!
//! A spec names branches (`main`) and preferences (`variant: fp16`); what they resolve to changes
//! when a repo moves. [`Fetcher::lock`] resolves a spec once and records, per file, its target in
//! the folder, where its bytes come from (a Hub repo at a commit, a URL, a local path), its size and
//! its sha256 — plus the spec's own sha256 and the `model_index.json` the folder gets. A locked pull
//! ([`Fetcher::plan_locked`], [`Fetcher::pull_locked`]) resolves nothing: no revision lookup, no
//! listing, no `model_index.json` read; a warm locked pull makes no request at all, and a cold one
//! only the requests its files need. The format is documented in `docs/lock.md`, with its JSON
//! Schema in `schema/pipefetch-lock.schema.json` ([`json_schema`]).
//!
//! The file is JSON, pretty-printed, with files sorted by target and object keys sorted, so it is
//! deterministic and diffs well under version control. Its `version` is checked on reading: another
//! version is an error, never a reinterpretation.

use std::path::{Path, PathBuf};

use pipefetch_spec::PipelineSpec;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::engine::blocking;
use crate::error::{Error, Result};
use crate::pipeline::plan::{Plan, PlanFile, Presence, SpecOrigin, Transform};
use crate::pipeline::pull::{PipelineFolder, PullOptions};
use crate::sources::MirrorOptions;
use crate::sources::mirror::MirroredOrigin;
use crate::verify::Expected;
use crate::{Availability, Fetcher};

/// The lockfile format's version.
pub const LOCK_VERSION: u32 = 1;

/// The exact files of a pipeline, as `pipefetch lock` writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pipefetch lockfile")]
pub struct Lock {
    /// The format version: 1.
    pub version: u32,
    /// The pipeline's name (its folder name).
    pub name: String,
    /// The sha256 of the spec's text when it was locked: a locked pull of an edited spec is refused.
    #[schemars(pattern(r"^[0-9a-f]{64}$"))]
    pub spec_sha256: String,
    /// The `model_index.json` the assembled folder gets.
    pub model_index: Map<String, Value>,
    /// Every file, sorted by target.
    pub files: Vec<LockedFile>,
}

/// One file of a lockfile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    /// Its path in the assembled folder (`unet/diffusion_pytorch_model.safetensors`).
    pub target: String,
    /// The component it belongs to (absent for root files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// The sha256 of its bytes, lowercase hex.
    #[schemars(pattern(r"^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// How it lands in the folder (a link unless said otherwise).
    #[serde(default, skip_serializing_if = "Transform::is_link")]
    pub transform: Transform,
    /// Where its bytes come from.
    pub source: LockedSource,
    /// Another URL the same bytes can be fetched from first, such as a presigned URL of a fleet's
    /// mirror (`pipefetch mirror presign`); the bytes must still hash to `sha256`, and the file
    /// still lands where its source puts it. Never holds a credential other than the URL's own
    /// signature, which expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_url: Option<String>,
}

/// Where a locked file's bytes come from: the `kind` of source that resolved it, and the fields
/// that source needs to find the bytes again (for `hub`: `repo`, `revision`, `commit`, `path`,
/// `etag`; for `url`: `url`; for `local`: `path`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LockedSource {
    /// The source kind (`hub`, `url`, `local`, or one an application registered).
    pub kind: String,
    /// The kind's own fields.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl LockedSource {
    /// A locked source of `kind` whose fields are `fields` serialised (an object).
    pub fn new(kind: &str, fields: &impl Serialize) -> LockedSource {
        let fields = match serde_json::to_value(fields) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        LockedSource {
            kind: kind.to_string(),
            fields,
        }
    }

    /// The kind's fields, read back into its own type.
    pub fn fields<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(Value::Object(self.fields.clone())).map_err(|e| Error::Locked {
            what: format!("a `{}` source entry is malformed: {e}", self.kind),
        })
    }
}

impl Lock {
    /// The lockfile beside a spec file: `flux.yaml` → `flux.lock`.
    pub fn path_for(spec: &Path) -> PathBuf {
        spec.with_extension("lock")
    }

    /// Reads and checks a lockfile.
    pub fn read(path: &Path) -> Result<Lock> {
        let text = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Locked {
                what: format!("there is no lockfile at {}", path.display()),
            },
            _ => Error::io("read", path, e),
        })?;
        Lock::from_json(&text).map_err(|e| match e {
            Error::Locked { what } => Error::Locked {
                what: format!("{}: {what}", path.display()),
            },
            other => other,
        })
    }

    /// Parses a lockfile's text and checks its version and entries.
    pub fn from_json(text: &[u8]) -> Result<Lock> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let version: Version = serde_json::from_slice(text).map_err(|e| Error::Locked {
            what: format!("not a pipefetch lockfile: {e}"),
        })?;
        if version.version != LOCK_VERSION {
            return Err(Error::Locked {
                what: format!(
                    "lockfile version {} is not the version this pipefetch reads ({LOCK_VERSION})",
                    version.version
                ),
            });
        }
        let lock: Lock = serde_json::from_slice(text).map_err(|e| Error::Locked {
            what: format!("malformed lockfile: {e}"),
        })?;
        for file in &lock.files {
            pipefetch_hub_cache::validate_repo_path(&file.target)?;
            if !is_sha256_hex(&file.sha256) {
                return Err(Error::Locked {
                    what: format!("`{}`: `{}` is not a sha256", file.target, file.sha256),
                });
            }
        }
        Ok(lock)
    }

    /// The lockfile's text: pretty JSON, keys sorted, with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the lockfile atomically (a temp file beside it, renamed).
    pub fn write(&self, path: &Path) -> Result<()> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.{:08x}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "lock".into()),
            fastrand::u32(..)
        ));
        std::fs::write(&tmp, self.to_json())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::io("write", path, e)
            })
    }

    /// Fails unless the spec's text is the one that was locked.
    pub fn check_spec(&self, spec_text: &str) -> Result<()> {
        let now = spec_sha256(spec_text);
        if now != self.spec_sha256 {
            return Err(Error::Locked {
                what: format!(
                    "the spec of `{}` changed since it was locked (its sha256 is {}, the lockfile has {})",
                    self.name,
                    &now[..12],
                    &self.spec_sha256[..self.spec_sha256.len().min(12)]
                ),
            });
        }
        Ok(())
    }

    /// The plan of a lock: every file with its origin (behind a mirror when there is one, or when
    /// the file has a `mirror_url`), nothing resolved. Presence is not known yet.
    fn plan(&self, fetcher: &Fetcher, mirror: &MirrorOptions) -> Result<Plan> {
        let mut files = Vec::with_capacity(self.files.len());
        for locked in &self.files {
            let origin = fetcher.sources().unlock(fetcher, locked)?;
            let origin = MirroredOrigin::wrap(
                origin.clone(),
                &locked.sha256,
                locked.mirror_url.as_deref(),
                mirror,
            )?
            .unwrap_or(origin);
            let mut file = PlanFile::new(
                locked.target.clone(),
                origin,
                Some(locked.size),
                Expected::Sha256(locked.sha256.clone()),
            );
            file.component.clone_from(&locked.component);
            file.transform = locked.transform.clone();
            files.push(file);
        }
        Ok(Plan {
            name: self.name.clone(),
            model_index: self.model_index.clone(),
            files,
        })
    }
}

/// The sha256 a lockfile records for a spec's text.
pub fn spec_sha256(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The JSON Schema of the lockfile format (draft 2020-12), pretty-printed with a final newline.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Lock);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Fetcher {
    /// Resolves `spec` to the exact files a pull would fetch and records them, with their sha256,
    /// in a [`Lock`]. `spec_text` is the spec's text (its sha256 goes into the lock).
    ///
    /// Hub LFS files and pinned URLs have a known sha256 and are not downloaded. Other files are
    /// brought into the cache first and hashed: small git-tracked files (configs), URLs without a
    /// pin (their sha256 is only known from their bytes), local files (hashed in place).
    pub async fn lock(
        &self,
        spec: &PipelineSpec,
        origin: &SpecOrigin,
        spec_text: &str,
    ) -> Result<Lock> {
        let mut plan = self.plan(spec, origin, false).await?;
        let known = |f: &PlanFile| matches!(f.expected, Expected::Sha256(_)) && f.size.is_some();
        let to_fetch: Vec<PlanFile> = plan
            .files
            .iter()
            .filter(|f| !known(f) && f.presence != Presence::Cached)
            .cloned()
            .collect();
        if !to_fetch.is_empty() {
            let sub = Plan {
                name: plan.name.clone(),
                model_index: plan.model_index.clone(),
                files: to_fetch,
            };
            self.fetch_plan(&sub).await?;
        }
        for file in &mut plan.files {
            if known(file) {
                continue;
            }
            let path = file.origin.local_path(self)?.ok_or_else(|| {
                Error::Internal(format!("`{}` is not here after fetching it", file.target))
            })?;
            let (sha256, size) = blocking(move || hash_file(&path)).await?;
            if let Expected::Sha256(known) = &file.expected
                && *known != sha256
            {
                return Err(Error::Integrity {
                    source_label: file.origin.describe(),
                    path: file.target.clone(),
                    algorithm: "sha256",
                    expected: known.clone(),
                    actual: sha256,
                });
            }
            file.expected = Expected::Sha256(sha256);
            file.size = Some(size);
        }
        let files = plan
            .files
            .iter()
            .map(|f| LockedFile {
                target: f.target.clone(),
                component: f.component.clone(),
                size: f.size.unwrap_or(0),
                sha256: f.expected.hex().unwrap_or_default().to_string(),
                transform: f.transform.clone(),
                source: f.origin.lock(),
                mirror_url: None,
            })
            .collect();
        Ok(Lock {
            version: LOCK_VERSION,
            name: plan.name,
            spec_sha256: spec_sha256(spec_text),
            model_index: plan.model_index,
            files,
        })
    }

    /// The plan of a lock, with what is already here (stat calls only, never a request).
    pub async fn plan_locked(&self, lock: &Lock) -> Result<Plan> {
        let plan = lock.plan(self, &MirrorOptions::default())?;
        self.with_presence(plan).await
    }

    /// Pulls exactly the files of `lock` (nothing is resolved: a warm pull makes no request) and
    /// assembles the folder. With [`PullOptions::mirror`], every missing file comes from the mirror
    /// first. The lock is kept (without its `mirror_url`s) in `$HF_HOME/pipefetch/locks-v1/`, so
    /// that [`Fetcher::is_available`] answers for the spec later even where the spec cannot be
    /// planned offline.
    pub async fn pull_locked(&self, lock: &Lock, options: &PullOptions) -> Result<PipelineFolder> {
        let plan = lock.plan(self, &options.mirror)?;
        let plan = self.with_presence(plan).await?;
        let folder = self.pull_plan(plan, options).await?;
        let path = self.kept_lock_path(&lock.spec_sha256);
        // A presigned lock's `mirror_url`s are bearer credentials (their signatures, and the
        // session token of temporary keys): they stay in the lockfile their holder chose, never
        // in the cache, which is often a volume a whole team reads. `check` needs only the rest.
        let mut lock = lock.clone();
        for file in &mut lock.files {
            file.mirror_url = None;
        }
        blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
            }
            let unchanged = std::fs::read(&path).is_ok_and(|t| t == lock.to_json().as_bytes());
            if unchanged { Ok(()) } else { lock.write(&path) }
        })
        .await?;
        Ok(folder)
    }

    /// Whether every file of `lock` is here, complete (and, with `verify`, has the locked sha256).
    /// Never a request.
    pub async fn is_available_locked(&self, lock: &Lock, verify: bool) -> Result<Availability> {
        let plan = self.plan_locked(lock).await?;
        Ok(self.check_plan(plan, verify).await)
    }

    /// Where a locked pull keeps the lock of a spec with this text's sha256.
    fn kept_lock_path(&self, spec_sha256: &str) -> PathBuf {
        self.hf_home()
            .join("pipefetch")
            .join(format!("locks-v{LOCK_VERSION}"))
            .join(format!("{spec_sha256}.lock"))
    }

    /// The lock a locked pull kept for a spec with this text, if any.
    pub(crate) fn kept_lock(&self, spec_text: &str) -> Option<Lock> {
        let lock = Lock::read(&self.kept_lock_path(&spec_sha256(spec_text))).ok()?;
        lock.check_spec(spec_text).ok()?;
        Some(lock)
    }
}

/// The sha256 and length of a file. Blocking: it reads the whole file.
fn hash_file(path: &Path) -> Result<(String, u64)> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut len = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}
