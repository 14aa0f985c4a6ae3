//! Pushing a pipeline to the mirror: every source once, then every machine from the mirror.
//!
//! [`Mirror::push`] takes a lock (from `Fetcher::lock`, or a lockfile) and
//! 1. checks the bucket and the key ([`Mirror::probe`]) before any work;
//! 2. asks the mirror which blobs it has (one `HEAD` per distinct sha256);
//! 3. unless it has them all, brings every file into the local cache with the fetcher's own
//!    locked pull: what is cached is reused (a warm cache makes no request), and the folder is
//!    assembled as `pull --locked` assembles it. When the mirror has every blob, nothing is
//!    pulled: a push of what is already mirrored costs a few small requests, not a download;
//! 4. uploads the missing blobs, each once however many files share its bytes, several at a
//!    time; memory stays within the mirror's upload slots (slots × part size), whatever the
//!    number or size of the files;
//! 5. writes the lock, without any `mirror_url`, under the pipeline's name and under its own
//!    sha256 — last, so that a lock in the mirror only ever names blobs that are there — unless
//!    the mirror's current lock is already byte for byte this one.
//!
//! An interrupted push leaves nothing under a content address that is not whole and verified
//! (see [`Mirror::upload_blob`]); run again, it uploads only the blobs that are missing.
//!
//! Progress: the pull reports to the fetcher's reporter as a pull does; the upload is a second
//! run, reported to the reporter given with the same events: `plan` (blobs, bytes, and as
//! "cached" the blobs the mirror already has), `file_started`, `progress` (bytes the store
//! acknowledged, a part at a time), `file_done` / `file_failed`, a `heartbeat` every second,
//! and `done` (its `bytes_downloaded` counts the bytes uploaded).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use pipefetch_fetcher::{Event, Fetcher, Lock, PullOptions, Reporter, render_chain};

use crate::error::{Error, Result};
use crate::location::{Sha256Hex, check_pipeline_name};
use crate::mirror::{LockKeys, Mirror};
use crate::upload::UploadProgress;

/// How many `HEAD` requests check blobs at once.
const CHECKS_IN_FLIGHT: usize = 16;

/// Options of [`Mirror::push`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushOptions {
    /// How many blobs upload at once (default 8). Memory is bounded by the mirror's upload
    /// slots whatever this is; more files in flight help when many are small.
    pub parallel_files: usize,
    /// Options of the pull that brings the files into the local cache first.
    pub pull: PullOptions,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            parallel_files: 8,
            pull: PullOptions::default(),
        }
    }
}

/// What [`Mirror::push`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Pushed {
    /// The lock as the mirror holds it (the lock given, without `mirror_url`s).
    pub lock: Lock,
    /// Where it is.
    pub keys: LockKeys,
    /// Whether it was written (`false` when the mirror's current lock already was this one).
    pub lock_written: bool,
    /// Files in the lock.
    pub files: usize,
    /// Distinct blobs (files with the same bytes share one).
    pub blobs: usize,
    /// Blobs uploaded by this push.
    pub uploaded_blobs: usize,
    /// Their bytes.
    pub uploaded_bytes: u64,
    /// Blobs the mirror already had.
    pub present_blobs: usize,
    /// Their bytes.
    pub present_bytes: u64,
    /// Bytes the pull downloaded into the local cache.
    pub downloaded_bytes: u64,
    /// The assembled pipeline folder; `None` when the mirror had every blob, so nothing was
    /// pulled.
    pub folder: Option<PathBuf>,
}

/// One blob of a lock.
#[derive(Debug, Clone)]
struct Blob {
    sha256: Sha256Hex,
    size: u64,
    /// The first file of the lock with these bytes (for progress and messages).
    target: String,
    /// The local file holding the bytes, once pulled.
    path: Option<PathBuf>,
}

impl Mirror {
    /// Pushes the files of `lock` and then `lock` itself to the mirror (see the
    /// [module documentation](self)). `fetcher` brings the files into its cache; the upload's
    /// progress goes to `reporter`.
    pub async fn push(
        &self,
        fetcher: &Fetcher,
        lock: &Lock,
        reporter: &dyn Reporter,
        options: &PushOptions,
    ) -> Result<Pushed> {
        check_pipeline_name(&lock.name)?;
        self.probe().await?;
        let mut blobs = distinct_blobs(lock)?;
        let present = self.present(&blobs).await?;
        let present_bytes = blobs
            .iter()
            .zip(&present)
            .filter(|(_, here)| **here)
            .map(|(b, _)| b.size)
            .sum();
        let present_blobs = present.iter().filter(|here| **here).count();
        let (folder, downloaded_bytes) = if present_blobs == blobs.len() {
            (None, 0)
        } else {
            let folder = fetcher
                .pull_locked(lock, &options.pull)
                .await
                .map_err(|e| Error::Pull {
                    name: lock.name.clone(),
                    source: Box::new(e),
                })?;
            find_local(fetcher, lock, &folder.plan, &mut blobs).await?;
            (Some(folder.path), folder.downloaded_bytes)
        };

        let slots = (Arc::clone(&self.inner.slots), self.inner.slot_count as u64);
        let run = Run::new(reporter, &blobs, &present, slots);
        let missing: Vec<(u64, &Blob)> = blobs
            .iter()
            .zip(&present)
            .enumerate()
            .filter(|(_, (_, here))| !**here)
            .map(|(id, (blob, _))| (id as u64, blob))
            .collect();
        let uploads = futures::stream::iter(missing)
            .map(|(id, blob)| self.push_blob(id, blob, &run))
            .buffer_unordered(options.parallel_files.max(1))
            .collect::<Vec<Result<u64>>>();
        let results = run.with_heartbeat(uploads).await;
        run.done(blobs.len() as u64);

        let mut uploaded_blobs = 0;
        let mut uploaded_bytes = 0;
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok(bytes) => {
                    uploaded_blobs += 1;
                    uploaded_bytes += bytes;
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(Error::PushIncomplete {
                name: lock.name.clone(),
                failed: errors.len(),
                blobs: blobs.len(),
                first: Box::new(errors.swap_remove(0)),
            });
        }

        let mut mirrored = lock.clone();
        for file in &mut mirrored.files {
            // A presigned URL is for one reader's lock, never for the mirror's own.
            file.mirror_url = None;
        }
        let text = Bytes::from(mirrored.to_json());
        let (keys, lock_written) = self.put_lock_if_changed(&lock.name, text).await?;
        tracing::info!(
            pipeline = %lock.name,
            lock = %keys.version,
            uploaded_blobs,
            uploaded_bytes,
            present_blobs,
            "pushed"
        );
        Ok(Pushed {
            lock: mirrored,
            keys,
            lock_written,
            files: lock.files.len(),
            blobs: blobs.len(),
            uploaded_blobs,
            uploaded_bytes,
            present_blobs,
            present_bytes,
            downloaded_bytes,
            folder,
        })
    }

    /// `s3://BUCKET/KEY` for a key of this mirror (for messages and scripts).
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.inner.location.bucket())
    }

    /// Whether the mirror has each blob with its size (one `HEAD` each, several at once).
    async fn present(&self, blobs: &[Blob]) -> Result<Vec<bool>> {
        let sizes: Vec<Result<Option<u64>>> = futures::stream::iter(blobs)
            .map(|b| self.blob_size(&b.sha256))
            .buffered(CHECKS_IN_FLIGHT)
            .collect()
            .await;
        blobs
            .iter()
            .zip(sizes)
            .map(|(blob, size)| {
                let size = size?;
                if size.is_some_and(|s| s != blob.size) {
                    tracing::warn!(
                        key = %self.inner.location.blob_key(&blob.sha256),
                        existing = size,
                        expected = blob.size,
                        "the mirror's blob has the wrong size; uploading it again"
                    );
                }
                Ok(size == Some(blob.size))
            })
            .collect()
    }

    /// Uploads one blob the mirror lacks, reporting it as file `id` of the run.
    async fn push_blob(&self, id: u64, blob: &Blob, run: &Run<'_>) -> Result<u64> {
        run.reporter.report(&Event::FileStarted {
            file: id,
            repo: self.inner.location.to_string(),
            path: blob.target.clone(),
            size: blob.size,
            resumed: 0,
        });
        run.active.fetch_add(1, Ordering::Relaxed);
        let progress = FileProgress {
            run,
            id,
            size: blob.size,
            done: AtomicU64::new(0),
        };
        let key = self.inner.location.blob_key(&blob.sha256);
        let result = match &blob.path {
            Some(path) => {
                self.upload_object(path, &key, &blob.sha256, blob.size, &progress)
                    .await
            }
            None => Err(not_local(&blob.target)),
        };
        run.active.fetch_sub(1, Ordering::Relaxed);
        match &result {
            Ok(upload) => {
                tracing::debug!(key = %key, target = %blob.target, ?upload, "blob uploaded");
                run.reporter.report(&Event::FileDone {
                    file: id,
                    bytes: blob.size,
                    downloaded: blob.size,
                });
            }
            Err(e) => run.reporter.report(&Event::FileFailed {
                file: id,
                error: render_chain(e),
            }),
        }
        result.map(|_| blob.size)
    }

    /// Writes the lock unless the mirror's current lock already is these bytes (then only a
    /// missing versioned copy is written). Returns the keys and whether anything was written.
    async fn put_lock_if_changed(&self, name: &str, text: Bytes) -> Result<(LockKeys, bool)> {
        if self.get_lock(name).await?.as_ref() == Some(&text) {
            let sha256 = Sha256Hex::of(&text);
            let keys = LockKeys {
                current: self.inner.location.lock_key(name)?,
                version: self.inner.location.lock_version_key(name, &sha256)?,
                sha256,
            };
            if self.object_size(&keys.version).await?.is_some() {
                return Ok((keys, false));
            }
            self.put_small(&keys.version, text).await?;
            return Ok((keys, true));
        }
        Ok((self.put_lock(name, text).await?, true))
    }
}

/// The distinct blobs of `lock`, in the lock's order.
fn distinct_blobs(lock: &Lock) -> Result<Vec<Blob>> {
    let mut blobs: Vec<Blob> = Vec::new();
    let mut by_sha: HashMap<Sha256Hex, usize> = HashMap::new();
    for file in &lock.files {
        let sha256: Sha256Hex = file.sha256.parse()?;
        if let Some(&i) = by_sha.get(&sha256) {
            if blobs[i].size != file.size {
                return Err(Error::InvalidLock {
                    what: format!(
                        "the lock of `{}` gives sha256 {sha256} two sizes ({} for `{}`, {} for `{}`)",
                        lock.name, blobs[i].size, blobs[i].target, file.size, file.target
                    ),
                    source: None,
                });
            }
            continue;
        }
        by_sha.insert(sha256.clone(), blobs.len());
        blobs.push(Blob {
            sha256,
            size: file.size,
            target: file.target.clone(),
            path: None,
        });
    }
    Ok(blobs)
}

/// Sets each blob's local file, from the origins of the pulled plan of `lock`.
async fn find_local(
    fetcher: &Fetcher,
    lock: &Lock,
    plan: &pipefetch_fetcher::Plan,
    blobs: &mut [Blob],
) -> Result<()> {
    // `local_path` does stat calls: off the async threads, all at once.
    let fetcher = fetcher.clone();
    let files = plan.files.clone();
    let paths = tokio::task::spawn_blocking(move || {
        files
            .iter()
            .map(|f| Ok((f.target.clone(), f.origin.local_path(&fetcher)?)))
            .collect::<pipefetch_fetcher::Result<HashMap<String, Option<PathBuf>>>>()
    })
    .await
    .map_err(|e| Error::InvalidLock {
        what: format!("finding the local files of `{}` failed: {e}", lock.name),
        source: None,
    })?
    .map_err(|e| Error::InvalidLock {
        what: format!("finding the local files of `{}` failed", lock.name),
        source: Some(Box::new(e)),
    })?;
    // The first local file of each sha256 (files with the same bytes share a blob).
    let mut by_sha: HashMap<&str, &PathBuf> = HashMap::new();
    for file in &lock.files {
        if let Some(Some(path)) = paths.get(&file.target) {
            by_sha.entry(file.sha256.as_str()).or_insert(path);
        }
    }
    for blob in blobs {
        blob.path = by_sha.get(blob.sha256.as_str()).map(|p| (*p).clone());
    }
    Ok(())
}

/// The error for a blob whose bytes are not here after the pull.
fn not_local(target: &str) -> Error {
    Error::InvalidLock {
        what: format!("`{target}` is not in the local cache after the pull"),
        source: None,
    }
}

/// The upload run's counters and its reporter.
struct Run<'a> {
    reporter: &'a dyn Reporter,
    started: Instant,
    bytes_total: u64,
    /// Bytes of the plan done (blobs already in the mirror included).
    bytes_done: AtomicU64,
    /// Bytes the store acknowledged in this run.
    bytes_sent: AtomicU64,
    active: AtomicU64,
    /// The mirror's upload slots (parts in flight) and how many there are.
    slots: (Arc<tokio::sync::Semaphore>, u64),
    /// When the last acknowledgement arrived.
    last_ack: Mutex<Instant>,
}

impl<'a> Run<'a> {
    /// A run over `blobs`, of which those `present` need nothing; sends the `plan` event.
    fn new(
        reporter: &'a dyn Reporter,
        blobs: &[Blob],
        present: &[bool],
        slots: (Arc<tokio::sync::Semaphore>, u64),
    ) -> Run<'a> {
        let bytes_total = blobs.iter().map(|b| b.size).sum();
        let (cached_files, cached_bytes) = blobs
            .iter()
            .zip(present)
            .filter(|(_, here)| **here)
            .fold((0, 0), |(n, bytes), (b, _)| (n + 1, bytes + b.size));
        reporter.report(&Event::Plan {
            files: blobs.len() as u64,
            total_bytes: bytes_total,
            cached_files,
            cached_bytes,
        });
        let now = Instant::now();
        Run {
            reporter,
            started: now,
            bytes_total,
            bytes_done: AtomicU64::new(cached_bytes),
            bytes_sent: AtomicU64::new(0),
            active: AtomicU64::new(0),
            slots,
            last_ack: Mutex::new(now),
        }
    }

    /// Runs `work`, sending a heartbeat every second until it ends.
    async fn with_heartbeat<F: Future>(&self, work: F) -> F::Output {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        tokio::pin!(work);
        let mut last_sent = 0u64;
        let mut last_at = Instant::now();
        let mut rate = 0u64;
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = ticker.tick() => {
                    let sent = self.bytes_sent.load(Ordering::Relaxed);
                    let secs = last_at.elapsed().as_secs_f64().max(0.001);
                    let instant = ((sent - last_sent.min(sent)) as f64 / secs) as u64;
                    // A short exponential average keeps the rate steady between part acks.
                    rate = if rate == 0 { instant } else { (rate * 2 + instant) / 3 };
                    last_sent = sent;
                    last_at = Instant::now();
                    let stalled = self
                        .last_ack
                        .lock()
                        .map(|t| t.elapsed().as_millis() as u64)
                        .unwrap_or(0);
                    self.reporter.report(&Event::Heartbeat {
                        bytes_done: self.bytes_done.load(Ordering::Relaxed),
                        bytes_total: self.bytes_total,
                        rate_bps: rate,
                        active_files: self.active.load(Ordering::Relaxed),
                        stalled_ms: if instant > 0 { 0 } else { stalled },
                        connections: self.slots.1,
                        // Parts in flight hold the slots the semaphore lent out.
                        active_connections: self
                            .slots
                            .1
                            .saturating_sub(self.slots.0.available_permits() as u64),
                    });
                }
            }
        }
    }

    /// Sends the `done` event.
    fn done(&self, files: u64) {
        self.reporter.report(&Event::Done {
            files,
            bytes_downloaded: self.bytes_sent.load(Ordering::Relaxed),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        });
    }
}

/// Turns one upload's acknowledgements into `progress` events with byte positions.
struct FileProgress<'r, 'a> {
    run: &'r Run<'a>,
    id: u64,
    size: u64,
    done: AtomicU64,
}

impl UploadProgress for FileProgress<'_, '_> {
    fn sent(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.run.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        self.run.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(mut last) = self.run.last_ack.lock() {
            *last = Instant::now();
        }
        self.run.reporter.report(&Event::Progress {
            file: self.id,
            bytes_done: done,
            bytes_total: self.size,
        });
    }
}
