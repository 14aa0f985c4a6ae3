//! The local source: a component from a folder on this machine (`local_path:`), such as a fine-tuned
//! UNet. Its files are never copied: the assembled folder links to them where they are (absolute
//! links, since the user's folder does not move with `HF_HOME`). A lockfile pins their sha256, and a
//! locked pull re-hashes them, so a file edited since it was locked is an error, not a surprise.
//!
//! A fleet machine pulling a lock made elsewhere has no such folder: there, a locked local file
//! comes from the fleet's mirror into a content-addressed store
//! (`$HF_HOME/pipefetch/content-v1/sha256/<hex>`), and is used from there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use pipefetch_spec::ComponentSource;
use serde::{Deserialize, Serialize};

use super::{
    ComponentRequest, FetchContext, FileOrigin, LandingPlace, LinkStyle, Origin, PlanContext,
    Source,
};
use crate::Fetcher;
use crate::engine::{ContentBlob, blocking};
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
            sha256: Some(locked.sha256.clone()),
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
    /// From a lockfile: the sha256 its bytes must have.
    sha256: Option<String>,
}

impl LocalFile {
    /// The copy of a locked file in the content store, for machines that lack its folder.
    fn stored(&self, fetcher: &Fetcher) -> Option<ContentBlob> {
        let sha256 = self.sha256.as_deref()?;
        Some(ContentBlob::local_store(
            &fetcher.hf_home().join("pipefetch"),
            sha256,
        ))
    }

    /// Where the bytes are: the file itself when it is there (with the locked size), else a
    /// locked file's copy in the content store.
    fn found(&self, fetcher: &Fetcher, size: Option<u64>) -> Option<PathBuf> {
        let fits = |p: &Path| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && size.is_none_or(|s| s == m.len()))
        };
        if fits(&self.path) {
            return Some(self.path.clone());
        }
        let stored = self.stored(fetcher)?.path();
        fits(&stored).then_some(stored)
    }
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

    fn presence(&self, fetcher: &Fetcher, file: &PlanFile) -> Result<Presence> {
        Ok(match self.found(fetcher, file.size) {
            Some(_) => Presence::Cached,
            None => Presence::Missing,
        })
    }

    fn problem(&self, fetcher: &Fetcher, file: &PlanFile, verify: bool) -> Option<ProblemKind> {
        if let Some(path) = self.found(fetcher, file.size) {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            return verify
                .then(|| verify_file(&path, &file.expected, len))
                .flatten();
        }
        match (std::fs::metadata(&self.path), file.size) {
            (Ok(m), Some(size)) if m.is_file() && m.len() != size => Some(ProblemKind::WrongSize {
                actual: m.len(),
                expected: size,
            }),
            _ => Some(ProblemKind::Missing),
        }
    }

    async fn fetch(&self, cx: &FetchContext<'_>, file: &PlanFile) -> Result<Option<u64>> {
        if self.sha256.is_none() {
            return Ok(None);
        }
        // A locked local file must still be the one locked: hash it (nothing crosses the network).
        let fetcher = cx.fetcher().clone();
        let (this, expected, size, target) = (
            self.clone(),
            file.expected.clone(),
            file.size,
            file.target.clone(),
        );
        blocking(move || {
            let Some(path) = this.found(&fetcher, None) else {
                return Err(Error::Locked {
                    what: format!(
                        "`{target}`: the local file {} is not on this machine (pull with a mirror that has it: `--mirror`)",
                        this.path.display()
                    ),
                });
            };
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

    fn local_path(&self, fetcher: &Fetcher) -> Result<Option<PathBuf>> {
        Ok(self.found(fetcher, None))
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

    /// From a mirror, a locked file lands in the content store; its own folder is left alone.
    fn landing(&self, fetcher: &Fetcher, _file: &PlanFile) -> Result<Option<LandingPlace>> {
        Ok(self
            .stored(fetcher)
            .map(|blob| LandingPlace(Arc::new(blob))))
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
            let origin = Origin::new(LocalFile { path, sha256: None });
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
