//! The Hub's metadata calls: file HEAD, repo info, tree listing.

use http::{HeaderMap, Method, header};
use serde::Deserialize;
use url::Url;

use crate::client::{Ctx, HubClient, Redirects};
use crate::error::{Error, Result};
use crate::redact::{redact_url, redact_url_str};
use crate::repo::{Repo, repo_info_url, resolve_url, tree_url};

/// What the Hub says about one file at one revision (the answer to its `HEAD`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileMetadata {
    /// The commit the revision resolved to (`X-Repo-Commit`).
    pub commit: String,
    /// The normalised etag: git blob sha1 for regular files, sha256 for LFS/Xet files.
    pub etag: String,
    /// The file's size (`X-Linked-Size`, else `Content-Length` of a non-redirect answer).
    pub size: u64,
    /// The absolute URL to `GET`: the redirect target (CDN) or the final resolve URL. A CDN
    /// URL is signed in its query: `Debug` shows it through [`redact_url`].
    pub location: Url,
    /// Whether the file is stored in LFS/Xet (the answer carried `X-Linked-Etag`).
    pub is_lfs: bool,
    /// The Xet hash (`X-Xet-Hash`), when the file is stored in Xet.
    pub xet_hash: Option<String>,
}

impl std::fmt::Debug for FileMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMetadata")
            .field("commit", &self.commit)
            .field("etag", &self.etag)
            .field("size", &self.size)
            .field("location", &redact_url(&self.location))
            .field("is_lfs", &self.is_lfs)
            .field("xet_hash", &self.xet_hash)
            .finish()
    }
}

/// A repository's description at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepoInfo {
    /// The commit the revision resolved to.
    pub sha: String,
    /// Every file path (unreliable for very large repositories: prefer [`HubClient::list_tree`]).
    pub siblings: Vec<String>,
    /// `None` when not gated, else the gating mode (`auto`, `manual`).
    pub gated: Option<String>,
    /// Whether the repository is private.
    pub private: bool,
}

/// The kind of a tree entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A file.
    File,
    /// A directory.
    Directory,
}

/// LFS details of a tree entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LfsInfo {
    /// The content's sha256 (the tree's `lfs.oid`).
    pub sha256: String,
    /// The content's size.
    pub size: u64,
}

/// One entry of a tree listing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeEntry {
    /// The path in the repository.
    pub path: String,
    /// File or directory.
    pub kind: EntryKind,
    /// The size (the real content size for LFS files; 0 for directories).
    pub size: u64,
    /// The git object id (blob sha1 for files).
    pub oid: String,
    /// LFS details, for LFS and Xet files.
    pub lfs: Option<LfsInfo>,
    /// The Xet hash, for Xet files.
    pub xet_hash: Option<String>,
}

impl TreeEntry {
    /// The etag the cache names the blob by: the LFS sha256, else the git blob id.
    pub fn etag(&self) -> &str {
        self.lfs.as_ref().map_or(&self.oid, |l| &l.sha256)
    }
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    oid: String,
    #[serde(default)]
    size: u64,
    lfs: Option<RawLfs>,
    #[serde(rename = "xetHash")]
    xet_hash: Option<String>,
}

#[derive(Deserialize)]
struct RawLfs {
    oid: String,
    size: u64,
}

#[derive(Deserialize)]
struct RawInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<RawSibling>,
    #[serde(default)]
    gated: serde_json::Value,
    #[serde(default)]
    private: bool,
}

#[derive(Deserialize)]
struct RawSibling {
    rfilename: String,
}

/// Strips a weak marker and quotes: `W/"abc"`, `"abc"` and `abc` all give `abc`.
pub fn normalize_etag(raw: &str) -> String {
    let s = raw.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"').to_string()
}

/// The URL of the `rel="next"` link in a `Link` header, if any.
pub(crate) fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all(header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let target = target.strip_prefix('<')?.strip_suffix('>')?;
                return base.join(target).ok();
            }
        }
    }
    None
}

fn protocol(url: &Url, what: &str) -> Error {
    Error::Protocol {
        url: redact_url(url),
        what: format!("{what}; not a Hugging Face Hub endpoint? a proxy or firewall?"),
    }
}

impl HubClient {
    /// `HEAD` of a file's resolve URL: the commit, etag, size and where to download it from.
    ///
    /// Relative redirects (renamed repositories, the resolve cache) are followed with the query
    /// kept; an absolute redirect (to a CDN) is not followed and its headers are read instead.
    pub async fn file_metadata(
        &self,
        repo: &Repo,
        revision: &str,
        path: &str,
    ) -> Result<FileMetadata> {
        let url = resolve_url(&self.inner.endpoint, repo, revision, path)?;
        let ctx = Ctx {
            repo: Some(repo),
            revision: Some(revision),
            path: Some(path),
        };
        self.with_retries(&url, || async {
            let resp = self
                .send_once(
                    Method::HEAD,
                    &url,
                    self.inner.auth.as_ref(),
                    None,
                    Redirects::RelativeOnly,
                    self.inner.metadata_timeout,
                )
                .await?;
            let status = resp.status;
            if !(status.is_success() || status.is_redirection()) {
                return Err(self.status_error(resp, ctx).await);
            }
            parse_metadata(&resp.headers, &resp.url, status.is_redirection())
        })
        .await
    }

    /// The repository's description at `revision` (its commit, files, gating).
    pub async fn repo_info(&self, repo: &Repo, revision: &str) -> Result<RepoInfo> {
        let url = repo_info_url(&self.inner.endpoint, repo, revision)?;
        let ctx = Ctx {
            repo: Some(repo),
            revision: Some(revision),
            path: None,
        };
        let (raw, _): (RawInfo, _) = self.get_json(&url, ctx).await?;
        let sha = raw
            .sha
            .ok_or_else(|| protocol(&url, "the repository info has no `sha`"))?;
        let gated = match raw.gated {
            serde_json::Value::String(mode) => Some(mode),
            serde_json::Value::Bool(true) => Some("true".to_string()),
            _ => None,
        };
        Ok(RepoInfo {
            sha,
            siblings: raw.siblings.into_iter().map(|s| s.rfilename).collect(),
            gated,
            private: raw.private,
        })
    }

    /// Lists files (and directories) at `revision`, under `path_prefix`, following every
    /// `Link: rel="next"` page.
    pub async fn list_tree(
        &self,
        repo: &Repo,
        revision: &str,
        path_prefix: Option<&str>,
        recursive: bool,
    ) -> Result<Vec<TreeEntry>> {
        let mut url = tree_url(&self.inner.endpoint, repo, revision, path_prefix, recursive)?;
        let ctx = Ctx {
            repo: Some(repo),
            revision: Some(revision),
            path: path_prefix,
        };
        let mut entries = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let (page, headers): (Vec<RawEntry>, _) = self.get_json(&url, ctx).await?;
            for raw in page {
                let kind = match raw.kind.as_str() {
                    "file" => EntryKind::File,
                    "directory" => EntryKind::Directory,
                    other => {
                        return Err(protocol(
                            &url,
                            &format!("unknown tree entry type {other:?}"),
                        ));
                    }
                };
                entries.push(TreeEntry {
                    path: raw.path,
                    kind,
                    size: raw.lfs.as_ref().map_or(raw.size, |l| l.size),
                    oid: raw.oid,
                    lfs: raw.lfs.map(|l| LfsInfo {
                        sha256: l.oid,
                        size: l.size,
                    }),
                    xet_hash: raw.xet_hash,
                });
            }
            seen.insert(url.to_string());
            match next_link(&headers, &url) {
                Some(next) if seen.contains(next.as_str()) => {
                    return Err(protocol(&next, "the tree pagination loops"));
                }
                Some(next) => url = next,
                None => return Ok(entries),
            }
        }
    }
}

/// Reads [`FileMetadata`] from a HEAD answer (A2 of the protocol notes).
pub(crate) fn parse_metadata(
    headers: &HeaderMap,
    url: &Url,
    redirect: bool,
) -> Result<FileMetadata> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let commit = get("x-repo-commit")
        .ok_or_else(|| protocol(url, "the answer has no X-Repo-Commit header"))?
        .to_string();
    let linked_etag = get("x-linked-etag");
    let etag = linked_etag
        .or_else(|| get("etag"))
        .map(normalize_etag)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| protocol(url, "the answer has no ETag header"))?;
    // A redirect's own Content-Length is the size of the redirect body, never the file's.
    let size = match get("x-linked-size") {
        Some(v) => Some(v),
        None if !redirect => get("content-length"),
        None => None,
    }
    .ok_or_else(|| protocol(url, "the answer has no X-Linked-Size or Content-Length"))?;
    let size = size
        .parse::<u64>()
        .map_err(|_| protocol(url, &format!("the file size {size:?} is not a number")))?;
    let location = match get("location").filter(|_| redirect) {
        Some(loc) => url.join(loc).map_err(|e| Error::Protocol {
            url: redact_url(url),
            what: format!("invalid Location {:?}: {e}", redact_url_str(loc)),
        })?,
        None => url.clone(),
    };
    Ok(FileMetadata {
        commit,
        etag,
        size,
        location,
        is_lfs: linked_etag.is_some(),
        xet_hash: get("x-xet-hash").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_normalisation() {
        for (raw, want) in [
            ("W/\"abc\"", "abc"),
            ("\"abc\"", "abc"),
            ("abc", "abc"),
            (" \"abc\" ", "abc"),
        ] {
            assert_eq!(normalize_etag(raw), want, "{raw}");
        }
    }

    #[test]
    fn link_header() {
        let base = Url::parse("http://h:1/api/models/a/b/tree/main?recursive=true").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            "<http://h:1/api/x?cursor=2>; rel=\"next\", <http://h:1/api/x?cursor=0>; rel=\"prev\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "http://h:1/api/x?cursor=2"
        );
        h.insert("link", "</api/y?c=3>; rel=next".parse().unwrap());
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "http://h:1/api/y?c=3"
        );
        h.insert("link", "<http://h:1/p>; rel=\"prev\"".parse().unwrap());
        assert_eq!(next_link(&h, &base), None);
    }

    #[test]
    fn metadata_size_rules() {
        let url = Url::parse("http://h/org/name/resolve/main/a.bin").unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-repo-commit", "c".repeat(40).parse().unwrap());
        h.insert("etag", "\"e1\"".parse().unwrap());
        h.insert("content-length", "913".parse().unwrap());
        // A redirect without X-Linked-Size has no usable size.
        let err = parse_metadata(&h, &url, true).unwrap_err();
        assert!(err.to_string().contains("X-Linked-Size"), "{err}");
        assert_eq!(parse_metadata(&h, &url, false).unwrap().size, 913);

        h.insert("x-linked-size", "5000".parse().unwrap());
        h.insert("x-linked-etag", "W/\"sha\"".parse().unwrap());
        h.insert(
            "location",
            "https://cdn.example/blob?sig=1".parse().unwrap(),
        );
        let m = parse_metadata(&h, &url, true).unwrap();
        assert_eq!(m.size, 5000);
        assert_eq!(m.etag, "sha");
        assert!(m.is_lfs);
        assert_eq!(m.location.as_str(), "https://cdn.example/blob?sig=1");
    }
}
