//! URL sources: a file from civitai.com or any plain HTTPS server, with a cache of its own.
//!
//! A pipeline spec may take a component's file from a URL (`urls: {model.safetensors: https://…}`).
//! Such a file has no Hub repo, so it cannot live in the Hub cache's `models--org--name` folders
//! (huggingface_hub's `scan_cache_dir` warns about every entry there that is not a repo). It gets a
//! cache of its own, below `$HF_HOME/pipefetch/url-cache-v1/` (the caller passes the folder):
//!
//! ```text
//! url-cache-v1/
//!   blobs/<sha256>                            the content, named by its sha256
//!   entries/<sha256 of the URL>.json          {version, url, sha256, size, etag, content_type,
//!                                              filename, fetched_at}
//!   partial/<sha256 of the URL>.<rand>.incomplete        an interrupted download
//!   partial/<sha256 of the URL>.<rand>.incomplete.json   its validators (size, ETag) and, for one
//!                                                        stream, a checkpoint: the sha256 of its
//!                                                        first N bytes
//!   partial/<sha256 of the URL>.<rand>.incomplete.state  for a download in ranges: which bytes of
//!                                                        each range are on disk (the engine's
//!                                                        record, as for Hub blobs)
//! ```
//!
//! The version is in the folder name and in every JSON file: another format means another folder.
//! A `token` query parameter is dropped from the URL before it names anything, so a key pasted
//! into a URL never lands on disk and the same model is one entry whoever asks for it.
//!
//! # In ranges or in one stream
//! Pipelines fetch URLs through the shared engine (`Engine::fetch_url`, in `url_source/ranged.rs`): a first
//! request asks for `Range: bytes=N-`. A server that answers `206` with the file's total size gets
//! the engine's treatment, like a Hub file: parallel ranges under the connection budget, work
//! stealing, stragglers raced, the `.state` record for resume, and the sha256 computed while the
//! bytes land; the checks below are made before the first byte (the content type, the first
//! bytes) and at the end (the framing, the pin). Any other answer is the whole file, taken as the
//! first answer of the one-stream path below ([`fetch_url`]), which `-v` says.
//!
//! # What a fetch does
//! 1. **Cache first.** An entry whose blob exists with the recorded size (and, when the spec pins a
//!    sha256, whose sha256 is the pin) is the answer: no request at all.
//! 2. **Resume.** An earlier interrupted download of the same URL is claimed by renaming it (two
//!    processes can never both claim one), its checkpointed prefix is re-hashed and compared with
//!    the checkpoint, and the download continues with `Range: bytes=N-` — but only when the
//!    server still announces the same size and ETag. Otherwise (or when the server ignores
//!    `Range`) the file starts again from zero.
//! 3. **Refuse what is not weights.** Where the spec's file name promises weights
//!    ([`expects_weights`]), an answer with `Content-Type: text/html` or `application/json` is
//!    refused before its body is read, the first bytes are sniffed for an HTML/XML page or a JSON
//!    document, and a `.safetensors` file must start with a plausible header. Civitai answers
//!    a JSON or HTML page for some models when no API key is sent; naive tools save it as the
//!    model and every later load breaks.
//! 4. **Verify, then name.** The size is checked against `Content-Length`, the sha256 (computed
//!    while the bytes are written) against the spec's pin, and only then does the partial file
//!    take its final name `blobs/<sha256>`, followed by the entry.
//!
//! # Design decisions
//! - **The token stays with civitai.com.** [`auth_for`] binds `CIVITAI_TOKEN` to the origin of a
//!   civitai.com URL; the client drops it when `/api/download/models/{id}` redirects (307) to the
//!   presigned storage URL. The token goes as `Authorization: Bearer`, never as `?token=`.
//! - **Correctness never depends on locks.** Every file is written under a unique temp name and
//!   renamed into place. Two processes fetching one URL may both download it; the blob's name is
//!   its hash, so the second rename replaces identical content. A partial is adopted only when its
//!   writer released it (it failed cleanly) or has not touched it for a while (it died).
//! - **Headers before bytes.** The first request of a fetch uses [`HubClient::get_stream`] so the
//!   validators are known, and recorded next to the partial, before its first byte is written;
//!   a connection lost mid-body then continues with [`HubClient::download_url`], which resumes
//!   with `Range` under the client's retry policy.
//! - **Checkpoints, not trust.** The partial's sidecar records the sha256 of its first N bytes
//!   (every 32 MiB and whenever the transfer fails), so bytes torn by a crash are never resumed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use pipefetch_hub_client::{
    Auth, BodySink, ByteRange, ByteStream, DownloadHead, HubClient, ResponseInfo, Token, Url,
};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::engine::blocking;
use crate::error::{Error, Result, http_status};
use crate::verify::Hasher;

mod content;
mod disposition;
mod landing;
mod ranged;

pub use content::expects_weights;
use content::{not_weights, refused_content_type, sniff, weights_problem};
use disposition::disposition_filename;

/// The version of the entry and sidecar formats (also in the folder name, `url-cache-v1`).
const FORMAT_VERSION: u32 = 1;

/// Bytes buffered before a write to the partial file.
const WRITE_BUFFER: usize = 1 << 20;

/// How often (in bytes) the partial's checkpoint is refreshed while it grows.
const CHECKPOINT_EVERY: u64 = 32 << 20;

/// Bytes of a file's start kept in memory for the checks below.
const HEAD_BYTES: usize = 4096;

/// Bytes looked at to tell a page or a JSON document from binary weights.
const SNIFF_BYTES: usize = 512;

/// A partial whose writer did not release it is adopted only after it went untouched this long:
/// its writer is then dead (a live one writes at least every idle timeout).
const ABANDONED_AFTER: Duration = Duration::from_secs(120);

/// The cache of URL downloads, outside the Hub cache's repo folders.
///
/// `$HF_HOME/pipefetch/url-cache-v1/` (the caller passes the folder): never inside
/// `HF_HUB_CACHE`, because `scan_cache_dir` warns about any non-repo entry there. The layout is in
/// the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
pub struct UrlCache {
    root: PathBuf,
}

/// One cached URL download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlEntry {
    /// The URL (without any `token` query parameter).
    pub url: String,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The content: `blobs/<sha256>`.
    pub blob: PathBuf,
    /// The file name the server gave in `Content-Disposition`, reduced to a bare name.
    pub filename: Option<String>,
    /// The server's `Content-Type`.
    pub content_type: Option<String>,
    /// The server's `ETag`.
    pub etag: Option<String>,
}

/// What `entries/<key>.json` holds.
#[derive(Serialize, Deserialize)]
struct EntryFile {
    version: u32,
    url: String,
    sha256: String,
    size: u64,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    fetched_at: u64,
}

/// What the sidecar of a partial download holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PartialState {
    version: u32,
    url: String,
    /// The `ETag` the bytes were fetched with.
    #[serde(default)]
    etag: Option<String>,
    /// The whole file's size as the server announced it.
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    content_disposition: Option<String>,
    /// How many leading bytes the checkpoint covers.
    #[serde(default)]
    verified_len: u64,
    /// The sha256 of those bytes.
    #[serde(default)]
    prefix_sha256: String,
    /// Whether the writer gave the file up (it failed cleanly) and another run may take it now.
    #[serde(default)]
    released: bool,
}

/// The validators of an answer: what must not change for a resumed download to be the same file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Validators {
    etag: Option<String>,
    size: Option<u64>,
}

impl Validators {
    fn of(head: &DownloadHead) -> Validators {
        let size = if head.status == 206 {
            head.content_range.and_then(|(_, _, total)| total)
        } else {
            head.info.content_length
        };
        Validators {
            etag: head.info.etag.clone(),
            size,
        }
    }
}

impl PartialState {
    /// Whether bytes fetched under these validators may be continued under `now`'s.
    fn matches(&self, now: &Validators) -> bool {
        (self.etag.is_some() || self.size.is_some())
            && self.etag == now.etag
            && self.size == now.size
    }
}

/// One URL to download.
#[derive(Clone, Debug)]
pub struct UrlRequest {
    /// The URL.
    pub url: Url,
    /// The spec's file name (e.g. `model.safetensors`): decides whether weights are expected.
    pub name: String,
    /// The sha256 the spec pins, if any (hex, either case).
    pub sha256: Option<String>,
    /// The token for the URL's origin (see [`auth_for`]).
    pub auth: Option<Auth>,
}

impl UrlCache {
    /// A cache in `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> UrlCache {
        UrlCache { root: root.into() }
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cached download of `url`, if its blob is present with the recorded size (stat only, no
    /// hashing). A damaged entry reads as absent. Small blocking file I/O.
    pub fn lookup(&self, url: &str) -> Result<Option<UrlEntry>> {
        let id = cache_url(url);
        let path = self.entry_path(&key(&id));
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        // A damaged or foreign entry is as good as none: the URL is fetched again and the entry
        // rewritten.
        let Ok(file) = serde_json::from_slice::<EntryFile>(&text) else {
            return Ok(None);
        };
        if file.version != FORMAT_VERSION || file.url != id || !is_sha256_hex(&file.sha256) {
            return Ok(None);
        }
        let blob = self.blob_path(&file.sha256);
        match fs::metadata(&blob) {
            Ok(meta) if meta.is_file() && meta.len() == file.size => Ok(Some(UrlEntry {
                url: file.url,
                sha256: file.sha256,
                size: file.size,
                blob,
                filename: file.filename,
                content_type: file.content_type,
                etag: file.etag,
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", &blob, e)),
        }
    }

    /// Bytes of an interrupted download of `url` on disk that a fetch would reuse (for plans:
    /// "N bytes left"); 0 when there is none. Small blocking file I/O.
    pub fn partial_bytes(&self, url: &str) -> u64 {
        let id = cache_url(url);
        let k = key(&id);
        let stream = self
            .partial_candidates(&k, &id)
            .into_iter()
            .map(|(state, _)| state.verified_len);
        let ranged = self
            .ranged_candidates(&k, &id)
            .into_iter()
            .map(|c| c.table.done_bytes());
        stream.chain(ranged).max().unwrap_or(0)
    }

    /// Re-hashes a cached entry's blob (for `check --verify`): whether it still has its size and
    /// sha256. A missing blob is `false`. Blocking: it reads the whole file.
    pub fn verify(&self, entry: &UrlEntry) -> Result<bool> {
        let mut file = match File::open(&entry.blob) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("open", &entry.blob, e)),
        };
        let (hasher, _, len) =
            hash_prefix(&mut file, u64::MAX).map_err(|e| Error::io("read", &entry.blob, e))?;
        Ok(len == entry.size && hasher.finish_hex() == entry.sha256)
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.root.join("entries").join(format!("{key}.json"))
    }

    /// The blob `sha256` as a destination of the engine, for bytes of a URL that come from a
    /// fleet's mirror (the URL itself is not asked); [`UrlCache::record`] names it afterwards.
    pub(crate) fn content_blob(&self, sha256: &str) -> crate::engine::ContentBlob {
        crate::engine::ContentBlob::new(self.root.join("blobs"), self.root.join("mirrored"), sha256)
    }

    /// Records that `url` is the blob `sha256` of `size` bytes (already in `blobs/`).
    pub(crate) fn record(&self, url: &str, sha256: &str, size: u64) -> Result<()> {
        let entry = UrlEntry {
            url: cache_url(url),
            sha256: sha256.to_string(),
            size,
            blob: self.blob_path(sha256),
            filename: None,
            content_type: None,
            etag: None,
        };
        ranged::write_entry(self, &entry)
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(sha256)
    }

    fn partial_dir(&self) -> PathBuf {
        self.root.join("partial")
    }

    /// The sidecars of partial downloads of `id` (this format, this URL) with their paths.
    /// Blocking.
    fn partial_sidecars(&self, key: &str, id: &str) -> Vec<(PartialState, PathBuf)> {
        let Ok(dir) = fs::read_dir(self.partial_dir()) else {
            return Vec::new();
        };
        let prefix = format!("{key}.");
        dir.filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".incomplete.json")
            })
            .filter_map(|e| {
                let state: PartialState = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
                (state.version == FORMAT_VERSION && state.url == id).then(|| (state, e.path()))
            })
            .collect()
    }

    /// Sidecars of one-stream partial downloads of `id` worth resuming, with their sidecar
    /// paths, the most advanced first.
    fn partial_candidates(&self, key: &str, id: &str) -> Vec<(PartialState, PathBuf)> {
        let mut found: Vec<(PartialState, PathBuf)> = self
            .partial_sidecars(key, id)
            .into_iter()
            .filter(|(state, sidecar)| {
                state.verified_len > 0
                    && fs::metadata(data_path(sidecar)).is_ok_and(|m| m.len() >= state.verified_len)
            })
            .collect();
        found.sort_by_key(|(state, _)| std::cmp::Reverse(state.verified_len));
        found
    }

    /// Claims the best partial download of `id` left by an earlier run and checks its prefix
    /// against the checkpoint. Blocking.
    fn adopt_partial(&self, key: &str, id: &str) -> Option<Partial> {
        for (state, sidecar) in self.partial_candidates(key, id) {
            let Some((new_data, new_sidecar)) = self.claim(key, &state, &sidecar) else {
                continue;
            };
            match reopen_partial(&new_data, &state) {
                Ok(Some((file, hasher, head))) => {
                    return Some(Partial {
                        data: new_data,
                        sidecar: new_sidecar,
                        state: PartialState {
                            released: false,
                            ..state
                        },
                        file,
                        hasher,
                        head,
                    });
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        "the partial download of {id} does not match its checkpoint; it is discarded"
                    );
                    let _ = fs::remove_file(&new_data);
                    let _ = fs::remove_file(&new_sidecar);
                }
            }
        }
        None
    }

    /// Claims the partial whose sidecar is `sidecar` (with `state`) for this process, unless its
    /// writer may still be running: moves it (data, sidecar, and a ranged download's `.state`) to a
    /// new name of its own. Returns the new data and sidecar paths. Blocking.
    fn claim(&self, key: &str, state: &PartialState, sidecar: &Path) -> Option<(PathBuf, PathBuf)> {
        let data = data_path(sidecar);
        // A live writer touches its data (every write) or its sidecar (on claiming it).
        let idle = [&data, &sidecar.to_path_buf()].iter().all(|p| {
            fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= ABANDONED_AFTER)
        });
        if !state.released && !idle {
            // Its writer may still be running (where locks do not work we cannot ask it).
            return None;
        }
        // Renaming the sidecar out of sight is the claim: of two processes, exactly one
        // succeeds, and no other sees the partial until its new sidecar says it is taken.
        let new_data = self
            .partial_dir()
            .join(format!("{key}.{}.incomplete", rand_suffix()));
        let new_sidecar = sidecar_path(&new_data);
        let mut claim = new_sidecar.as_os_str().to_owned();
        claim.push(".claim");
        let claim = PathBuf::from(claim);
        fs::rename(sidecar, &claim).ok()?;
        let taken = PartialState {
            released: false,
            ..state.clone()
        };
        let moved = fs::rename(&data, &new_data).and_then(|()| {
            // A ranged download's record of which bytes are on disk moves with its data.
            match fs::rename(
                crate::resume::state_path(&data),
                crate::resume::state_path(&new_data),
            ) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            write_json(&new_sidecar, &taken)
        });
        let _ = fs::remove_file(&claim);
        if moved.is_err() {
            let _ = fs::remove_file(&new_data);
            let _ = fs::remove_file(&new_sidecar);
            crate::resume::remove(&new_data);
            return None;
        }
        Some((new_data, new_sidecar))
    }

    /// A fresh, empty partial download of `id`. Blocking.
    fn new_partial(&self, key: &str, id: &str) -> Result<Partial> {
        let dir = self.partial_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let data = dir.join(format!("{key}.{}.incomplete", rand_suffix()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&data)
            .map_err(|e| Error::io("create", &data, e))?;
        let state = PartialState {
            version: FORMAT_VERSION,
            url: id.to_string(),
            ..PartialState::default()
        };
        let sidecar = sidecar_path(&data);
        write_json(&sidecar, &state).map_err(|e| Error::io("write", &sidecar, e))?;
        Ok(Partial {
            data,
            sidecar,
            state,
            file,
            hasher: sha256_hasher(),
            head: Vec::new(),
        })
    }
}

/// A partial download opened for writing at its end.
struct Partial {
    data: PathBuf,
    sidecar: PathBuf,
    state: PartialState,
    file: File,
    /// The hash of the bytes in the file.
    hasher: Hasher,
    /// The file's first bytes (up to [`HEAD_BYTES`]).
    head: Vec<u8>,
}

/// Opens a claimed partial, checks its checkpointed prefix and cuts it there. `None` when the
/// bytes do not match the checkpoint.
fn reopen_partial(
    data: &Path,
    state: &PartialState,
) -> io::Result<Option<(File, Hasher, Vec<u8>)>> {
    let mut file = OpenOptions::new().read(true).write(true).open(data)?;
    let (hasher, head, len) = hash_prefix(&mut file, state.verified_len)?;
    if len != state.verified_len || hasher.clone().finish_hex() != state.prefix_sha256 {
        return Ok(None);
    }
    // Bytes past the checkpoint were never verified: a crash may have torn them.
    file.set_len(len)?;
    file.seek(SeekFrom::Start(len))?;
    Ok(Some((file, hasher, head)))
}

/// Hashes the first `limit` bytes of `file` (fewer if it is shorter): the hasher, the first
/// [`HEAD_BYTES`] and how many bytes were read.
fn hash_prefix(file: &mut File, limit: u64) -> io::Result<(Hasher, Vec<u8>, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = sha256_hasher();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < limit {
        let want = usize::try_from((limit - done).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        if head.len() < HEAD_BYTES {
            let take = n.min(HEAD_BYTES - head.len());
            head.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok((hasher, head, done))
}

/// Downloads (or finds in the cache) one URL. `on_bytes(done, total)` is called as bytes land
/// (total 0 = unknown).
///
/// Errors: [`Error::NotWeights`] (a page or a JSON document where weights were expected),
/// [`Error::PinMismatch`], [`Error::SizeMismatch`] (nothing is kept after any of these), and
/// [`Error::UrlTransfer`] for network failures (the bytes received are kept and the next fetch
/// resumes from them).
pub async fn fetch_url(
    client: &HubClient,
    cache: &UrlCache,
    req: &UrlRequest,
    on_bytes: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<UrlEntry> {
    let id = cache_url(req.url.as_str());
    let pin = pin_of(req, &id)?;
    if let Some(entry) = cached(cache, &id, pin.as_deref()).await? {
        on_bytes(entry.size, entry.size);
        return Ok(entry);
    }
    fetch_stream(client, cache, req, &id, pin, on_bytes, None).await
}

/// The spec's pin, checked and lowercased.
fn pin_of(req: &UrlRequest, id: &str) -> Result<Option<String>> {
    match &req.sha256 {
        Some(p) if is_sha256_hex(p.trim()) => Ok(Some(p.trim().to_ascii_lowercase())),
        Some(p) => Err(Error::Invalid(format!(
            "{id}: the sha256 pin {p:?} is not 64 hexadecimal digits"
        ))),
        None => Ok(None),
    }
}

/// The cached entry of `id`, if present (and matching the pin).
async fn cached(cache: &UrlCache, id: &str, pin: Option<&str>) -> Result<Option<UrlEntry>> {
    let (c, i) = (cache.clone(), id.to_string());
    let found = blocking(move || c.lookup(&i)).await?;
    Ok(found.filter(|entry| pin.is_none_or(|p| p == entry.sha256)))
}

/// Downloads `id` in one stream (resuming an earlier partial with `Range` when the server allows),
/// checks and commits it. `first` is an answer already received (to a request from byte 0).
async fn fetch_stream(
    client: &HubClient,
    cache: &UrlCache,
    req: &UrlRequest,
    id: &str,
    pin: Option<String>,
    on_bytes: &(dyn Fn(u64, u64) + Send + Sync),
    first: Option<(ByteStream, DownloadHead)>,
) -> Result<UrlEntry> {
    let (c, i, fresh) = (cache.clone(), id.to_string(), first.is_some());
    let partial = blocking(move || {
        let k = key(&i);
        match (!fresh).then(|| c.adopt_partial(&k, &i)).flatten() {
            Some(partial) => Ok(partial),
            None => c.new_partial(&k, &i),
        }
    })
    .await?;
    if partial.state.verified_len > 0 {
        tracing::info!(
            "{id}: resuming with {} bytes already on disk",
            partial.state.verified_len
        );
    }
    let mut sink = UrlSink::new(partial, expects_weights(&req.name), on_bytes);
    let ctx = Ctx {
        url: id,
        req,
        dir: cache.partial_dir(),
    };
    match transfer(client, &ctx, &mut sink, first).await {
        Ok(()) => {
            let total = sink.total();
            let parts = sink
                .into_parts()
                .await
                .map_err(|e| ctx.write_error(e, total));
            let parts = match parts {
                Ok(parts) => parts,
                Err(e) => return Err(e),
            };
            let (c, i, name, auth) = (
                cache.clone(),
                id.to_string(),
                req.name.clone(),
                req.auth.is_some(),
            );
            blocking(move || commit(&c, &i, &name, auth, pin.as_deref(), parts)).await
        }
        Err(e) => {
            // Network trouble keeps every byte for the next run; anything else means these bytes
            // are wrong or unwanted.
            let keep = matches!(
                e,
                Error::UrlTransfer { .. } | Error::DiskFull { .. } | Error::Io { .. }
            ) && sink.position() > 0;
            sink.give_up(keep).await;
            Err(e)
        }
    }
}

/// What error messages need.
struct Ctx<'a> {
    /// The URL without a `token` parameter.
    url: &'a str,
    req: &'a UrlRequest,
    dir: PathBuf,
}

impl Ctx<'_> {
    fn transfer_error(&self, source: pipefetch_hub_client::Error) -> Error {
        url_transfer_error(self.url.to_string(), self.req, source)
    }

    /// A failed write into the partial file of a download of `size` bytes (0 = unknown).
    fn write_error(&self, e: io::Error, size: u64) -> Error {
        Error::write(self.dir.clone(), size, e)
    }

    fn not_weights(&self, what: String) -> Error {
        let civitai = is_civitai(&self.req.url);
        not_weights(
            self.url,
            civitai,
            &self.req.name,
            self.req.auth.is_some(),
            what,
        )
    }
}

/// Streams the URL into `sink`, resuming the sink's bytes when the server still serves the same
/// file. `first` is an answer already received for the sink's position.
async fn transfer(
    client: &HubClient,
    ctx: &Ctx<'_>,
    sink: &mut UrlSink<'_>,
    mut first: Option<(ByteStream, DownloadHead)>,
) -> Result<()> {
    let url = &ctx.req.url;
    let auth = ctx.req.auth.as_ref();
    let mut changes = 0;
    loop {
        let from = sink.position();
        if from > 0 && sink.state.size == Some(from) {
            // An earlier run had every byte but stopped before naming the blob.
            return Ok(());
        }
        let range = (from > 0).then_some(ByteRange::from(from..));
        let answer = match first.take() {
            Some(answer) => Ok(answer),
            None => client.get_stream(url, auth, range).await,
        };
        let (mut stream, head) = match answer {
            Ok(answer) => answer,
            Err(e) if from > 0 && http_status(&e) == Some(416) => {
                // The file shrank or changed: what we have cannot be continued.
                sink.restart(0)
                    .await
                    .map_err(|e| ctx.write_error(e, sink.total()))?;
                continue;
            }
            Err(e) => return Err(ctx.transfer_error(e)),
        };
        let validators = Validators::of(&head);
        if from > 0 {
            let continues = head.status == 206
                && head
                    .content_range
                    .is_some_and(|(first, _, _)| first == from)
                && sink.state.matches(&validators);
            if !continues {
                tracing::info!(
                    "{}: the server {}; starting again from zero",
                    ctx.url,
                    if head.status == 206 {
                        "now serves another file (size or ETag changed)"
                    } else {
                        "ignored Range"
                    }
                );
                sink.restart(0)
                    .await
                    .map_err(|e| ctx.write_error(e, sink.total()))?;
                if head.status != 200 {
                    continue;
                }
            }
        } else if head.status != 200 && head.content_range.is_none_or(|(first, _, _)| first != 0) {
            return Err(ctx.transfer_error(pipefetch_hub_client::Error::Protocol {
                url: pipefetch_hub_client::redact_url(&head.final_url),
                what: format!("status {} to a request without Range", head.status),
            }));
        }
        if sink.weights
            && let Some(what) = refused_content_type(head.info.content_type.as_deref())
        {
            return Err(ctx.not_weights(what));
        }
        sink.record_answer(&validators, &head.info)
            .await
            .map_err(|e| ctx.write_error(e, sink.total()))?;

        let mut failure = None;
        loop {
            match stream.next_chunk().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = sink.write(chunk).await {
                        return Err(sink_error(ctx, sink, e));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(stream);
        let failure = failure.or_else(|| {
            validators
                .size
                .filter(|&size| sink.position() < size)
                .map(|size| pipefetch_hub_client::Error::BodyCut {
                    url: pipefetch_hub_client::redact_url(&head.final_url),
                    received: sink.position(),
                    expected: size,
                })
        });
        let Some(error) = failure else {
            return Ok(());
        };
        if !error.is_retryable() || client.retry_policy().max_attempts <= 1 {
            return Err(ctx.transfer_error(error));
        }
        // The client resumes from the sink's position with `Range`, under its retry policy.
        tracing::info!("{}: {error}; resuming at byte {}", ctx.url, sink.position());
        let outcome = match client.download_url(url, auth, 0.., sink).await {
            Ok(outcome) => outcome,
            Err(e) => return Err(sink_error_hub(ctx, sink, e)),
        };
        if outcome.restarted {
            // The server sent the whole file again: its answer's validators are the file's.
            sink.state.etag = outcome.info.etag.clone();
            sink.state.size = outcome.total;
            return Ok(());
        }
        let etag_changed = outcome.info.etag.is_some()
            && sink.state.etag.is_some()
            && outcome.info.etag != sink.state.etag;
        let size_changed = outcome.total.is_some()
            && sink.state.size.is_some()
            && outcome.total != sink.state.size;
        if etag_changed || size_changed {
            // The file changed between two ranges: the bytes are a mix. Start over once.
            changes += 1;
            if changes > 1 {
                return Err(Error::Invalid(format!(
                    "{}: the file kept changing during the download (its size or ETag differed between two ranges); run again later",
                    ctx.url
                )));
            }
            sink.restart(0)
                .await
                .map_err(|e| ctx.write_error(e, sink.total()))?;
            continue;
        }
        return Ok(());
    }
}

/// The error for a failed sink write: a refusal, or the disk.
fn sink_error(ctx: &Ctx<'_>, sink: &UrlSink<'_>, e: io::Error) -> Error {
    match &sink.refused {
        Some(what) => ctx.not_weights(what.clone()),
        None => ctx.write_error(e, sink.total()),
    }
}

/// The error for a failed client download, which may hide a refusal or a disk error.
fn sink_error_hub(ctx: &Ctx<'_>, sink: &UrlSink<'_>, e: pipefetch_hub_client::Error) -> Error {
    if let Some(what) = &sink.refused {
        return ctx.not_weights(what.clone());
    }
    if let pipefetch_hub_client::Error::Io { source, .. } = &e {
        let e = io::Error::new(source.kind(), source.to_string());
        return ctx.write_error(e, sink.total());
    }
    ctx.transfer_error(e)
}

/// What the finished partial needs to be checked and committed.
struct Finished {
    data: PathBuf,
    sidecar: PathBuf,
    state: PartialState,
    file: File,
    hasher: Hasher,
    head: Vec<u8>,
    len: u64,
    weights: bool,
}

/// Checks a complete download and gives it its final names: the blob, then the entry. Any check
/// that fails deletes the partial. Blocking.
fn commit(
    cache: &UrlCache,
    id: &str,
    name: &str,
    authenticated: bool,
    pin: Option<&str>,
    mut f: Finished,
) -> Result<UrlEntry> {
    let civitai = Url::parse(id).is_ok_and(|u| is_civitai(&u));
    let discard = |f: &Finished| {
        let _ = fs::remove_file(&f.data);
        let _ = fs::remove_file(&f.sidecar);
    };
    if let Some(size) = f.state.size
        && size != f.len
    {
        discard(&f);
        return Err(Error::SizeMismatch {
            source_label: id.to_string(),
            path: name.to_string(),
            expected: size,
            actual: f.len,
        });
    }
    if f.weights {
        let what = refused_content_type(f.state.content_type.as_deref())
            .or_else(|| weights_problem(&mut f.file, &f.head, f.len, name));
        if let Some(what) = what {
            discard(&f);
            return Err(not_weights(id, civitai, name, authenticated, what));
        }
    }
    let sha256 = f.hasher.clone().finish_hex();
    if let Some(pin) = pin
        && pin != sha256
    {
        discard(&f);
        return Err(Error::PinMismatch {
            url: id.to_string(),
            expected: pin.to_string(),
            actual: sha256,
        });
    }
    let Finished {
        data,
        sidecar,
        state,
        file,
        len,
        ..
    } = f;
    drop(file);
    let blobs = cache.root.join("blobs");
    fs::create_dir_all(&blobs).map_err(|e| Error::io("create", &blobs, e))?;
    let blob = cache.blob_path(&sha256);
    // Another process may have committed the same content already: same name, same bytes.
    let present = fs::metadata(&blob).is_ok_and(|m| m.len() == len);
    if present {
        let _ = fs::remove_file(&data);
    } else {
        fs::rename(&data, &blob).map_err(|e| Error::io("rename into place", &blob, e))?;
    }
    let _ = fs::remove_file(&sidecar);
    let entry = UrlEntry {
        url: id.to_string(),
        sha256: sha256.clone(),
        size: len,
        blob,
        filename: state
            .content_disposition
            .as_deref()
            .and_then(disposition_filename),
        content_type: state.content_type,
        etag: state.etag,
    };
    let file = EntryFile {
        version: FORMAT_VERSION,
        url: entry.url.clone(),
        sha256,
        size: entry.size,
        etag: entry.etag.clone(),
        content_type: entry.content_type.clone(),
        filename: entry.filename.clone(),
        fetched_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let path = cache.entry_path(&key(id));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    write_json(&path, &file).map_err(|e| Error::io("write", &path, e))?;
    Ok(entry)
}

/// Which token goes with a URL: `CIVITAI_TOKEN` (passed in) for civitai.com and its subdomains
/// over https, bound to that URL's origin so that redirects elsewhere drop it. The token goes as
/// an `Authorization: Bearer` header only: `?token=` is never added.
pub fn auth_for(url: &Url, civitai_token: Option<&Token>) -> Option<Auth> {
    let token = civitai_token?;
    is_civitai(url).then(|| Auth::for_url(url, token.clone()))
}

/// Whether `url` is civitai.com (or a subdomain) over https.
/// [`Error::UrlTransfer`] for a failed download of `id` (the URL without its token).
fn url_transfer_error(id: String, req: &UrlRequest, source: pipefetch_hub_client::Error) -> Error {
    Error::UrlTransfer {
        civitai: is_civitai(&req.url),
        url: id,
        name: req.name.clone(),
        source: Box::new(source),
    }
}

fn is_civitai(url: &Url) -> bool {
    if url.scheme() != "https" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "civitai.com" || host.ends_with(".civitai.com")
}

/// Writes a URL download to its partial file, hashing what it writes, and refuses a page or a
/// JSON document where weights are expected as soon as the first bytes show it.
struct UrlSink<'a> {
    data: PathBuf,
    sidecar: PathBuf,
    state: PartialState,
    /// The file and the hash of its bytes; `None` only after a write failed.
    disk: Option<(File, Hasher)>,
    /// Bytes in the file.
    on_disk: u64,
    buf: BytesMut,
    head: Vec<u8>,
    sniffed: bool,
    weights: bool,
    /// Why the body was refused, once it was.
    refused: Option<String>,
    next_checkpoint: u64,
    on_bytes: &'a (dyn Fn(u64, u64) + Send + Sync),
}

impl<'a> UrlSink<'a> {
    fn new(
        p: Partial,
        weights: bool,
        on_bytes: &'a (dyn Fn(u64, u64) + Send + Sync),
    ) -> UrlSink<'a> {
        let on_disk = p.state.verified_len;
        UrlSink {
            data: p.data,
            sidecar: p.sidecar,
            state: p.state,
            disk: Some((p.file, p.hasher)),
            on_disk,
            buf: BytesMut::new(),
            sniffed: p.head.len() >= SNIFF_BYTES,
            head: p.head,
            weights,
            refused: None,
            next_checkpoint: on_disk + CHECKPOINT_EVERY,
            on_bytes,
        }
    }

    fn total(&self) -> u64 {
        self.state.size.unwrap_or(0)
    }

    /// Records an answer's validators and headers next to the partial, before its body.
    async fn record_answer(&mut self, v: &Validators, info: &ResponseInfo) -> io::Result<()> {
        self.state.etag = v.etag.clone();
        self.state.size = v.size;
        self.state.content_type = info.content_type.clone();
        if info.content_disposition.is_some() {
            self.state.content_disposition = info.content_disposition.clone();
        }
        self.save_state().await?;
        (self.on_bytes)(self.position(), self.total());
        Ok(())
    }

    async fn save_state(&self) -> io::Result<()> {
        let (path, state) = (self.sidecar.clone(), self.state.clone());
        tokio::task::spawn_blocking(move || write_json(&path, &state))
            .await
            .map_err(io::Error::other)?
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        let (mut file, mut hasher) = self
            .disk
            .take()
            .ok_or_else(|| io::Error::other("an earlier write to the partial file failed"))?;
        let (file, hasher) = tokio::task::spawn_blocking(move || {
            file.write_all(&chunk)?;
            hasher.update(&chunk);
            Ok::<_, io::Error>((file, hasher))
        })
        .await
        .map_err(io::Error::other)??;
        self.disk = Some((file, hasher));
        Ok(())
    }

    /// Records the bytes on disk and their hash in the sidecar, so a later run can resume them.
    async fn checkpoint(&mut self, released: bool) -> io::Result<()> {
        if let Some((_, hasher)) = &self.disk {
            self.state.verified_len = self.on_disk;
            self.state.prefix_sha256 = hasher.clone().finish_hex();
        }
        self.state.released = released;
        self.save_state().await
    }

    /// Ends a failed fetch: keeps the partial (flushed, checkpointed and released) or deletes it.
    async fn give_up(mut self, keep: bool) {
        if keep {
            // A failed flush (a full disk) still leaves the last checkpoint's bytes to resume.
            let _ = self.flush_and_count().await;
            if self.checkpoint(true).await.is_ok() {
                return;
            }
        }
        self.disk = None;
        let (data, sidecar) = (self.data.clone(), self.sidecar.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let _ = fs::remove_file(&data);
            let _ = fs::remove_file(&sidecar);
        })
        .await;
    }

    /// Writes the buffer and counts it as on disk.
    async fn flush_and_count(&mut self) -> io::Result<()> {
        let n = self.buf.len() as u64;
        self.flush().await?;
        self.on_disk += n;
        if self.on_disk >= self.next_checkpoint {
            self.next_checkpoint = self.on_disk + CHECKPOINT_EVERY;
            self.checkpoint(false).await?;
        }
        Ok(())
    }

    /// Flushes and hands over what the checks need.
    async fn into_parts(mut self) -> io::Result<Finished> {
        self.flush_and_count().await?;
        let (file, hasher) = self
            .disk
            .take()
            .ok_or_else(|| io::Error::other("an earlier write to the partial file failed"))?;
        Ok(Finished {
            data: self.data.clone(),
            sidecar: self.sidecar.clone(),
            state: self.state.clone(),
            file,
            hasher,
            head: std::mem::take(&mut self.head),
            len: self.on_disk,
            weights: self.weights,
        })
    }
}

impl BodySink for UrlSink<'_> {
    async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        if let Some(what) = &self.refused {
            return Err(io::Error::new(io::ErrorKind::InvalidData, what.clone()));
        }
        if self.head.len() < HEAD_BYTES && self.position() == self.head.len() as u64 {
            let take = chunk.len().min(HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if !self.sniffed && self.head.len() >= SNIFF_BYTES {
            self.sniffed = true;
            if self.weights
                && let Some(what) = sniff(&self.head)
            {
                self.refused = Some(what.to_string());
                return Err(io::Error::new(io::ErrorKind::InvalidData, what));
            }
        }
        self.buf.extend_from_slice(&chunk);
        if self.buf.len() >= WRITE_BUFFER {
            self.flush_and_count().await?;
        }
        (self.on_bytes)(self.position(), self.total());
        Ok(())
    }

    async fn restart(&mut self, from: u64) -> io::Result<()> {
        // The server sends the file from `from` again: cut the file there and re-hash what stays.
        self.buf.clear();
        let (mut file, _) = self
            .disk
            .take()
            .ok_or_else(|| io::Error::other("an earlier write to the partial file failed"))?;
        let from = from.min(self.on_disk);
        let (file, hasher, head) = tokio::task::spawn_blocking(move || {
            file.set_len(from)?;
            let (hasher, head, _) = hash_prefix(&mut file, from)?;
            file.seek(SeekFrom::Start(from))?;
            Ok::<_, io::Error>((file, hasher, head))
        })
        .await
        .map_err(io::Error::other)??;
        self.disk = Some((file, hasher));
        self.on_disk = from;
        self.sniffed = head.len() >= SNIFF_BYTES;
        self.head = head;
        self.refused = None;
        self.next_checkpoint = from + CHECKPOINT_EVERY;
        // The new bytes may belong to another version of the file: until the caller records the
        // new answer's validators, nothing here may be resumed.
        self.state.etag = None;
        self.state.size = None;
        self.state.verified_len = 0;
        self.state.prefix_sha256 = sha256_hasher().finish_hex();
        self.save_state().await?;
        (self.on_bytes)(from, 0);
        Ok(())
    }

    fn position(&self) -> u64 {
        self.on_disk + self.buf.len() as u64
    }
}

/// The URL as the cache names it: parsed and printed again, without `token` query parameters.
pub(crate) fn cache_url(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return url.to_string();
    };
    let has_token = parsed
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("token"));
    if has_token {
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("token"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    parsed.to_string()
}

/// The file-name key of a URL: the hex sha256 of its cache form.
fn key(id: &str) -> String {
    hex::encode(sha2::Sha256::digest(id.as_bytes()))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn sha256_hasher() -> Hasher {
    Hasher::Sha256(Box::default())
}

fn rand_suffix() -> String {
    format!("{:x}{:016x}", std::process::id(), fastrand::u64(..))
}

/// `x.incomplete.json` → `x.incomplete`.
fn data_path(sidecar: &Path) -> PathBuf {
    sidecar.with_extension("")
}

/// `x.incomplete` → `x.incomplete.json`.
fn sidecar_path(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Writes JSON to a temp file beside `path` and renames it into place.
fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", rand_suffix()));
    let tmp = PathBuf::from(tmp);
    let result = fs::write(&tmp, &bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::content::safetensors_problem;
    use super::*;

    #[test]
    fn content_disposition_names() {
        let cases = [
            (
                r#"attachment; filename="real name.safetensors""#,
                Some("real name.safetensors"),
            ),
            ("attachment; filename=plain.ckpt", Some("plain.ckpt")),
            (
                r#"attachment; filename="fallback.bin"; filename*=UTF-8''caf%C3%A9%20v2.safetensors"#,
                Some("café v2.safetensors"),
            ),
            (
                r#"attachment; filename="a;b \"q\".pt""#,
                Some(r#"a;b "q".pt"#),
            ),
            (r#"attachment; filename="../../etc/passwd""#, Some("passwd")),
            (r#"attachment; filename="..""#, None),
            ("attachment", None),
            ("attachment; filename*=UTF-8''bad%zz", None),
        ];
        for (header, want) in cases {
            assert_eq!(disposition_filename(header).as_deref(), want, "{header}");
        }
    }

    #[test]
    fn sniffing_tells_pages_from_weights() {
        assert_eq!(
            sniff(b"\n  <!DOCTYPE html><html><body>Log in</body></html>"),
            Some("an HTML page")
        );
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code></Error>"),
            Some("an XML or HTML document")
        );
        assert_eq!(
            sniff(br#"{"error":"Unauthorized","message":"log in"}"#),
            Some("a JSON document")
        );
        assert_eq!(sniff(b"\xEF\xBB\xBF[1, 2]"), Some("a JSON document"));
        // A safetensors header whose length happens to start with `{"` still has NULs.
        let mut st = 8827u64.to_le_bytes().to_vec();
        st.extend_from_slice(br#"{"a":1}"#);
        assert_eq!(&st[..2], b"{\"");
        assert_eq!(sniff(&st), None);
        assert_eq!(sniff(b"PK\x03\x04\x14\x00"), None);
        assert_eq!(sniff(b"GGUF\x03\x00\x00\x00"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn content_types() {
        assert_eq!(
            refused_content_type(Some("text/html; charset=utf-8")).as_deref(),
            Some("an HTML page (Content-Type: text/html)")
        );
        assert_eq!(
            refused_content_type(Some("Application/JSON")).as_deref(),
            Some("a JSON document (Content-Type: application/json)")
        );
        assert_eq!(refused_content_type(Some("application/octet-stream")), None);
        assert_eq!(refused_content_type(None), None);
    }

    #[test]
    fn tokens_never_name_anything() {
        assert_eq!(
            cache_url("https://civitai.com/api/download/models/1?type=Model&token=secret"),
            "https://civitai.com/api/download/models/1?type=Model"
        );
        assert_eq!(
            cache_url("https://civitai.com/api/download/models/1?token=secret"),
            "https://civitai.com/api/download/models/1"
        );
        assert_eq!(
            cache_url("https://x.example/a?b=1"),
            "https://x.example/a?b=1"
        );
        assert_eq!(key("a").len(), 64);
    }

    #[test]
    fn safetensors_framing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let check = |bytes: &[u8]| {
            let path = dir.path().join("f");
            fs::write(&path, bytes).expect("write");
            let mut file = File::open(&path).expect("open");
            let head = &bytes[..bytes.len().min(HEAD_BYTES)];
            safetensors_problem(&mut file, head, bytes.len() as u64)
        };
        let header = br#"{"__metadata__":{}}   "#;
        let mut good = (header.len() as u64).to_le_bytes().to_vec();
        good.extend_from_slice(header);
        good.extend_from_slice(&[7; 100]);
        assert_eq!(check(&good), None);
        let mut long = (1u64 << 40).to_le_bytes().to_vec();
        long.extend_from_slice(header);
        assert!(check(&long).is_some_and(|w| w.contains("1099511627776")));
        let mut short = 500u64.to_le_bytes().to_vec();
        short.extend_from_slice(header);
        assert!(check(&short).is_some_and(|w| w.contains("claims 500 bytes")));
        let mut unclosed = (header.len() as u64 - 5).to_le_bytes().to_vec();
        unclosed.extend_from_slice(header);
        assert!(check(&unclosed).is_some_and(|w| w.contains("end with")));
        assert!(check(b"tiny").is_some_and(|w| w.contains("only 4 bytes")));
    }
}
