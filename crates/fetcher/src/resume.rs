//! Resumable partial downloads: which byte ranges of a `.incomplete` file are already written.
//!
//! A partial file (`blobs/<etag>.<rand>.incomplete` in the Hub cache, `partial/<key>.<rand>.incomplete`
//! in the URL cache) may be written by several ranges at once, so its length alone does not say
//! what is valid. Beside it, `<partial>.state` records, per range, how many bytes from its start
//! are on disk. It is rewritten atomically (temp + rename) whenever a range completes or is split,
//! and about once a second while bytes flow; a connection's buffered bytes are written within a
//! second too. So a killed process (Ctrl-C, OOM, a lost pod) leaves at most a couple of seconds of
//! work unrecorded, and never a record of bytes that are not on disk. The next run adopts the
//! partial, skips completed ranges, continues the others where they stopped, and hashes the whole
//! file as usual: the digest check at the end covers the resumed bytes too, and a mismatch
//! discards the partial and starts again from zero.
//!
//! Work stealing splits a range in two (`[a, c, d]` becomes `[a, b, d']` and `[b, c, 0]`): the
//! ranges still tile the file and each still records what is on disk from its start, so the format
//! did not change and stays version 1 — files written before work stealing resume as they are,
//! and an older pipefetch resumes ours. A state file of another version, or one describing a
//! different blob or size, is ignored (the partial is then not resumed). huggingface_hub ignores
//! both files: it only lists `*.incomplete` as incomplete downloads.

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The sidecar's format version.
pub const STATE_VERSION: u32 = 1;

/// Bytes written per range of one partial file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkTable {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// The blob's etag.
    pub etag: String,
    /// The blob's size.
    pub size: u64,
    /// `[start, end, done]` per range: bytes `start..start + done` are on disk.
    pub chunks: Vec<(u64, u64, u64)>,
}

impl ChunkTable {
    /// A fresh table for `ranges`.
    pub fn new(etag: &str, size: u64, ranges: &[Range<u64>]) -> ChunkTable {
        ChunkTable {
            version: STATE_VERSION,
            etag: etag.to_string(),
            size,
            chunks: ranges.iter().map(|r| (r.start, r.end, 0)).collect(),
        }
    }

    /// Bytes on disk, over all ranges.
    pub fn done_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.2).sum()
    }

    /// Whether the table is a usable description of a `size`-byte blob `etag`.
    fn is_valid_for(&self, etag: &str, size: u64) -> bool {
        if self.version != STATE_VERSION || self.etag != etag || self.size != size {
            return false;
        }
        let mut expected_start = 0;
        for &(start, end, done) in &self.chunks {
            if start != expected_start || end < start || done > end - start {
                return false;
            }
            expected_start = end;
        }
        expected_start == size
    }
}

/// The sidecar path of a partial file.
pub fn state_path(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".state");
    PathBuf::from(name)
}

/// Reads the sidecar of `partial`, if it describes this blob. Lengths are capped by the file's
/// actual length, so a table that ran ahead of the data never claims bytes that are not there.
pub fn load(partial: &Path, etag: &str, size: u64) -> Option<ChunkTable> {
    let text = fs::read(state_path(partial)).ok()?;
    let mut table: ChunkTable = serde_json::from_slice(&text).ok()?;
    if !table.is_valid_for(etag, size) {
        return None;
    }
    let len = fs::metadata(partial).ok()?.len();
    for chunk in &mut table.chunks {
        let available = len.saturating_sub(chunk.0).min(chunk.1 - chunk.0);
        chunk.2 = chunk.2.min(available);
    }
    Some(table)
}

/// Writes the sidecar atomically.
pub fn persist(partial: &Path, table: &ChunkTable) -> io::Result<()> {
    let path = state_path(partial);
    let tmp = {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{:08x}.tmp", fastrand::u32(..)));
        PathBuf::from(name)
    };
    let bytes = serde_json::to_vec(table).map_err(io::Error::other)?;
    // No temp file may outlive a failure (a full disk fails the write itself).
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, &path))
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
}

/// Removes the sidecar (the partial was committed or discarded).
pub fn remove(partial: &Path) {
    let _ = fs::remove_file(state_path(partial));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_and_are_capped_by_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let partial = dir.path().join("x.incomplete");
        fs::write(&partial, vec![1u8; 150]).unwrap_or_else(|e| panic!("{e}"));
        let mut table = ChunkTable::new("e", 300, &[0..100, 100..200, 200..300]);
        table.chunks[0].2 = 100;
        table.chunks[1].2 = 80;
        table.chunks[2].2 = 40;
        persist(&partial, &table).unwrap_or_else(|e| panic!("{e}"));
        let loaded = load(&partial, "e", 300).unwrap_or_else(|| panic!("no table"));
        // The file has 150 bytes: the second range has only 50 of its claimed 80, the third none.
        assert_eq!(
            loaded.chunks,
            vec![(0, 100, 100), (100, 200, 50), (200, 300, 0)]
        );
        assert!(load(&partial, "other", 300).is_none());
        assert!(load(&partial, "e", 301).is_none());
    }

    #[test]
    fn malformed_tables_are_ignored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let partial = dir.path().join("x.incomplete");
        fs::write(&partial, b"abc").unwrap_or_else(|e| panic!("{e}"));
        for bad in [
            r#"{"version":2,"etag":"e","size":3,"chunks":[[0,3,3]]}"#,
            r#"{"version":1,"etag":"e","size":3,"chunks":[[0,2,2]]}"#,
            r#"{"version":1,"etag":"e","size":3,"chunks":[[0,3,4]]}"#,
            r#"{"version":1,"etag":"e","size":3,"chunks":[[1,3,0]]}"#,
            "not json",
        ] {
            fs::write(state_path(&partial), bad).unwrap_or_else(|e| panic!("{e}"));
            assert!(load(&partial, "e", 3).is_none(), "{bad}");
        }
    }
}
