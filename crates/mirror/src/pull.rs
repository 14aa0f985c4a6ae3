//! The mirror as the place a pull's files come from first: [`BlobMirror`] for [`Mirror`], which
//! signs a `GET` of a blob for the fetcher's engine to download (ranges, one budget, resume,
//! sha256 verification), and [`Mirror::lock_for`], the lock a pull follows when it has none of
//! its own.
//!
//! Signing is local and free: no request asks the mirror whether a blob is there. A blob it lacks
//! answers 404 to the `GET`, and the fetcher takes that file from its origin (or fails, with
//! `--mirror-only`).

use std::time::Duration;

use async_trait::async_trait;
use pipefetch_fetcher::sources::BlobMirror;
use pipefetch_fetcher::{LoadedSpec, Lock};

use crate::{Mirror, Sha256Hex};

/// How long a URL signed for a pull stays valid: long enough for the slowest download of one
/// file (its ranges are requested again as connections are added or retried), short enough that
/// a URL caught in a log soon expires.
pub const PULL_URL_TTL: Duration = Duration::from_secs(12 * 3600);

#[async_trait]
impl BlobMirror for Mirror {
    fn name(&self) -> String {
        self.location().to_string()
    }

    async fn blob_url(&self, sha256: &str) -> pipefetch_fetcher::Result<url::Url> {
        let digest: Sha256Hex = sha256.parse().map_err(|e: crate::Error| {
            pipefetch_fetcher::Error::Invalid(format!("a blob digest: {e}"))
        })?;
        let url = self
            .presign_blob(&digest, PULL_URL_TTL)
            .await
            .map_err(|e| pipefetch_fetcher::Error::Invalid(e.to_string()))?;
        Ok(url.expose().clone())
    }
}

impl Mirror {
    /// The lock a pull of `spec` follows: the mirror's current lock of its pipeline, checked
    /// against the spec's text (a spec edited since it was pushed is an error, as for a local
    /// lockfile).
    pub async fn lock_for(&self, spec: &LoadedSpec) -> crate::Result<Lock> {
        let lock = self.read_lock(&spec.spec.name, None).await?;
        lock.check_spec(&spec.text)
            .map_err(|e| crate::Error::InvalidLock {
                what: format!(
                    "the mirror {}'s lock of `{}` is not for this spec: {e}",
                    self.location(),
                    spec.spec.name
                ),
                source: None,
            })?;
        Ok(lock)
    }
}
