//! Advisory per-blob locks, compatible with huggingface_hub's `filelock` (`flock` on POSIX).
//!
//! The lock only avoids downloading the same blob twice at the same time. Correctness never
//! depends on it: partial files have unique names, blobs appear through an atomic rename and are
//! verified before that. So every failure to lock (an `ENOLCK` on NFS, a read-only `.locks`
//! folder, another process holding the lock for longer than the timeout) degrades to an *unheld*
//! lock with a warning, and the download goes on.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cache::CacheRepo;
use crate::error::Result;

/// A lock on `{root}/.locks/{repo folder}/{etag}.lock`, released on drop.
#[derive(Debug)]
pub struct BlobLock {
    path: PathBuf,
    file: Option<File>,
}

impl BlobLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the lock is actually held (false when locking failed and we proceed without it).
    pub fn is_held(&self) -> bool {
        self.file.is_some()
    }

    fn unheld(path: PathBuf) -> BlobLock {
        BlobLock { path, file: None }
    }

    /// Takes the lock of the file at `path` (created, with its folders), waiting at most
    /// `timeout`: for stores beside the Hub cache that want the same bounded, advisory lock.
    /// Never fails: on any locking error, or when the timeout expires, the lock is unheld and a
    /// warning logged.
    pub fn acquire(path: PathBuf, timeout: Duration) -> BlobLock {
        let file = match open_lock_file(&path) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open lock file; proceeding without the lock");
                return BlobLock::unheld(path);
            }
        };
        // Poll `try_lock` rather than block in `lock`, so that the wait is bounded.
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        let mut logged = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return BlobLock {
                        path,
                        file: Some(file),
                    };
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot lock; proceeding without the lock");
                    return BlobLock::unheld(path);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(path = %path.display(), ?timeout, "lock still held by another process; proceeding without it");
                return BlobLock::unheld(path);
            }
            if now.duration_since(logged) >= Duration::from_secs(10) {
                tracing::info!(path = %path.display(), "still waiting for lock");
                logged = now;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
}

impl Drop for BlobLock {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // Closing the file releases the flock anyway; unlocking first is just explicit.
            let _ = file.unlock();
        }
    }
}

/// Opens (creating) the lock file, group-writable like huggingface_hub's (`mode=0o664`) so users
/// sharing a cache can wait on each other's locks.
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o664);
        let file = options.open(path)?;
        // The umask may have removed group write; huggingface_hub forces the mode too.
        let _ = file.set_permissions(fs::Permissions::from_mode(0o664));
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}

impl CacheRepo {
    /// Takes the blob lock of `etag`, waiting at most the cache's lock timeout
    /// ([`crate::CacheOptions::lock_timeout`]).
    ///
    /// Never fails because of the lock itself: on any locking error, or when the timeout expires,
    /// it returns an unheld lock and logs a warning. Only an invalid etag is an error.
    pub fn lock(&self, etag: &str) -> Result<BlobLock> {
        self.lock_with_timeout(etag, self.cache.options().lock_timeout)
    }

    /// Like [`CacheRepo::lock`] with an explicit timeout.
    pub fn lock_with_timeout(&self, etag: &str, timeout: Duration) -> Result<BlobLock> {
        Ok(BlobLock::acquire(self.lock_path(etag)?, timeout))
    }

    /// Takes the blob lock of `etag` if it is free right now.
    ///
    /// `Ok(None)` means another process holds it. A locking error yields an unheld lock (see the
    /// module documentation), not an error.
    pub fn try_lock(&self, etag: &str) -> Result<Option<BlobLock>> {
        let path = self.lock_path(etag)?;
        let file = match open_lock_file(&path) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open lock file; proceeding without the lock");
                return Ok(Some(BlobLock::unheld(path)));
            }
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(BlobLock {
                path,
                file: Some(file),
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot lock; proceeding without the lock");
                Ok(Some(BlobLock::unheld(path)))
            }
        }
    }
}
