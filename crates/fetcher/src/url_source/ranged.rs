//! URL sources through the shared engine: a ranged probe decides between parallel ranges (the
//! server answers `206` with the file's total size) and one stream (anything else).
//!
//! The probe is a real download request (`Range: bytes=N-`, from the first byte still missing),
//! under a slot of the connection budget: when it is answered with ranges, its body becomes the
//! first range's bytes and the engine adds connections as the budget allows, stealing and
//! hedging like for Hub files; further ranges go straight to the URL it was redirected to (a
//! presigned storage URL), without the token, which stays with its origin. When it is not, its
//! body is the whole file, and the one-stream path (`fetch_stream`) takes it as its first answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use pipefetch_hub_client::ByteRange;

use super::landing::UrlBlob;
use super::{
    EntryFile, FORMAT_VERSION, PartialState, SNIFF_BYTES, UrlCache, UrlEntry, UrlRequest,
    Validators, cached, disposition_filename, expects_weights, fetch_stream, key, not_weights,
    pin_of, refused_content_type, sniff, url_transfer_error, write_json,
};
use crate::engine::{BlobJob, Destination as _, Engine, Prefetched, Start, blocking};
use crate::error::{Error, Result, http_status};
use crate::progress::{Event, FileId};
use crate::verify::Expected;

impl Engine {
    /// Downloads (or finds in its cache) one URL through this engine: its budget, its progress
    /// events (`path` names the file in them), resume, and parallel ranges when the server allows
    /// them. Returns the entry and the bytes that crossed the network.
    ///
    /// Errors are those of [`super::fetch_url`].
    pub(crate) async fn fetch_url(
        &self,
        file: FileId,
        path: &str,
        req: &UrlRequest,
        cache: &UrlCache,
    ) -> Result<(UrlEntry, u64)> {
        let id = super::cache_url(req.url.as_str());
        let pin = pin_of(req, &id)?;
        let host = req.url.host_str().unwrap_or("url").to_string();
        if let Some(entry) = cached(cache, &id, pin.as_deref()).await? {
            self.reporter().report(&Event::FileStarted {
                file,
                repo: host,
                path: path.to_string(),
                size: entry.size,
                resumed: entry.size,
            });
            self.tracker()
                .bytes_done
                .fetch_add(entry.size, Ordering::Relaxed);
            return Ok((entry, 0));
        }
        let k = key(&id);
        let (c, kk, i) = (cache.clone(), k.clone(), id.clone());
        let (streamed, candidate) = blocking(move || {
            let streamed = !c.partial_candidates(&kk, &i).is_empty();
            Ok((streamed, c.ranged_candidates(&kk, &i).into_iter().next()))
        })
        .await?;
        let tracked = self.track_urls(&[req.url.as_str()], file);
        let permit = self.budget().acquire().await;
        if streamed {
            // A download an earlier run made in one stream resumes the same way.
            return self
                .fetch_url_stream(file, path, req, cache, &id, pin, None)
                .await;
        }
        let from = candidate.as_ref().map_or(0, |c| first_missing(&c.table));
        let probe = self
            .client()
            .get_stream(&req.url, req.auth.as_ref(), Some(ByteRange::from(from..)))
            .await;
        let (stream, head) = match probe {
            Ok(answer) => answer,
            Err(e) if from > 0 && http_status(&e) == Some(416) => {
                // The file shrank or changed: the partial cannot be continued.
                drop(permit);
                drop(tracked);
                if let Some(c) = candidate {
                    discard_candidate(&c.sidecar).await;
                }
                return Box::pin(self.fetch_url(file, path, req, cache)).await;
            }
            Err(e) => {
                return Err(url_transfer_error(id, req, e));
            }
        };
        let total = match (head.status, head.content_range) {
            (206, Some((first, _, Some(total)))) if first == from => Some(total),
            _ => None,
        };
        let Some(total) = total else {
            tracing::info!(
                "{id}: the server does not serve byte ranges (HTTP {} to a ranged request); downloading in one stream",
                head.status
            );
            if let Some(c) = candidate {
                discard_candidate(&c.sidecar).await;
            }
            let first = (head.status == 200 || from == 0).then_some((stream, head));
            return self
                .fetch_url_stream(file, path, req, cache, &id, pin, first)
                .await;
        };
        let weights = expects_weights(&req.name);
        if weights && let Some(what) = refused_content_type(head.info.content_type.as_deref()) {
            return Err(refusal(&id, req, what));
        }
        let validators = Validators {
            etag: head.info.etag.clone(),
            size: Some(total),
        };
        let dest = UrlBlob {
            cache: cache.clone(),
            id: id.clone(),
            name: req.name.clone(),
            authenticated: req.auth.is_some(),
            pin: pin.clone(),
            state: PartialState {
                version: FORMAT_VERSION,
                url: id.clone(),
                etag: validators.etag.clone(),
                size: validators.size,
                content_type: head.info.content_type.clone(),
                content_disposition: head.info.content_disposition.clone(),
                ..PartialState::default()
            },
        };
        // The partial of an earlier run continues only when the server still serves the same
        // file (same size and ETag) and nobody else is writing it.
        let claimed = match candidate {
            Some(c) if c.state.matches(&validators) => {
                let (cache2, k2, dest2) = (cache.clone(), k.clone(), dest.clone());
                let table = c.table;
                blocking(move || {
                    Ok(cache2
                        .claim(&k2, &c.state, &c.sidecar)
                        .map(|(data, sidecar)| (dest2.adopt(data, sidecar), table)))
                })
                .await?
            }
            Some(c) => {
                tracing::info!(
                    "{id}: the server now serves another file; starting again from zero"
                );
                discard_candidate(&c.sidecar).await;
                None
            }
            None => None,
        };
        let (landing, table, first) = match claimed {
            Some((landing, table)) => (landing?, table, Some(stream)),
            None => {
                let d = dest.clone();
                let landing = blocking(move || d.begin()).await?;
                let chunks = self.settings().chunks(total, self.budget().limit().max(1));
                let table = crate::resume::ChunkTable::new(&k, total, &chunks);
                // The probe is useful only if it started where the fresh partial does.
                (landing, table, (from == 0).then_some(stream))
            }
        };
        // Where the file begins, its first bytes tell a page or a JSON document from weights.
        let mut prefix: Vec<Bytes> = Vec::new();
        let first = match first {
            Some(mut stream) if from == 0 && weights => {
                let mut seen = 0;
                while seen < SNIFF_BYTES {
                    match stream.next_chunk().await {
                        Ok(Some(chunk)) => {
                            seen += chunk.len();
                            prefix.push(chunk);
                        }
                        Ok(None) => break,
                        Err(_) => break,
                    }
                }
                let head: Vec<u8> = prefix.iter().flat_map(|c| c.iter().copied()).collect();
                if let Some(what) = sniff(&head) {
                    landing.discard();
                    return Err(refusal(&id, req, what.to_string()));
                }
                Some(stream)
            }
            other => other,
        };
        let first = first.map(|stream| {
            Box::new(Prefetched {
                stream,
                head: prefix,
                offset: from,
                permit,
            })
        });
        let final_url = head.final_url.clone();
        let job = BlobJob {
            file,
            source: host,
            path: path.to_string(),
            url: final_url.clone(),
            direct_url: Some(final_url),
            auth: req.auth.clone(),
            size: total,
            expected: Expected::AnySha256,
            validator: validators.etag.clone(),
            dest: Arc::new(dest.clone()),
        };
        let fetched = self
            .fetch_from(&job, Start::Given(landing, table, first))
            .await?;
        drop(tracked);
        let sha256 = fetched
            .digest
            .ok_or_else(|| Error::Internal("a URL download ended without its digest".into()))?;
        let entry = UrlEntry {
            url: id.clone(),
            sha256: sha256.clone(),
            size: total,
            blob: cache.blob_path(&sha256),
            filename: head
                .info
                .content_disposition
                .as_deref()
                .and_then(disposition_filename),
            content_type: head.info.content_type.clone(),
            etag: head.info.etag.clone(),
        };
        let (c, e) = (cache.clone(), entry.clone());
        blocking(move || write_entry(&c, &e)).await?;
        Ok((entry, fetched.downloaded))
    }

    /// The one-stream path, with this engine's events and counters.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_url_stream(
        &self,
        file: FileId,
        path: &str,
        req: &UrlRequest,
        cache: &UrlCache,
        id: &str,
        pin: Option<String>,
        first: Option<(
            pipefetch_hub_client::ByteStream,
            pipefetch_hub_client::DownloadHead,
        )>,
    ) -> Result<(UrlEntry, u64)> {
        let reporter = Arc::clone(self.reporter());
        let tracker = Arc::clone(self.tracker());
        let budget = Arc::clone(self.budget());
        let resumed = if first.is_some() {
            0
        } else {
            cache.partial_bytes(req.url.as_str())
        };
        reporter.report(&Event::FileStarted {
            file,
            repo: req.url.host_str().unwrap_or("url").to_string(),
            path: path.to_string(),
            size: 0,
            resumed,
        });
        tracker.active_files.fetch_add(1, Ordering::Relaxed);
        tracker.bytes_done.fetch_add(resumed, Ordering::Relaxed);
        let last = AtomicU64::new(resumed);
        let downloaded = AtomicU64::new(0);
        let on_bytes = |done: u64, total: u64| {
            let before = last.swap(done, Ordering::Relaxed);
            if done > before {
                let n = done - before;
                tracker.bytes_done.fetch_add(n, Ordering::Relaxed);
                tracker.bytes_downloaded.fetch_add(n, Ordering::Relaxed);
                downloaded.fetch_add(n, Ordering::Relaxed);
                budget.add_bytes(n);
            } else if done < before {
                tracker
                    .bytes_done
                    .fetch_sub(before - done, Ordering::Relaxed);
            }
            reporter.report(&Event::Progress {
                file,
                bytes_done: done,
                bytes_total: total,
            });
        };
        let result = fetch_stream(self.client(), cache, req, id, pin, &on_bytes, first).await;
        tracker.active_files.fetch_sub(1, Ordering::Relaxed);
        result.map(|entry| (entry, downloaded.load(Ordering::Relaxed)))
    }
}

/// The first byte a ranged partial does not have.
fn first_missing(table: &crate::resume::ChunkTable) -> u64 {
    table
        .chunks
        .iter()
        .find(|c| c.2 < c.1 - c.0)
        .map_or(table.size, |c| c.0 + c.2)
}

fn refusal(id: &str, req: &UrlRequest, what: String) -> Error {
    let civitai = super::is_civitai(&req.url);
    not_weights(id, civitai, &req.name, req.auth.is_some(), what)
}

/// Removes a partial that cannot be continued (its data, sidecar and record).
async fn discard_candidate(sidecar: &std::path::Path) {
    let s = sidecar.to_path_buf();
    let _ = blocking(move || {
        let data = super::data_path(&s);
        let _ = std::fs::remove_file(&s);
        let _ = std::fs::remove_file(&data);
        crate::resume::remove(&data);
        Ok(())
    })
    .await;
}

/// Writes `entries/<key>.json` for a committed blob.
pub(super) fn write_entry(cache: &UrlCache, entry: &UrlEntry) -> Result<()> {
    let file = EntryFile {
        version: FORMAT_VERSION,
        url: entry.url.clone(),
        sha256: entry.sha256.clone(),
        size: entry.size,
        etag: entry.etag.clone(),
        content_type: entry.content_type.clone(),
        filename: entry.filename.clone(),
        fetched_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let path = cache.entry_path(&key(&entry.url));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    write_json(&path, &file).map_err(|e| Error::io("write", &path, e))
}
