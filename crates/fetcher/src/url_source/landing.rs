//! The URL cache as a destination of the engine: a ranged download lands in
//! `partial/<key>.<rand>.incomplete` (with its validators in `.incomplete.json` and the engine's
//! record of written ranges in `.incomplete.state`), and is named `blobs/<sha256>` by the digest
//! the engine computed, once the checks a URL needs have passed.

use std::any::Any;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::{
    FORMAT_VERSION, HEAD_BYTES, PartialState, UrlCache, data_path, is_civitai, key, not_weights,
    rand_suffix, refused_content_type, sidecar_path, weights_problem, write_json,
};
use crate::engine::{BlobJob, Destination, Landing};
use crate::error::{Error, Result};
use crate::resume::{self, ChunkTable};
use pipefetch_hub_client::Url;

/// A ranged download of one URL into the URL cache.
#[derive(Debug, Clone)]
pub(crate) struct UrlBlob {
    pub(crate) cache: UrlCache,
    /// The URL without a `token` parameter.
    pub(crate) id: String,
    /// The spec's file name.
    pub(crate) name: String,
    /// Whether a token was sent (for the hint of a refusal).
    pub(crate) authenticated: bool,
    /// The sha256 the spec pins.
    pub(crate) pin: Option<String>,
    /// What the sidecar records: the validators and headers of the server's answer.
    pub(super) state: PartialState,
}

impl UrlBlob {
    fn key(&self) -> String {
        key(&self.id)
    }
}

impl Destination for UrlBlob {
    fn dir(&self) -> PathBuf {
        self.cache.partial_dir()
    }

    fn identity(&self) -> String {
        self.key()
    }

    /// The caller looked the URL up before probing it.
    fn present(&self, _size: u64) -> Result<bool> {
        Ok(false)
    }

    /// No lock: two processes may both download a URL; the blob is named by its content, so the
    /// second rename replaces identical bytes.
    fn lock(&self) -> Result<Option<Box<dyn Any + Send>>> {
        Ok(None)
    }

    /// The caller claims a partial itself (it must compare validators first).
    fn resume(&self, _size: u64) -> Result<Option<(Box<dyn Landing>, ChunkTable)>> {
        Ok(None)
    }

    fn begin(&self) -> Result<Box<dyn Landing>> {
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let data = dir.join(format!("{}.{}.incomplete", self.key(), rand_suffix()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&data)
            .map_err(|e| Error::io("create", &data, e))?;
        let sidecar = sidecar_path(&data);
        self.landing(data, sidecar, file)
    }

    fn transfer_error(&self, job: &BlobJob, source: pipefetch_hub_client::Error) -> Error {
        match Error::transfer(&job.source, &job.path, job.size, &self.dir(), source) {
            Error::Transfer { source, .. } => Error::UrlTransfer {
                civitai: Url::parse(&self.id).is_ok_and(|u| is_civitai(&u)),
                url: self.id.clone(),
                name: self.name.clone(),
                source,
            },
            other => other,
        }
    }
}

impl UrlBlob {
    /// Reopens a partial claimed from an earlier run (see `UrlCache::claim`).
    pub(crate) fn adopt(&self, data: PathBuf, sidecar: PathBuf) -> Result<Box<dyn Landing>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&data)
            .map_err(|e| Error::io("open", &data, e))?;
        self.landing(data, sidecar, file)
    }

    /// The landing writing into `data`, its sidecar recording this run's answer (an adopted
    /// partial's earlier headers are replaced: the validators are the same).
    fn landing(&self, data: PathBuf, sidecar: PathBuf, file: File) -> Result<Box<dyn Landing>> {
        let state = PartialState {
            version: FORMAT_VERSION,
            url: self.id.clone(),
            released: false,
            ..self.state.clone()
        };
        write_json(&sidecar, &state).map_err(|e| Error::io("write", &sidecar, e))?;
        Ok(Box::new(UrlLanding {
            dest: self.clone(),
            data,
            sidecar,
            file,
            state,
        }))
    }
}

struct UrlLanding {
    dest: UrlBlob,
    data: PathBuf,
    sidecar: PathBuf,
    file: File,
    state: PartialState,
}

impl UrlLanding {
    fn remove(&self) {
        let _ = fs::remove_file(&self.data);
        let _ = fs::remove_file(&self.sidecar);
        resume::remove(&self.data);
    }
}

impl Landing for UrlLanding {
    fn path(&self) -> &Path {
        &self.data
    }

    fn file(&self) -> &File {
        &self.file
    }

    /// Refuses a page or a JSON document where weights were expected, and bytes that do not hash
    /// to the spec's pin; then names the blob by its sha256.
    fn commit(self: Box<Self>, digest: &str) -> Result<PathBuf> {
        let dest = &self.dest;
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &self.data, e))?
            .len();
        if super::expects_weights(&dest.name) {
            let mut head = vec![0u8; HEAD_BYTES.min(usize::try_from(len).unwrap_or(HEAD_BYTES))];
            self.file
                .read_exact_at(&mut head, 0)
                .map_err(|e| Error::io("read", &self.data, e))?;
            let mut file = self
                .file
                .try_clone()
                .map_err(|e| Error::io("open", &self.data, e))?;
            let what = refused_content_type(self.state.content_type.as_deref())
                .or_else(|| weights_problem(&mut file, &head, len, &dest.name));
            if let Some(what) = what {
                self.remove();
                let civitai = Url::parse(&dest.id).is_ok_and(|u| is_civitai(&u));
                return Err(not_weights(
                    &dest.id,
                    civitai,
                    &dest.name,
                    dest.authenticated,
                    what,
                ));
            }
        }
        if let Some(pin) = &dest.pin
            && pin != digest
        {
            self.remove();
            return Err(Error::PinMismatch {
                url: dest.id.clone(),
                expected: pin.clone(),
                actual: digest.to_string(),
            });
        }
        let blobs = dest.cache.root().join("blobs");
        fs::create_dir_all(&blobs).map_err(|e| Error::io("create", &blobs, e))?;
        let blob = dest.cache.blob_path(digest);
        // Another process may have committed the same content already: same name, same bytes.
        if fs::metadata(&blob).is_ok_and(|m| m.len() == len) {
            let _ = fs::remove_file(&self.data);
        } else {
            fs::rename(&self.data, &blob).map_err(|e| Error::io("rename into place", &blob, e))?;
        }
        let _ = fs::remove_file(&self.sidecar);
        resume::remove(&self.data);
        Ok(blob)
    }

    fn keep(self: Box<Self>) {
        // Released: the next run may take it over at once.
        let state = PartialState {
            released: true,
            ..self.state.clone()
        };
        if write_json(&self.sidecar, &state).is_err() {
            self.remove();
        }
    }

    fn discard(self: Box<Self>) {
        self.remove();
    }
}

/// A ranged partial left by an earlier run.
pub(super) struct RangedCandidate {
    pub(super) state: PartialState,
    pub(super) sidecar: PathBuf,
    pub(super) table: ChunkTable,
}

impl UrlCache {
    /// Ranged partial downloads of `id` with bytes worth resuming, the most advanced first.
    /// Blocking.
    pub(super) fn ranged_candidates(&self, key: &str, id: &str) -> Vec<RangedCandidate> {
        let mut found: Vec<RangedCandidate> = self
            .partial_sidecars(key, id)
            .into_iter()
            .filter(|(state, _)| state.verified_len == 0)
            .filter_map(|(state, sidecar)| {
                let table = resume::load(&data_path(&sidecar), key, state.size?)?;
                (table.done_bytes() > 0).then_some(RangedCandidate {
                    state,
                    sidecar,
                    table,
                })
            })
            .collect();
        found.sort_by_key(|c| std::cmp::Reverse(c.table.done_bytes()));
        found
    }
}
