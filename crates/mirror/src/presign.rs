//! Locks for machines without credentials: the mirror's lock with a presigned `GET` per file.
//!
//! [`Mirror::presign_lock`] gives every file of a lock a `mirror_url`: a presigned URL of its
//! blob, valid for a chosen time (at most 7 days, SigV4's limit). Whoever holds such a lock can
//! read those blobs, and nothing else, until the URLs expire; a machine that has it needs no
//! S3 credentials at all. What a presigned URL carries is inherent to SigV4: the access key id
//! (in `X-Amz-Credential`), the signature, and with temporary credentials the session token
//! (`X-Amz-Security-Token`), so such a lock is a bearer credential until it expires. The secret
//! access key is never in it. `docs/mirror.md` says what to do with it.

use std::time::Duration;

use futures::StreamExt;
use pipefetch_fetcher::Lock;

use crate::error::{Error, Result};
use crate::location::Sha256Hex;
use crate::mirror::{MAX_PRESIGN_TTL, Mirror};

/// How many `HEAD` requests check blobs at once.
const CHECKS_IN_FLIGHT: usize = 16;

impl Mirror {
    /// The mirror's current lock of pipeline `name`, or the one whose sha256 is `version`.
    pub async fn read_lock(&self, name: &str, version: Option<&Sha256Hex>) -> Result<Lock> {
        let bytes = match version {
            Some(sha) => self.get_lock_version(name, sha).await?,
            None => self.get_lock(name).await?,
        };
        let Some(bytes) = bytes else {
            return Err(Error::LockNotFound {
                location: self.inner.location.to_string(),
                name: name.to_string(),
                version: version.map(|v| v.to_string()),
            });
        };
        let key = match version {
            Some(sha) => self.inner.location.lock_version_key(name, sha)?,
            None => self.inner.location.lock_key(name)?,
        };
        let lock = Lock::from_json(&bytes).map_err(|e| Error::InvalidLock {
            what: format!("{} is not a usable lock", self.url_of(&key)),
            source: Some(Box::new(e)),
        })?;
        if lock.name != name {
            return Err(Error::InvalidLock {
                what: format!(
                    "{} is the lock of `{}`, not of `{name}`",
                    self.url_of(&key),
                    lock.name
                ),
                source: None,
            });
        }
        Ok(lock)
    }

    /// `lock` with every file's `mirror_url` set to a presigned `GET` of its blob, valid for
    /// `ttl` (more than 0, at most 7 days). Every blob is checked first (one `HEAD` each): a
    /// missing one, or one of another size, is an error naming the file.
    pub async fn presign_lock(&self, lock: &Lock, ttl: Duration) -> Result<Lock> {
        if ttl.is_zero() || ttl > MAX_PRESIGN_TTL {
            return Err(Error::InvalidExpiry {
                given: format!("{} s", ttl.as_secs()),
                reason: "presigned URLs live more than 0 s and at most 7 days".into(),
            });
        }
        let digests = lock
            .files
            .iter()
            .map(|f| f.sha256.parse::<Sha256Hex>())
            .collect::<Result<Vec<_>>>()?;
        let sizes: Vec<Result<Option<u64>>> = futures::stream::iter(&digests)
            .map(|sha| self.blob_size(sha))
            .buffered(CHECKS_IN_FLIGHT)
            .collect()
            .await;
        let mut presigned = lock.clone();
        for ((file, sha), size) in presigned.files.iter_mut().zip(&digests).zip(sizes) {
            if size? != Some(file.size) {
                return Err(Error::BlobMissing {
                    target: file.target.clone(),
                    bucket: self.inner.location.bucket().to_string(),
                    key: self.inner.location.blob_key(sha),
                    size: file.size,
                });
            }
            let url = self.presign_blob(sha, ttl).await?;
            file.mirror_url = Some(url.expose().to_string());
        }
        Ok(presigned)
    }
}

/// Reads an expiry: a number and a unit, `s`, `m`, `h` or `d` (`90m`, `12h`, `7d`); a bare
/// number is seconds. At most 7 days.
///
/// ```
/// use std::time::Duration;
/// use pipefetch_mirror::parse_expiry;
///
/// assert_eq!(parse_expiry("7d").unwrap(), Duration::from_secs(7 * 24 * 3600));
/// assert_eq!(parse_expiry("90m").unwrap(), Duration::from_secs(5400));
/// assert!(parse_expiry("8d").is_err());
/// ```
pub fn parse_expiry(text: &str) -> Result<Duration> {
    let invalid = |reason: &str| Error::InvalidExpiry {
        given: format!("`{text}`"),
        reason: reason.to_string(),
    };
    let trimmed = text.trim();
    let (number, unit) = match trimmed.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => trimmed.split_at(i),
        None => (trimmed, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| invalid("it must be a whole number and a unit (s, m, h or d)"))?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(24 * 3600),
        _ => return Err(invalid("the unit must be s, m, h or d")),
    }
    .ok_or_else(|| invalid("it is too long"))?;
    let ttl = Duration::from_secs(seconds);
    if ttl.is_zero() {
        return Err(invalid("it must be more than 0"));
    }
    if ttl > MAX_PRESIGN_TTL {
        return Err(invalid(
            "it is more than 7 days, the longest a presigned URL may live",
        ));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries() {
        for (text, secs) in [("1", 1), ("3600s", 3600), ("15m", 900), ("12h", 43200)] {
            assert_eq!(
                parse_expiry(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
        assert_eq!(parse_expiry("7d").unwrap(), MAX_PRESIGN_TTL);
        for bad in [
            "",
            "0",
            "0d",
            "8d",
            "169h",
            "d",
            "1w",
            "1.5h",
            "-1h",
            "99999999999999999999d",
        ] {
            let err = parse_expiry(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidExpiry { .. }), "{bad}: {err}");
            assert!(err.hint().is_some());
        }
    }
}
