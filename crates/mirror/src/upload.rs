//! Uploading a local file as a content-addressed blob.
//!
//! The file is read part by part (at most the mirror's upload slots of parts in memory, across
//! every upload), hashed as it is read, and sent in one `PUT` when it fits in a part, else as an
//! S3 multipart upload. The object appears under its final key only when the last request
//! (`PUT`, or `CompleteMultipartUpload`) succeeds, and only after the bytes read were checked
//! against the sha256 and size the caller gave: a changed or wrong file never lands under a
//! content address. A failed multipart upload is aborted; one whose task is dropped (an
//! interrupted push) leaves its parts to the bucket's lifecycle rule for incomplete uploads
//! (`AbortIncompleteMultipartUpload`), never an object.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use sha2::Digest;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::location::Sha256Hex;
use crate::mirror::{MAX_PARTS, Mirror};

/// Told how many bytes of an upload the store has acknowledged. Called from the uploading task:
/// it must not block.
pub trait UploadProgress: Send + Sync {
    /// `bytes` more were stored (a part, or the whole file).
    fn sent(&self, bytes: u64) {
        let _ = bytes;
    }
}

/// No progress reporting.
impl UploadProgress for () {}

/// What [`Mirror::upload_blob`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upload {
    /// The mirror already had an object of the right size under the digest: nothing was sent.
    AlreadyPresent,
    /// The file was uploaded in one `PUT`.
    Single,
    /// The file was uploaded in this many parts.
    Multipart {
        /// The number of parts.
        parts: u64,
    },
}

impl Mirror {
    /// Uploads `file`, whose content has this sha256 and size, to `PREFIX/blobs/sha256/<hex>`,
    /// unless an object of that size is already there.
    pub async fn upload_blob(
        &self,
        file: &Path,
        sha256: &Sha256Hex,
        size: u64,
        progress: &dyn UploadProgress,
    ) -> Result<Upload> {
        let key = self.inner.location.blob_key(sha256);
        match self.object_size(&key).await? {
            Some(existing) if existing == size => {
                progress.sent(size);
                return Ok(Upload::AlreadyPresent);
            }
            Some(existing) => tracing::warn!(
                key = %key,
                existing,
                expected = size,
                "the mirror's blob has the wrong size; uploading it again"
            ),
            None => {}
        }
        self.upload_object(file, &key, sha256, size, progress).await
    }

    /// Uploads `file` to `key` whatever is there (the caller checked), verified against its
    /// sha256 and size before the object lands.
    pub(crate) async fn upload_object(
        &self,
        file: &Path,
        key: &str,
        sha256: &Sha256Hex,
        size: u64,
        progress: &dyn UploadProgress,
    ) -> Result<Upload> {
        let reader = PartReader::open(file, size).await?;
        if size <= self.inner.part_size {
            self.upload_single(reader, key, sha256, progress).await
        } else {
            self.upload_multipart(reader, key, sha256, progress).await
        }
    }

    async fn upload_single(
        &self,
        mut reader: PartReader,
        key: &str,
        sha256: &Sha256Hex,
        progress: &dyn UploadProgress,
    ) -> Result<Upload> {
        let _slot = self.slot().await;
        let size = reader.size;
        let bytes = reader.next_part(size).await?;
        reader.finish(sha256)?;
        self.inner
            .store
            .put(&StorePath::from(key), PutPayload::from(bytes))
            .await
            .map_err(|e| self.error("uploading", key, e))?;
        progress.sent(size);
        Ok(Upload::Single)
    }

    async fn upload_multipart(
        &self,
        mut reader: PartReader,
        key: &str,
        sha256: &Sha256Hex,
        progress: &dyn UploadProgress,
    ) -> Result<Upload> {
        let size = reader.size;
        let part_size = part_size_for(size, self.inner.part_size);
        let mut upload = self
            .inner
            .store
            .put_multipart(&StorePath::from(key))
            .await
            .map_err(|e| self.error("starting the upload of", key, e))?;
        let sent = self
            .send_parts(&mut *upload, &mut reader, part_size, key, progress)
            .await
            .and_then(|parts| reader.finish(sha256).map(|()| parts));
        let parts = match sent {
            Ok(parts) => parts,
            Err(e) => {
                // Best effort: the upload's parts would otherwise stay in the bucket until a
                // lifecycle rule removes them. The original error is the one that matters.
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(key, error = %abort, "could not abort the multipart upload");
                }
                return Err(e);
            }
        };
        upload
            .complete()
            .await
            .map_err(|e| self.error("completing the upload of", key, e))?;
        Ok(Upload::Multipart { parts })
    }

    /// Reads and sends every part, each holding an upload slot from before it is read until
    /// the store acknowledged it. Part uploads run as tasks of a `JoinSet`, so they progress
    /// while the next part waits for a slot, and are cancelled if this future is dropped.
    async fn send_parts(
        &self,
        upload: &mut dyn MultipartUpload,
        reader: &mut PartReader,
        part_size: u64,
        key: &str,
        progress: &dyn UploadProgress,
    ) -> Result<u64> {
        let mut tasks: JoinSet<object_store::Result<u64>> = JoinSet::new();
        let mut parts = 0;
        let finished =
            |done: Option<Result<object_store::Result<u64>, tokio::task::JoinError>>| match done {
                Some(Ok(Ok(len))) => {
                    progress.sent(len);
                    Ok(())
                }
                Some(Ok(Err(e))) => Err(self.error("uploading a part of", key, e)),
                Some(Err(join)) => Err(self.error(
                    "uploading a part of",
                    key,
                    object_store::Error::JoinError { source: join },
                )),
                None => Ok(()),
            };
        while reader.remaining() > 0 {
            // Wait for a slot, collecting finished parts meanwhile (and stopping at a failure).
            let slot = loop {
                tokio::select! {
                    slot = self.slot() => break slot,
                    Some(done) = tasks.join_next(), if !tasks.is_empty() => finished(Some(done))?,
                }
            };
            let len = part_size.min(reader.remaining());
            let bytes = reader.next_part(len).await?;
            let part = upload.put_part(PutPayload::from(bytes));
            tasks.spawn(async move {
                let _slot: OwnedSemaphorePermit = slot;
                part.await.map(|()| len)
            });
            parts += 1;
        }
        while let Some(done) = tasks.join_next().await {
            finished(Some(done))?;
        }
        Ok(parts)
    }

    /// One upload slot (the semaphore is never closed).
    async fn slot(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = self.inner.slots.clone().acquire_owned().await {
                return permit;
            }
        }
    }
}

/// The part size for a file: the configured one, grown so the file fits in 10,000 parts.
pub(crate) fn part_size_for(size: u64, configured: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    configured.max(needed)
}

/// Reads a file front to back in parts, on the blocking pool, hashing what it reads.
struct PartReader {
    path: PathBuf,
    /// `None` only while a read is in flight on the blocking pool.
    file: Option<std::fs::File>,
    hasher: Option<sha2::Sha256>,
    size: u64,
    read: u64,
}

impl PartReader {
    async fn open(path: &Path, size: u64) -> Result<PartReader> {
        let owned = path.to_path_buf();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let (file, len) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&owned)?;
            let len = file.metadata()?.len();
            Ok::<_, std::io::Error>((file, len))
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
        if len != size {
            return Err(Error::LocalMismatch {
                path: path.to_path_buf(),
                what: "size",
                expected: size.to_string(),
                actual: len.to_string(),
            });
        }
        Ok(PartReader {
            path: path.to_path_buf(),
            file: Some(file),
            hasher: Some(sha2::Sha256::new()),
            size,
            read: 0,
        })
    }

    fn remaining(&self) -> u64 {
        self.size - self.read
    }

    /// The next `len` bytes (which must remain), hashed.
    async fn next_part(&mut self, len: u64) -> Result<Bytes> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let (Some(mut file), Some(mut hasher)) = (self.file.take(), self.hasher.take()) else {
            return Err(io(std::io::Error::other("an earlier read failed")));
        };
        // The buffer is allocated here, on a runtime thread, not on the blocking thread that
        // fills it: glibc gives each allocating thread an arena and keeps freed parts there, so
        // parts allocated across the blocking pool's many threads kept two to three times the
        // upload budget resident after they were sent.
        let mut buf: Vec<u8> = Vec::with_capacity(len as usize);
        let (file, hasher, result) = tokio::task::spawn_blocking(move || {
            // `read_to_end` into spare capacity: no zeroing of the part first.
            let result = (&mut file)
                .take(len)
                .read_to_end(&mut buf)
                .and_then(|n| {
                    if n as u64 == len {
                        Ok(())
                    } else {
                        Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
                    }
                })
                .map(|()| {
                    hasher.update(&buf);
                    Bytes::from(buf)
                });
            (file, hasher, result)
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
        let bytes = result.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                io(std::io::Error::new(
                    e.kind(),
                    "the file became shorter while it was read",
                ))
            } else {
                io(e)
            }
        })?;
        self.file = Some(file);
        self.hasher = Some(hasher);
        self.read += len;
        Ok(bytes)
    }

    /// Checks the digest of everything read against `expected`.
    fn finish(&mut self, expected: &Sha256Hex) -> Result<()> {
        let Some(hasher) = self.hasher.take() else {
            return Err(Error::Io {
                path: self.path.clone(),
                source: std::io::Error::other("an earlier read failed"),
            });
        };
        let actual = Sha256Hex::from_hasher(hasher);
        if &actual != expected {
            return Err(Error::LocalMismatch {
                path: self.path.clone(),
                what: "sha256",
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_fit_ten_thousand_parts() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size_for(100 * MIB, 8 * MIB), 8 * MIB);
        // 100 GB needs more than 8 MiB parts.
        let size = 100_000_000_000;
        let part = part_size_for(size, 8 * MIB);
        assert!(size.div_ceil(part) <= MAX_PARTS);
        assert_eq!(part % MIB, 0);
    }
}
