//! Where a mirror lives (`s3://BUCKET/PREFIX`) and how its objects are named under it.
//!
//! ```text
//! PREFIX/blobs/sha256/<64 hex>            a file's bytes, content-addressed
//! PREFIX/pipelines/<name>.lock            the current lock of a pipeline
//! PREFIX/pipelines/<name>/<64 hex>.lock   every lock ever pushed, under its own sha256
//! ```

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A mirror's bucket and key prefix, parsed from `s3://BUCKET/PREFIX`.
///
/// ```
/// use pipefetch_mirror::MirrorLocation;
///
/// let loc: MirrorLocation = "s3://models/fleet/prod/".parse().unwrap();
/// assert_eq!(loc.bucket(), "models");
/// assert_eq!(loc.prefix(), "fleet/prod");
/// assert_eq!(loc.to_string(), "s3://models/fleet/prod");
/// assert!("s3://Models".parse::<MirrorLocation>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MirrorLocation {
    bucket: String,
    /// Segments joined by `/`, no leading or trailing `/`; empty for the bucket's root.
    prefix: String,
}

impl MirrorLocation {
    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix (no leading or trailing `/`; empty for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of `rel` under the prefix.
    pub(crate) fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// `PREFIX/blobs/sha256/<hex>`.
    pub fn blob_key(&self, sha256: &Sha256Hex) -> String {
        self.key(&format!("blobs/sha256/{sha256}"))
    }

    /// `PREFIX/pipelines/<name>.lock`; the name is checked by [`check_pipeline_name`].
    pub fn lock_key(&self, name: &str) -> Result<String> {
        check_pipeline_name(name)?;
        Ok(self.key(&format!("pipelines/{name}.lock")))
    }

    /// `PREFIX/pipelines/<name>/<hex>.lock`: the lock whose bytes hash to `sha256`.
    pub fn lock_version_key(&self, name: &str, sha256: &Sha256Hex) -> Result<String> {
        check_pipeline_name(name)?;
        Ok(self.key(&format!("pipelines/{name}/{sha256}.lock")))
    }
}

impl fmt::Display for MirrorLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl FromStr for MirrorLocation {
    type Err = Error;

    fn from_str(input: &str) -> Result<MirrorLocation> {
        let invalid = |reason: String| Error::InvalidLocation {
            input: input.to_string(),
            reason,
        };
        let rest = input
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("it must start with `s3://` (s3://BUCKET/PREFIX)".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket).map_err(|r| invalid(format!("the bucket name {r}")))?;
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            for segment in prefix.split('/') {
                check_segment(segment).map_err(|r| invalid(format!("the prefix {r}")))?;
            }
        }
        Ok(MirrorLocation {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// S3's rules for new buckets: 3 to 63 lower-case letters, digits, `.` and `-`, starting and
/// ending with a letter or digit.
fn check_bucket(bucket: &str) -> std::result::Result<(), String> {
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "`{bucket}` must be 3 to 63 characters long (s3://BUCKET/PREFIX)"
        ));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-')))
    {
        return Err(format!(
            "`{bucket}` contains {c:?}; only lower-case letters, digits, `.` and `-` are allowed"
        ));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(bucket.chars().next()) || !edge_ok(bucket.chars().last()) {
        return Err(format!(
            "`{bucket}` must start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// A prefix segment: characters that need no escaping in a URL or a key, and no `.`/`..`.
fn check_segment(segment: &str) -> std::result::Result<(), String> {
    if segment.is_empty() {
        return Err("has an empty segment (`//`)".into());
    }
    if segment == "." || segment == ".." {
        return Err(format!("has a `{segment}` segment"));
    }
    if let Some(c) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, `-`, `_`, `.` and `/` are allowed"
        ));
    }
    Ok(())
}

/// Checks a pipeline name for use in a key: the spec's own rule (one safe path segment).
pub fn check_pipeline_name(name: &str) -> Result<()> {
    pipefetch_spec::validate_spec_name(name).map_err(|reason| Error::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// A SHA-256 digest as 64 lower-case hex digits: the name of a blob in the mirror.
///
/// ```
/// use pipefetch_mirror::Sha256Hex;
///
/// let d: Sha256Hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855".parse().unwrap();
/// assert!(d.as_str().starts_with("e3b0c442"));
/// assert!("e3b0".parse::<Sha256Hex>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256Hex {
        use sha2::Digest;
        Sha256Hex(hex::encode(sha2::Sha256::digest(bytes)))
    }

    /// From a finished hasher.
    pub(crate) fn from_hasher(hasher: sha2::Sha256) -> Sha256Hex {
        use sha2::Digest;
        Sha256Hex(hex::encode(hasher.finalize()))
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Sha256Hex {
    type Err = Error;

    fn from_str(s: &str) -> Result<Sha256Hex> {
        if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Sha256Hex(s.to_ascii_lowercase()))
        } else {
            Err(Error::InvalidDigest {
                value: s.chars().take(80).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let loc: MirrorLocation = "s3://my-bucket".parse().unwrap();
        assert_eq!((loc.bucket(), loc.prefix()), ("my-bucket", ""));
        assert_eq!(loc.to_string(), "s3://my-bucket");
        let d = Sha256Hex::of(b"");
        assert_eq!(loc.blob_key(&d), format!("blobs/sha256/{d}"));

        let loc: MirrorLocation = "s3://b.c-1/a/b_c/v1.0/".parse().unwrap();
        assert_eq!(loc.prefix(), "a/b_c/v1.0");
        assert_eq!(
            loc.lock_key("sdxl-fp16").unwrap(),
            "a/b_c/v1.0/pipelines/sdxl-fp16.lock"
        );
        assert_eq!(
            loc.lock_version_key("sdxl", &d).unwrap(),
            format!("a/b_c/v1.0/pipelines/sdxl/{d}.lock")
        );
        assert!(loc.lock_key("../x").is_err());
        assert!(loc.lock_key("").is_err());

        for bad in [
            "http://bucket/x",
            "s3://",
            "s3://ab",
            "s3://Bucket",
            "s3://-bucket",
            "s3://bucket_1",
            "s3://bucket/a//b",
            "s3://bucket/a/../b",
            "s3://bucket/a b",
            "s3://bucket/a?b",
        ] {
            let err = bad.parse::<MirrorLocation>().unwrap_err();
            assert!(
                err.to_string().contains(bad),
                "{bad}: the error names the input: {err}"
            );
        }
    }
}
