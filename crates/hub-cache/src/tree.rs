//! `trees/{commit}.json`: huggingface_hub's cached repo listing, byte for byte.
//!
//! Python writes it with `json.dump(data, f, indent=1)`: one space per level, `", "`-free item
//! separators at line ends, `": "` after keys, ASCII-only output (`\uXXXX` escapes), no trailing
//! newline, files sorted by path. We reproduce that exactly, so a listing written by either side
//! is byte-identical.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;

use serde::Deserialize;

use crate::cache::CacheRepo;
use crate::error::{Error, IoContext, Result};
use crate::names::random_suffix;

/// The only `format_version` huggingface_hub (and we) understand.
pub const TREE_FORMAT_VERSION: u64 = 1;

/// A full listing of a repo at one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeCache {
    /// Files by repo path; sorted by construction.
    pub files: BTreeMap<String, TreeFile>,
}

/// One file of a [`TreeCache`], mirroring the fields of the Hub's `/tree` endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TreeFile {
    /// File size in bytes (of the pointer file for LFS files, as the Hub reports it).
    pub size: u64,
    /// Git blob id (sha1).
    pub blob_id: String,
    /// sha256 of the LFS object, for LFS files.
    #[serde(default)]
    pub lfs_sha256: Option<String>,
    /// Size of the LFS object, for LFS files.
    #[serde(default)]
    pub lfs_size: Option<u64>,
    /// Xet file hash (64 hex), for Xet-backed files.
    #[serde(default)]
    pub xet_hash: Option<String>,
}

#[derive(Deserialize)]
struct TreeJson {
    files: BTreeMap<String, TreeFile>,
}

fn is_valid_xet_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl TreeCache {
    /// Serialises exactly as Python's `json.dump({"format_version": 1, "files": ...}, indent=1)`.
    pub fn to_python_json(&self) -> String {
        let mut out = String::from("{\n \"format_version\": 1,\n \"files\": {");
        if self.files.is_empty() {
            out.push('}');
        } else {
            let mut first = true;
            for (path, file) in &self.files {
                out.push_str(if first { "\n  " } else { ",\n  " });
                first = false;
                push_json_string(&mut out, path);
                out.push_str(": {\n   \"size\": ");
                let _ = write!(out, "{}", file.size);
                out.push_str(",\n   \"blob_id\": ");
                push_json_string(&mut out, &file.blob_id);
                // Python writes `lfs_size` whenever `lfs_sha256` is set, even if it is null.
                if let Some(sha) = &file.lfs_sha256 {
                    out.push_str(",\n   \"lfs_sha256\": ");
                    push_json_string(&mut out, sha);
                    out.push_str(",\n   \"lfs_size\": ");
                    match file.lfs_size {
                        Some(n) => {
                            let _ = write!(out, "{n}");
                        }
                        None => out.push_str("null"),
                    }
                }
                if let Some(xet) = &file.xet_hash {
                    out.push_str(",\n   \"xet_hash\": ");
                    push_json_string(&mut out, xet);
                }
                out.push_str("\n  }");
            }
            out.push_str("\n }");
        }
        out.push_str("\n}");
        out
    }
}

/// Appends `s` as a JSON string the way Python's `json` does with `ensure_ascii=True`.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

impl CacheRepo {
    /// Writes `trees/{commit}.json` atomically (temporary file, then rename).
    ///
    /// Refuses, like Python, a listing with an `xet_hash` that is not 64 hex characters.
    pub fn write_tree(&self, commit: &str, tree: &TreeCache) -> Result<()> {
        let path = self.tree_path(commit)?;
        for (file, entry) in &tree.files {
            if let Some(xet) = &entry.xet_hash
                && !is_valid_xet_hash(xet)
            {
                return Err(Error::InvalidTree {
                    path,
                    file: file.clone(),
                    xet_hash: xet.clone(),
                });
            }
        }
        let dir = self.path.join("trees");
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let tmp = dir.join(format!("{commit}.{}.tmp", random_suffix()));
        let written = fs::write(&tmp, tree.to_python_json())
            .ctx("write temporary tree", &tmp)
            .and_then(|()| fs::rename(&tmp, &path).ctx("rename temporary tree to", &path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// Reads `trees/{commit}.json`.
    ///
    /// `Ok(None)` if there is no such file, if its `format_version` is not 1, or if an `xet_hash`
    /// is invalid: huggingface_hub ignores those files too. Malformed JSON is
    /// [`Error::CorruptTree`].
    pub fn read_tree(&self, commit: &str) -> Result<Option<TreeCache>> {
        let path = self.tree_path(commit)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read tree", path, e)),
        };
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(source) => return Err(Error::CorruptTree { path, source }),
        };
        let version = value.get("format_version");
        let version_ok = version.and_then(|v| v.as_u64()) == Some(TREE_FORMAT_VERSION)
            || version.and_then(|v| v.as_f64()) == Some(1.0);
        if !version_ok {
            return Ok(None);
        }
        let parsed: TreeJson = match serde_json::from_value(value) {
            Ok(v) => v,
            Err(source) => return Err(Error::CorruptTree { path, source }),
        };
        if parsed
            .files
            .values()
            .any(|f| f.xet_hash.as_deref().is_some_and(|x| !is_valid_xet_hash(x)))
        {
            return Ok(None);
        }
        Ok(Some(TreeCache {
            files: parsed.files,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_string_escapes() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"\\\n\t\u{1}é😀\u{7f}/");
        assert_eq!(out, r#""a\"\\\n\t\u0001\u00e9\ud83d\ude00\u007f/""#);
    }

    #[test]
    fn empty_tree() {
        assert_eq!(
            TreeCache::default().to_python_json(),
            "{\n \"format_version\": 1,\n \"files\": {}\n}"
        );
    }
}
