//! Content digests: what a blob's bytes must hash to before it may take its final name.
//!
//! The Hub names every blob by a digest of its content: LFS (and Xet) files by their sha256, plain git
//! files by their git blob id (`sha1("blob <len>\0" + bytes)`). Checking that digest while the bytes
//! stream costs one pass of hashing that overlaps the transfer, and turns every truncated, corrupted or
//! substituted file (an HTML error page saved as weights, a flipped bit) into an error instead of a
//! broken cache.

use sha2::Digest as _;

/// The digest a file's bytes must have.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// Lowercase hex sha256 of the content (LFS and Xet files, URL pins).
    Sha256(String),
    /// Lowercase hex git blob id of the content (regular git files).
    GitSha1(String),
    /// Nothing known: only the size is checked.
    Unknown,
    /// Nothing known, but the sha256 is computed while the bytes land (a URL without a pin: the
    /// blob is named by it).
    AnySha256,
}

impl Expected {
    /// What a Hub etag says about the content: 64 hex = sha256, 40 hex = git blob sha1.
    pub fn from_etag(etag: &str) -> Expected {
        let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
        match etag.len() {
            64 if hex => Expected::Sha256(etag.to_ascii_lowercase()),
            40 if hex => Expected::GitSha1(etag.to_ascii_lowercase()),
            _ => Expected::Unknown,
        }
    }

    /// A hasher for this digest, for a file of `size` bytes (the git header needs the size).
    pub fn hasher(&self, size: u64) -> Hasher {
        match self {
            Expected::Sha256(_) | Expected::AnySha256 => Hasher::Sha256(Box::default()),
            Expected::GitSha1(_) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Hasher::GitSha1(Box::new(h))
            }
            Expected::Unknown => Hasher::None,
        }
    }

    /// The expected hex digest, if any.
    pub fn hex(&self) -> Option<&str> {
        match self {
            Expected::Sha256(h) | Expected::GitSha1(h) => Some(h),
            Expected::Unknown | Expected::AnySha256 => None,
        }
    }

    /// The algorithm's name, for messages.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Expected::Sha256(_) | Expected::AnySha256 => "sha256",
            Expected::GitSha1(_) => "git-sha1",
            Expected::Unknown => "none",
        }
    }
}

/// An incremental hasher matching an [`Expected`].
#[derive(Clone)]
pub enum Hasher {
    /// sha256.
    Sha256(Box<sha2::Sha256>),
    /// sha1 over the git blob header and the content.
    GitSha1(Box<sha1::Sha1>),
    /// Nothing to compute.
    None,
}

impl Hasher {
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::GitSha1(h) => h.update(bytes),
            Hasher::None => {}
        }
    }

    /// The lowercase hex digest (empty for [`Hasher::None`]).
    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::GitSha1(h) => hex::encode(h.finalize()),
            Hasher::None => String::new(),
        }
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hasher::Sha256(_) => "Hasher::Sha256",
            Hasher::GitSha1(_) => "Hasher::GitSha1",
            Hasher::None => "Hasher::None",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_id_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let expected = Expected::GitSha1("ce013625030ba8dba906f756967f9e9ca394464a".into());
        let mut h = expected.hasher(6);
        h.update(b"hello\n");
        assert_eq!(h.finish_hex(), expected.hex().unwrap_or_default());
    }

    #[test]
    fn sha256_of_empty() {
        let h = Expected::Sha256(String::new()).hasher(0);
        assert_eq!(
            h.finish_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn etag_kinds() {
        assert!(matches!(
            Expected::from_etag(&"a".repeat(64)),
            Expected::Sha256(_)
        ));
        assert!(matches!(
            Expected::from_etag(&"A".repeat(40)),
            Expected::GitSha1(_)
        ));
        assert_eq!(Expected::from_etag("abc-123"), Expected::Unknown);
    }
}
