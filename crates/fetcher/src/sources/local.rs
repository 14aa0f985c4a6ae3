//! The local source: a component from a folder on this machine (`local_path:`), such as a fine-tuned
//! UNet. Its files are never copied: the assembled folder links to them where they are (absolute
//! links, since the user's folder does not move with `HF_HOME`). A lockfile pins their sha256, and a
//! locked pull re-hashes them, so a file edited since it was locked is an error, not a surprise.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use pipefetch_spec::ComponentSource;
use serde::{Deserialize, Serialize};

use super::{ComponentRequest, FetchContext, FileOrigin, LinkStyle, Origin, PlanContext, Source};
use crate::Fetcher;
use crate::engine::blocking;
use crate::error::{Error, Result};
use crate::lock::{LockedFile, LockedSource};
use crate::pipeline::check::{ProblemKind, verify_file};
use crate::pipeline::plan::{PlanFile, Presence, SpecOrigin, canonicalize_weights};
use crate::url_source::expects_weights;
use crate::verify::Expected;

/// Folders on this machine as a source of pipeline files.
#[derive(Debug, Default)]
pub struct LocalSource;

#[async_trait]
impl Source for LocalSource {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn spec_keys(&self) -> &[&'static str] {
        &["local_path"]
    }

    async fn resolve_component(
        &self,
        cx: &mut PlanContext<'_>,
        component: &ComponentRequest<'_>,
    ) -> Result<Vec<PlanFile>> {
        let name = component.name.to_string();
        let ComponentSource::LocalPath { resolved, .. } = component.source else {
            return Err(Error::Invalid(format!(
                "component `{name}`: the local source cannot resolve `{}` entries",
                component.source.kind()
            )));
        };
        if matches!(cx.spec_origin(), SpecOrigin::Hosted { .. }) {
            return Err(Error::Invalid(format!(
                "component `{name}`: `local_path` cannot be used in a spec hosted in a repo"
            )));
        }
        let (dir, library) = (resolved.clone(), component.library.map(str::to_string));
        blocking(move || local_component(&dir, &name, library.as_deref())).await
    }

    fn unlock(&self, _fetcher: &Fetcher, locked: &LockedFile) -> Result<Origin> {
        let fields: LocalFields = locked.source.fields()?;
        if !fields.path.is_absolute() {
            return Err(Error::Invalid(format!(
                "`{}`: the lockfile's local path {} is not absolute",
                locked.target,
                fields.path.display()
            )));
        }
        Ok(Origin::new(LocalFile {
            path: fields.path,
            locked: true,
        }))
    }
}

/// What a lockfile records of a local file (besides its size and sha256).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LocalFields {
    /// The file's absolute path on the machine that locked it.
    path: PathBuf,
}

/// A file on this machine.
#[derive(Debug, Clone)]
pub struct LocalFile {
    path: PathBuf,
    /// From a lockfile: the bytes must hash to the locked sha256.
    locked: bool,
}

#[async_trait]
impl FileOrigin for LocalFile {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "local", "path": self.path })
    }

    fn presence(&self, _fetcher: &Fetcher, file: &PlanFile) -> Result<Presence> {
        Ok(match std::fs::metadata(&self.path) {
            Ok(m) if m.is_file() && file.size.is_none_or(|s| s == m.len()) => Presence::Cached,
            _ => Presence::Missing,
        })
    }

    fn problem(&self, _fetcher: &Fetcher, file: &PlanFile, verify: bool) -> Option<ProblemKind> {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.is_file() => match file.size {
                Some(size) if size != m.len() => Some(ProblemKind::WrongSize {
                    actual: m.len(),
                    expected: size,
                }),
                _ if verify => verify_file(&self.path, &file.expected, m.len()),
                _ => None,
            },
            _ => Some(ProblemKind::Missing),
        }
    }

    async fn fetch(&self, _cx: &FetchContext<'_>, file: &PlanFile) -> Result<Option<u64>> {
        if !self.locked {
            return Ok(None);
        }
        // A locked local file must still be the one locked: hash it (nothing crosses the network).
        let (path, expected, size, target) = (
            self.path.clone(),
            file.expected.clone(),
            file.size,
            file.target.clone(),
        );
        blocking(move || {
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::io("read", &path, e))?
                .len();
            match verify_file(&path, &expected, len) {
                Some(ProblemKind::Corrupt { expected, actual }) => Err(Error::Locked {
                    what: format!(
                        "`{target}`: {} now has sha256 {actual}, the lockfile has {expected}",
                        path.display()
                    ),
                }),
                _ if size.is_some_and(|s| s != len) => Err(Error::Locked {
                    what: format!(
                        "`{target}`: {} now has {len} bytes, the lockfile has {}",
                        path.display(),
                        size.unwrap_or(0)
                    ),
                }),
                _ => Ok(None),
            }
        })
        .await
    }

    fn local_path(&self, _fetcher: &Fetcher) -> Result<Option<PathBuf>> {
        Ok(self.path.is_file().then(|| self.path.clone()))
    }

    fn link_style(&self) -> LinkStyle {
        LinkStyle::Absolute
    }

    fn lock(&self) -> LockedSource {
        LockedSource::new(
            "local",
            &LocalFields {
                path: self.path.clone(),
            },
        )
    }
}

/// The files of a component in a local folder: it must hold a config and, for a model, weights.
fn local_component(dir: &Path, name: &str, library: Option<&str>) -> Result<Vec<PlanFile>> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        Error::Invalid(format!(
            "component `{name}`: local folder {} cannot be read: {e}",
            dir.display()
        ))
    })?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "component `{name}`: {} is not a folder",
            dir.display()
        )));
    }
    let mut found: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io("list", &d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &d, e))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or(file_name);
                found.push((rel, path, meta.len()));
            }
        }
    }
    found.sort();
    let has = |n: &str| found.iter().any(|(rel, _, _)| rel == n);
    let weights: Vec<usize> = found
        .iter()
        .enumerate()
        .filter(|(_, (rel, _, _))| !rel.contains('/') && expects_weights(rel))
        .map(|(i, _)| i)
        .collect();
    if !weights.is_empty() && !has("config.json") {
        return Err(Error::Invalid(format!(
            "component `{name}`: {} has weights but no config.json (diffusers needs it to build the model)",
            dir.display()
        )));
    }
    if found.is_empty() {
        return Err(Error::Invalid(format!(
            "component `{name}`: {} is empty",
            dir.display()
        )));
    }
    let is_model = matches!(library, Some("diffusers") | Some("transformers"))
        && !has("scheduler_config.json")
        && !has("tokenizer_config.json")
        && !has("preprocessor_config.json");
    if is_model && weights.is_empty() {
        return Err(Error::Invalid(format!(
            "component `{name}`: {} holds no weights (*.safetensors or *.bin next to config.json)",
            dir.display()
        )));
    }
    let mut out: Vec<PlanFile> = found
        .into_iter()
        .map(|(rel, path, size)| {
            let origin = Origin::new(LocalFile {
                path,
                locked: false,
            });
            let mut file = PlanFile::new(
                format!("{name}/{rel}"),
                origin,
                Some(size),
                Expected::Unknown,
            );
            file.component = Some(name.to_string());
            file
        })
        .collect();
    canonicalize_weights(&mut out, &weights, name, library);
    Ok(out)
}
