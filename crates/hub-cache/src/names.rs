//! Repo types, repo ids, repo paths, commits and etags: everything that becomes a path component.
//!
//! Each of these comes from outside (a user, a server reply, a file on disk) and ends up joined onto
//! the cache root. They are validated here, once, so that nothing built from them can leave the repo
//! folder, on Linux or on Windows.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// The kind of Hub repository; decides the cache folder prefix (`models--`, `datasets--`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RepoType {
    /// A model repo (`models--org--name`), the default on the Hub.
    Model,
    /// A dataset repo (`datasets--org--name`).
    Dataset,
    /// A Space (`spaces--org--name`).
    Space,
    /// A kernel repo (`kernels--org--name`).
    Kernel,
}

impl RepoType {
    /// All repo types, in the order huggingface_hub lists their folder prefixes.
    pub const ALL: [RepoType; 4] = [
        RepoType::Dataset,
        RepoType::Kernel,
        RepoType::Model,
        RepoType::Space,
    ];

    /// The singular name used by the Hub API and huggingface_hub (`model`, `dataset`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
            RepoType::Space => "space",
            RepoType::Kernel => "kernel",
        }
    }

    /// The plural prefix of cache folder names (`models`, `datasets`, ...).
    pub fn folder_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
            RepoType::Kernel => "kernels",
        }
    }

    /// Parses a cache folder prefix (`models`, ...) only, as `scan_cache_dir` does.
    pub fn from_folder_prefix(prefix: &str) -> Option<RepoType> {
        RepoType::ALL
            .into_iter()
            .find(|t| t.folder_prefix() == prefix)
    }
}

impl fmt::Display for RepoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RepoType {
    type Err = Error;

    /// Accepts the singular (`model`) and the plural (`models`) spelling.
    fn from_str(s: &str) -> Result<Self> {
        RepoType::ALL
            .into_iter()
            .find(|t| t.as_str() == s || t.folder_prefix() == s)
            .ok_or_else(|| Error::InvalidRepoType {
                value: s.to_owned(),
            })
    }
}

/// Checks a repo id the way huggingface_hub's `validate_repo_id` does.
///
/// Rules: `NAME` or `NAMESPACE/NAME`; each part 1 to 96 characters of ASCII letters, digits,
/// `-`, `_`, `.`; each part starts and ends with a letter, digit or `_`; no `--` (it is the folder
/// separator, so `a--b/c` and `a/b--c` would share a folder) and no `..`; no `.git` suffix.
pub fn validate_repo_id(repo_id: &str) -> Result<()> {
    let fail = |reason| {
        Err(Error::InvalidRepoId {
            repo_id: repo_id.to_owned(),
            reason,
        })
    };
    let parts: Vec<&str> = repo_id.split('/').collect();
    if parts.len() > 2 {
        return fail("expected `name` or `namespace/name`, found more than one `/`");
    }
    for part in &parts {
        if part.is_empty() || part.len() > 96 {
            return fail("each part must have 1 to 96 characters");
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return fail("only ASCII letters, digits, `-`, `_` and `.` are allowed");
        }
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let bytes = part.as_bytes();
        if !word(bytes[0]) || !word(bytes[bytes.len() - 1]) {
            return fail("a part cannot start or end with `-` or `.`");
        }
    }
    if repo_id.contains("--") || repo_id.contains("..") {
        return fail("`--` and `..` are not allowed");
    }
    if repo_id.ends_with(".git") {
        return fail("cannot end with `.git`");
    }
    Ok(())
}

/// Checks a repo-relative file path (`config.json`, `unet/diffusion_pytorch_model.safetensors`).
///
/// The path must be `/`-separated with no empty, `.` or `..` segment, must not be absolute, and
/// must contain no backslash, no NUL and no Windows drive prefix (`C:`) in any segment. A path that
/// passes cannot escape the directory it is joined onto, on any platform. Returns the path
/// unchanged for convenient chaining.
pub fn validate_repo_path(path: &str) -> Result<&str> {
    let fail = |reason| {
        Err(Error::InvalidRepoPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return fail("the path is empty");
    }
    if path.contains('\0') {
        return fail("the path contains a NUL character");
    }
    if path.contains('\\') {
        return fail("the path contains a backslash");
    }
    if path.starts_with('/') {
        return fail("the path is absolute");
    }
    for segment in path.split('/') {
        match segment {
            "" => return fail("the path has an empty segment (`//` or a trailing `/`)"),
            "." => return fail("the path has a `.` segment"),
            ".." => return fail("the path has a `..` segment"),
            _ => {}
        }
        let b = segment.as_bytes();
        if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
            return fail("the path has a Windows drive prefix");
        }
    }
    Ok(path)
}

/// Checks a revision that is to be stored under `refs/` (a branch, tag or `refs/pr/N`).
pub(crate) fn validate_revision(revision: &str) -> Result<&str> {
    validate_repo_path(revision).map_err(|e| match e {
        Error::InvalidRepoPath { reason, .. } => Error::InvalidRevision {
            revision: revision.to_owned(),
            reason,
        },
        other => other,
    })
}

/// Whether `s` is a full commit hash: exactly 40 lowercase hex characters.
pub fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Returns `commit` if it is a full commit hash, an error otherwise.
pub(crate) fn validate_commit(commit: &str) -> Result<&str> {
    if is_commit_hash(commit) {
        Ok(commit)
    } else {
        Err(Error::InvalidCommit {
            commit: commit.to_owned(),
        })
    }
}

/// Whether `s` can name a blob: a git sha1 (40 hex) or a sha256 (64 hex).
pub fn is_valid_etag(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Returns `etag` if it can name a blob, an error otherwise.
pub(crate) fn validate_etag(etag: &str) -> Result<&str> {
    if is_valid_etag(etag) {
        Ok(etag)
    } else {
        Err(Error::InvalidEtag {
            etag: etag.to_owned(),
        })
    }
}

/// Joins an already validated `/`-separated repo path onto `base`, one segment at a time, so the
/// platform separator is used.
pub(crate) fn join_repo_path(base: &Path, repo_path: &str) -> PathBuf {
    let mut out = base.to_path_buf();
    out.extend(repo_path.split('/'));
    out
}

/// Eight random hex characters, for unique temporary names (huggingface_hub uses `uuid4().hex[:8]`).
pub(crate) fn random_suffix() -> String {
    format!("{:08x}", fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        for ok in ["gpt2", "org/name", "a", "A_b-c.d/e.f_9", "_x/_y_"] {
            assert!(validate_repo_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a/b/c",
            "a--b",
            "a/b--c",
            "a..b",
            "-a",
            "a-",
            ".a",
            "a.",
            "a.git",
            "a b",
            "a\\b",
            "a\0b",
            "é",
            &"x".repeat(97),
        ] {
            assert!(validate_repo_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repo_types() {
        for t in RepoType::ALL {
            assert_eq!(t.as_str().parse::<RepoType>().ok(), Some(t));
            assert_eq!(t.folder_prefix().parse::<RepoType>().ok(), Some(t));
            assert_eq!(RepoType::from_folder_prefix(t.folder_prefix()), Some(t));
        }
        assert!("Model".parse::<RepoType>().is_err());
        assert_eq!(RepoType::from_folder_prefix("model"), None);
    }

    #[test]
    fn commits_and_etags() {
        assert!(is_commit_hash(&"a".repeat(40)));
        assert!(!is_commit_hash(&"A".repeat(40)));
        assert!(!is_commit_hash(&"a".repeat(39)));
        assert!(!is_commit_hash(&format!("{}\n", "a".repeat(40))));
        assert!(is_valid_etag(&"0".repeat(64)));
        assert!(!is_valid_etag(&"0".repeat(63)));
        assert!(!is_valid_etag(&"g".repeat(40)));
    }
}
