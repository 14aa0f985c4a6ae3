//! Assembling a pipeline folder: `model_index.json`, one folder per component, relative symlinks into
//! the caches (never copies of weights), and a manifest.
//!
//! The folder is built under a temporary name beside its destination and swapped in with renames,
//! so a reader sees the old folder or the new one, never a half-built one. A folder that pipefetch
//! did not build (no manifest) is never replaced: `--out ~` must not wipe a home folder.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::{Plan, Transform};
use super::select;
use crate::Fetcher;
use crate::error::{Error, Result};
use crate::sources::LinkStyle;

/// The manifest's file name inside an assembled folder.
pub const MANIFEST: &str = ".pipefetch.json";
/// The manifest's format version.
pub const MANIFEST_VERSION: u32 = 1;

/// What `.pipefetch.json` records about an assembled folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// The pipeline's name.
    pub name: String,
    /// Seconds since the Unix epoch when it was assembled.
    pub assembled_at: u64,
    /// Every file, in target order.
    pub files: Vec<ManifestFile>,
}

/// One file of a [`Manifest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its path in the folder.
    pub target: String,
    /// Where it came from (`org/name/path@commit`, a URL, a local path).
    pub origin: String,
    /// Its size when known.
    pub size: Option<u64>,
    /// `sha256:…` / `git-sha1:…` when known.
    pub digest: Option<String>,
}

/// Builds the folder for `plan` at `out` (blocking file-system work).
pub(crate) fn assemble(fetcher: &Fetcher, plan: &Plan, out: &Path) -> Result<PathBuf> {
    let out = absolute(out)?;
    if let Ok(meta) = fs::symlink_metadata(&out) {
        let ours = out.join(MANIFEST).is_file();
        let empty = meta.is_dir()
            && fs::read_dir(&out)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
        if !meta.is_dir() || !(ours || empty) {
            return Err(Error::Invalid(format!(
                "refusing to replace {}: it exists and is not a pipeline folder pipefetch assembled (no {MANIFEST}); choose another --out or remove it",
                out.display()
            )));
        }
    }
    let parent = out
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{} has no parent folder", out.display())))?;
    fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    let base = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| plan.name.clone());
    remove_stale_leftovers(parent, &base);
    let tmp = parent.join(format!(".{base}.{:08x}.tmp", fastrand::u32(..)));
    let built = build(fetcher, plan, &tmp);
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    swap_in(&tmp, &out, parent, &base)?;
    Ok(out)
}

fn build(fetcher: &Fetcher, plan: &Plan, dir: &Path) -> Result<()> {
    fs::create_dir(dir).map_err(|e| Error::io("create", dir, e))?;
    let index = serde_json::to_vec_pretty(&plan.model_index)
        .map_err(|e| Error::Internal(format!("model_index: {e}")))?;
    write_file(&dir.join("model_index.json"), &index)?;
    let symlinks = fetcher.cache().symlinks_supported();
    let mut manifest_files = Vec::with_capacity(plan.files.len());
    for file in &plan.files {
        pipefetch_hub_cache::validate_repo_path(&file.target)?;
        let dest = dir.join(&file.target);
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p).map_err(|e| Error::io("create", p, e))?;
        }
        let source = file.origin.local_path(fetcher)?.ok_or_else(|| {
            Error::Invalid(format!(
                "`{}` ({}) is not here",
                file.target,
                file.origin.describe()
            ))
        })?;
        match &file.transform {
            Transform::RewriteIndex { variant } => {
                let bytes = fs::read(&source).map_err(|e| Error::io("read", &source, e))?;
                let rewritten = select::rewrite_index(&bytes, variant.as_deref())?;
                write_file(&dest, &rewritten)?;
            }
            Transform::Link => {
                let absolute = file.origin.link_style() == LinkStyle::Absolute;
                link(&source, &dest, symlinks, absolute)?;
            }
        }
        manifest_files.push(ManifestFile {
            target: file.target.clone(),
            origin: file.origin.describe(),
            size: file.size,
            digest: file.digest.clone(),
        });
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        name: plan.name.clone(),
        assembled_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        files: manifest_files,
    };
    let bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("manifest: {e}")))?;
    write_file(&dir.join(MANIFEST), &bytes)
}

/// A relative symlink into the cache (absolute for a user's own local files, which may move with
/// their folder rather than ours); a hard link, then a copy, where symlinks are not supported.
fn link(source: &Path, dest: &Path, symlinks: bool, absolute_link: bool) -> Result<()> {
    if symlinks {
        let target = if absolute_link {
            absolute(source)?
        } else {
            relative_to(dest.parent().unwrap_or(Path::new(".")), source)?
        };
        match symlink(&target, dest) {
            Ok(()) => return Ok(()),
            Err(e) => tracing::debug!(
                "symlink {} failed ({e}); trying a hard link",
                dest.display()
            ),
        }
    }
    let real = fs::canonicalize(source).map_err(|e| Error::io("resolve", source, e))?;
    if fs::hard_link(&real, dest).is_ok() {
        return Ok(());
    }
    fs::copy(&real, dest)
        .map(drop)
        .map_err(|e| Error::io("copy into the pipeline folder", dest, e))
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

/// `target` as seen from folder `from`: both folders are resolved (so `/tmp` → `/private/tmp`
/// style links in their paths do not break the result), the file name is kept as is.
fn relative_to(from: &Path, target: &Path) -> Result<PathBuf> {
    let from = fs::canonicalize(from).map_err(|e| Error::io("resolve", from, e))?;
    let target_dir = target
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{} has no parent", target.display())))?;
    let target_dir =
        fs::canonicalize(target_dir).map_err(|e| Error::io("resolve", target_dir, e))?;
    let name = target
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{} has no file name", target.display())))?;
    let a: Vec<Component<'_>> = from.components().collect();
    let b: Vec<Component<'_>> = target_dir.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    out.push(name);
    Ok(out)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .map_err(|e| Error::io("read the current folder", path, e))
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|e| Error::io("write", path, e))
}

/// Replaces `out` by `tmp` with two renames; on failure the old folder is put back.
fn swap_in(tmp: &Path, out: &Path, parent: &Path, base: &str) -> Result<()> {
    let old = parent.join(format!(".{base}.{:08x}.old", fastrand::u32(..)));
    let had_old = match fs::rename(out, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            let _ = fs::remove_dir_all(tmp);
            return Err(Error::io("move aside the old pipeline folder", out, e));
        }
    };
    if let Err(e) = fs::rename(tmp, out) {
        if had_old {
            let _ = fs::rename(&old, out);
        }
        let _ = fs::remove_dir_all(tmp);
        return Err(Error::io("move the new pipeline folder into place", out, e));
    }
    if had_old {
        let _ = fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Leftovers of an earlier assembly of `base` that was killed (Ctrl-C, OOM) between building and
/// swapping: `.{base}.{rand}.tmp` and `.{base}.{rand}.old` folders. Only ones untouched for an hour
/// go, so that another process assembling the same pipeline right now keeps its own.
fn remove_stale_leftovers(parent: &Path, base: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{base}.");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let ours = rest.len() == 12
            && (rest.ends_with(".tmp") || rest.ends_with(".old"))
            && rest[..8].bytes().all(|b| b.is_ascii_hexdigit());
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if ours && stale {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Reads the manifest of an assembled folder.
pub fn read_manifest(folder: &Path) -> Option<Manifest> {
    let bytes = fs::read(folder.join(MANIFEST)).ok()?;
    let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
    (manifest.version == MANIFEST_VERSION).then_some(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_leftovers_of_killed_assemblies_go_and_fresh_ones_stay() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let old = dir.path().join(".p.0123abcd.tmp");
        let fresh = dir.path().join(".p.89abcdef.old");
        let other = dir.path().join(".q.0123abcd.tmp");
        for d in [&old, &fresh, &other] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
        }
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for d in [&old, &other] {
            fs::File::open(d)
                .and_then(|f| f.set_modified(two_hours_ago))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        remove_stale_leftovers(dir.path(), "p");
        assert!(!old.exists());
        assert!(fresh.exists());
        assert!(other.exists());
    }

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = dir.path().join("pipelines/p/unet");
        let b = dir.path().join("hub/models--a--b/snapshots/c/unet");
        fs::create_dir_all(&a).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(&b).unwrap_or_else(|e| panic!("{e}"));
        let rel = relative_to(&a, &b.join("w.safetensors")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rel,
            PathBuf::from("../../../hub/models--a--b/snapshots/c/unet/w.safetensors")
        );
    }
}
