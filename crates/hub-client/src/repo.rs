//! Repository identities and the Hub's URL templates.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use crate::Error;

/// The kind of a Hub repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RepoType {
    /// A model repository (the default).
    Model,
    /// A dataset repository.
    Dataset,
    /// A Space.
    Space,
    /// A kernel repository.
    Kernel,
}

impl RepoType {
    /// The prefix of the resolve URL (`""`, `datasets/`, `spaces/`, `kernels/`).
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
            RepoType::Kernel => "kernels/",
        }
    }

    /// The plural used by the API and by cache folder names (`models`, `datasets`, ...).
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
            RepoType::Kernel => "kernels",
        }
    }
}

impl fmt::Display for RepoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
            RepoType::Space => "space",
            RepoType::Kernel => "kernel",
        })
    }
}

impl FromStr for RepoType {
    type Err = Error;

    fn from_str(s: &str) -> Result<RepoType, Error> {
        match s {
            "model" | "models" => Ok(RepoType::Model),
            "dataset" | "datasets" => Ok(RepoType::Dataset),
            "space" | "spaces" => Ok(RepoType::Space),
            "kernel" | "kernels" => Ok(RepoType::Kernel),
            _ => Err(Error::InvalidRepoType {
                value: s.to_string(),
            }),
        }
    }
}

/// A validated repository id: `ORG/NAME` or `NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoId(String);

/// The longest part (organisation or name) the Hub accepts.
const MAX_PART_LEN: usize = 96;

impl RepoId {
    /// Validates `id` with the Hub's rules: letters, digits, `-`, `_`, `.`; no `--` or `..`;
    /// parts of at most 96 characters that neither start nor end with `-` or `.`.
    pub fn new(id: impl Into<String>) -> Result<RepoId, Error> {
        let id = id.into();
        let invalid = |reason: &str| Error::InvalidRepoId {
            id: id.clone(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() > 2 {
            return Err(invalid("expected ORG/NAME or NAME"));
        }
        for part in &parts {
            if part.is_empty() {
                return Err(invalid("a part is empty"));
            }
            if part.len() > MAX_PART_LEN {
                return Err(invalid("a part is longer than 96 characters"));
            }
            if let Some(c) = part
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            {
                return Err(invalid(&format!("the character {c:?} is not allowed")));
            }
            if part.contains("--") || part.contains("..") {
                return Err(invalid("`--` and `..` are not allowed"));
            }
            if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
                return Err(invalid("a part may not start or end with `-` or `.`"));
            }
        }
        Ok(RepoId(id))
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepoId {
    type Err = Error;

    fn from_str(s: &str) -> Result<RepoId, Error> {
        RepoId::new(s)
    }
}

/// A repository: its kind and id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repo {
    /// The kind of repository.
    pub repo_type: RepoType,
    /// Its id.
    pub id: RepoId,
}

impl Repo {
    /// A repository of the given kind.
    pub fn new(repo_type: RepoType, id: RepoId) -> Repo {
        Repo { repo_type, id }
    }

    /// A model repository, validating the id.
    pub fn model(id: &str) -> Result<Repo, Error> {
        Ok(Repo::new(RepoType::Model, RepoId::new(id)?))
    }

    /// A dataset repository, validating the id.
    pub fn dataset(id: &str) -> Result<Repo, Error> {
        Ok(Repo::new(RepoType::Dataset, RepoId::new(id)?))
    }

    /// The page of the repository on the Hub (`{endpoint}/{prefix}{id}`), where gated conditions
    /// are accepted.
    pub fn web_url(&self, endpoint: &Url) -> String {
        format!(
            "{}/{}{}",
            endpoint.as_str().trim_end_matches('/'),
            self.repo_type.url_prefix(),
            self.id
        )
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.repo_type {
            RepoType::Model => write!(f, "{}", self.id),
            other => write!(f, "{} {}", other, self.id),
        }
    }
}

/// Whether `s` is a full commit hash (`^[0-9a-f]{40}$`); anything else is a ref to resolve.
pub fn is_commit_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Python's `quote(s, safe="")`: everything but `A-Za-z0-9_.-~` is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Encodes a revision as one URL segment (`refs/pr/1` → `refs%2Fpr%2F1`).
pub fn encode_revision(revision: &str) -> String {
    utf8_percent_encode(revision, COMPONENT).to_string()
}

/// Encodes a path in a repository segment by segment, keeping `/`
/// (`sub/file name #1.bin` → `sub/file%20name%20%231.bin`).
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|seg| utf8_percent_encode(seg, COMPONENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses `{endpoint}{suffix}`, where `suffix` is already encoded.
fn join(endpoint: &Url, suffix: &str) -> Result<Url, Error> {
    let s = format!("{}{}", endpoint.as_str().trim_end_matches('/'), suffix);
    Url::parse(&s).map_err(|e| Error::InvalidUrl {
        url: s.clone(),
        reason: e.to_string(),
    })
}

/// `{endpoint}/{prefix}{id}/resolve/{revision}/{path}`.
pub fn resolve_url(endpoint: &Url, repo: &Repo, revision: &str, path: &str) -> Result<Url, Error> {
    join(
        endpoint,
        &format!(
            "/{}{}/resolve/{}/{}",
            repo.repo_type.url_prefix(),
            repo.id,
            encode_revision(revision),
            encode_path(path.trim_start_matches('/'))
        ),
    )
}

/// `{endpoint}/api/{type}s/{id}/revision/{revision}`.
pub fn repo_info_url(endpoint: &Url, repo: &Repo, revision: &str) -> Result<Url, Error> {
    join(
        endpoint,
        &format!(
            "/api/{}/{}/revision/{}",
            repo.repo_type.plural(),
            repo.id,
            encode_revision(revision)
        ),
    )
}

/// `{endpoint}/api/{type}s/{id}/tree/{revision}[/{path}]?recursive=…`; the path is one segment
/// (`/` encoded), as `huggingface_hub` sends it.
pub fn tree_url(
    endpoint: &Url,
    repo: &Repo,
    revision: &str,
    path_prefix: Option<&str>,
    recursive: bool,
) -> Result<Url, Error> {
    let mut suffix = format!(
        "/api/{}/{}/tree/{}",
        repo.repo_type.plural(),
        repo.id,
        encode_revision(revision)
    );
    if let Some(p) = path_prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        suffix.push('/');
        suffix.push_str(&encode_revision(p));
    }
    suffix.push_str(if recursive {
        "?recursive=true"
    } else {
        "?recursive=false"
    });
    join(endpoint, &suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_id_rules() {
        for ok in [
            "gpt2",
            "org/name",
            "black-forest-labs/FLUX.1-schnell",
            "a_b/c.d-e",
            &"x".repeat(96),
        ] {
            assert!(RepoId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/name",
            "org/",
            "a/b/c",
            "org/na me",
            "org/a--b",
            "org/a..b",
            "-org/name",
            "org/name.",
            "org/.name",
            "org/name-",
            &"x".repeat(97),
            "org/näme",
        ] {
            assert!(RepoId::new(bad).is_err(), "{bad:?}");
        }
        let err = RepoId::new("org/a--b").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid repository id \"org/a--b\": `--` and `..` are not allowed"
        );
    }

    #[test]
    fn commit_sha() {
        assert!(is_commit_sha("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit_sha("0123456789ABCDEF0123456789abcdef01234567"));
        assert!(!is_commit_sha("0123456789abcdef"));
        assert!(!is_commit_sha("main"));
        assert!(!is_commit_sha("0123456789abcdef0123456789abcdef012345678"));
    }

    #[test]
    fn urls_are_encoded() {
        let ep = Url::parse("https://huggingface.co/").unwrap();
        let repo = Repo::model("org/name").unwrap();
        assert_eq!(
            resolve_url(&ep, &repo, "refs/pr/1", "subdir/file name #1.bin")
                .unwrap()
                .as_str(),
            "https://huggingface.co/org/name/resolve/refs%2Fpr%2F1/subdir/file%20name%20%231.bin"
        );
        assert_eq!(
            resolve_url(&ep, &repo, "v1#x", "a+b/c?d.txt")
                .unwrap()
                .as_str(),
            "https://huggingface.co/org/name/resolve/v1%23x/a%2Bb/c%3Fd.txt"
        );
        let ds = Repo::dataset("org/data").unwrap();
        assert_eq!(
            resolve_url(&ep, &ds, "main", "x.json").unwrap().as_str(),
            "https://huggingface.co/datasets/org/data/resolve/main/x.json"
        );
        assert_eq!(
            repo_info_url(&ep, &ds, "refs/pr/2").unwrap().as_str(),
            "https://huggingface.co/api/datasets/org/data/revision/refs%2Fpr%2F2"
        );
        assert_eq!(
            tree_url(&ep, &repo, "main", Some("unet/sub"), true)
                .unwrap()
                .as_str(),
            "https://huggingface.co/api/models/org/name/tree/main/unet%2Fsub?recursive=true"
        );
        let mirror = Url::parse("http://127.0.0.1:8080/mirror").unwrap();
        assert_eq!(
            tree_url(&mirror, &repo, "main", None, false)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/mirror/api/models/org/name/tree/main?recursive=false"
        );
        assert_eq!(repo.web_url(&ep), "https://huggingface.co/org/name");
    }
}
