//! Sources: where the files of a pipeline come from, behind one trait.
//!
//! A [`Source`] is registered with the [`Fetcher`] for the spec keys (`hf_repo`,
//! `source`, `local_path`) and the URL schemes (`https`, …) it serves. Planning asks it to resolve
//! a component, or one URL of a `urls:` component, into [`PlanFile`]s. Each planned file carries an
//! [`Origin`]: a handle made by its source that answers every later question about that one file —
//! is it here (with no network), what is wrong with it on disk, bring its bytes through the shared
//! engine, where are the bytes for assembling, what goes into a lockfile. So the planner, `pull`,
//! the assembler and `check` never ask what kind of source a file came from.
//!
//! ```text
//!   spec component ──registry (spec key / URL scheme)──► Source::resolve_* ──► PlanFile { origin }
//!   lock entry     ──registry (kind)───────────────────► Source::unlock    ──► Origin
//!   PlanFile.origin ─► presence (plan) · problem (check) · fetch (pull) · local_path (assemble) · lock
//! ```
//!
//! The built-in kinds are one module each: [`hub`] (Hub repos: the base pipeline, `hf_repo`,
//! `source`), [`url`] (`https://` URLs, civitai.com included) and [`local`] (`local_path`
//! folders). Adding a kind is one module, or a type in another crate, plus
//! [`FetcherBuilder::source`](crate::FetcherBuilder::source); `tests/it/sources.rs` adds a
//! `file://` source from outside the crate.

pub mod hub;
pub mod local;
pub mod mirror;
pub mod url;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use pipefetch_spec::{ComponentSource, PipelineSpec};

use crate::Fetcher;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::lock::{LockedFile, LockedSource};
use crate::pipeline::check::ProblemKind;
use crate::pipeline::plan::{PlanFile, Presence, SpecOrigin};
use crate::progress::{Event, FileId};
pub use mirror::{BlobMirror, MirrorOptions};

/// A kind of place pipeline files come from.
///
/// A source resolves what the spec says into planned files, and rebuilds a planned file from a
/// lockfile entry; everything about one planned file afterwards is its [`FileOrigin`]'s job.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// A short, stable name (`hub`, `url`, `local`): the `kind` of its lockfile entries.
    fn kind(&self) -> &'static str;

    /// The component keys of the spec this source resolves (`hf_repo`, `local_path`, …).
    fn spec_keys(&self) -> &[&'static str] {
        &[]
    }

    /// The URL schemes this source fetches in `urls:` components (`https`, `file`, …).
    fn url_schemes(&self) -> &[&'static str] {
        &[]
    }

    /// The files of one component whose spec key this source serves.
    async fn resolve_component(
        &self,
        cx: &mut PlanContext<'_>,
        component: &ComponentRequest<'_>,
    ) -> Result<Vec<PlanFile>> {
        let _ = cx;
        Err(Error::Invalid(format!(
            "component `{}`: the {} source cannot resolve `{}` entries",
            component.name,
            self.kind(),
            component.source.kind()
        )))
    }

    /// One file of a `urls:` component whose URL scheme this source serves.
    async fn resolve_url(&self, cx: &mut PlanContext<'_>, file: &UrlFile<'_>) -> Result<PlanFile> {
        let _ = cx;
        Err(Error::Invalid(format!(
            "component `{}`: the {} source cannot fetch {}",
            file.component,
            self.kind(),
            file.url
        )))
    }

    /// The origin of a file recorded in a lockfile by this source (no network).
    fn unlock(&self, fetcher: &Fetcher, locked: &LockedFile) -> Result<Origin>;
}

/// Where the bytes of one planned file come from, and everything that depends on it.
///
/// Blocking methods do small file-system work (stat calls; `problem` with `verify` hashes the
/// file): call them from blocking contexts.
#[async_trait]
pub trait FileOrigin: fmt::Debug + Send + Sync + 'static {
    /// The source kind that made it (`hub`, `url`, `local`, …).
    fn kind(&self) -> &'static str;

    /// A short description for tables and messages (`org/name/path@1234abcd`, a URL, a path).
    fn describe(&self) -> String;

    /// The description as JSON for `plan --json`: `{"kind": …, …}`.
    fn to_json(&self) -> serde_json::Value;

    /// The Hub repo id the bytes come from, when they come from one.
    fn hub_repo(&self) -> Option<&str> {
        None
    }

    /// Whether the bytes are already here. Stat calls only, no network.
    fn presence(&self, fetcher: &Fetcher, file: &PlanFile) -> Result<Presence>;

    /// What is wrong with the file on disk for an assembled folder, if anything; with `verify`,
    /// the bytes are hashed against the file's digest. Never a request.
    fn problem(&self, fetcher: &Fetcher, file: &PlanFile, verify: bool) -> Option<ProblemKind>;

    /// Brings the bytes into place (through the run's engine when they cross the network);
    /// `Ok(None)` when there was nothing to do, else the bytes that crossed the network.
    async fn fetch(&self, cx: &FetchContext<'_>, file: &PlanFile) -> Result<Option<u64>>;

    /// The local file holding the bytes, once they are here (`None` otherwise).
    fn local_path(&self, fetcher: &Fetcher) -> Result<Option<PathBuf>>;

    /// How an assembled folder points at the bytes.
    fn link_style(&self) -> LinkStyle {
        LinkStyle::Relative
    }

    /// What a lockfile records of where the bytes come from.
    fn lock(&self) -> LockedSource;

    /// Where the file's bytes land when they come from somewhere else than their origin (a
    /// fleet's mirror): their place in the caches, or `None` when this source keeps no copy of
    /// its own, and so cannot be mirrored.
    fn landing(&self, fetcher: &Fetcher, file: &PlanFile) -> Result<Option<LandingPlace>> {
        let _ = (fetcher, file);
        Ok(None)
    }

    /// Finishes a file whose bytes were brought to [`FileOrigin::landing`] by other means, as
    /// [`FileOrigin::fetch`] finishes its own (a snapshot link, a branch ref, a cache entry).
    async fn landed(&self, cx: &FetchContext<'_>, file: &PlanFile) -> Result<()> {
        let _ = (cx, file);
        Ok(())
    }
}

/// Where a file's bytes land in this machine's caches, for an engine transfer from another URL.
/// Made by the built-in sources only, for now.
#[derive(Debug, Clone)]
pub struct LandingPlace(pub(crate) Arc<dyn crate::engine::Destination>);

/// How an assembled folder points at a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkStyle {
    /// A relative symlink, for bytes in a cache that moves with `HF_HOME`.
    Relative,
    /// An absolute symlink, for a user's own files that stay where they are.
    Absolute,
}

/// A planned file's origin: a shared handle to its [`FileOrigin`]. Serialises as its JSON
/// description.
#[derive(Clone)]
pub struct Origin(Arc<dyn FileOrigin>);

impl Origin {
    /// Wraps a source's file handle.
    pub fn new(origin: impl FileOrigin) -> Origin {
        Origin(Arc::new(origin))
    }
}

impl std::ops::Deref for Origin {
    type Target = dyn FileOrigin;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.to_json().serialize(s)
    }
}

/// One component for [`Source::resolve_component`].
#[derive(Debug)]
#[non_exhaustive]
pub struct ComponentRequest<'a> {
    /// The component's name (`unet`, `vae`, …): its folder in the pipeline.
    pub name: &'a str,
    /// What the spec says about it.
    pub source: &'a ComponentSource,
    /// Its library in `model_index.json` (`diffusers`, `transformers`), when listed there.
    pub library: Option<&'a str>,
}

/// One file of a `urls:` component for [`Source::resolve_url`].
#[derive(Debug)]
#[non_exhaustive]
pub struct UrlFile<'a> {
    /// The component's name.
    pub component: &'a str,
    /// The file's name in the component folder, as the spec gives it (`model.safetensors`).
    pub name: &'a str,
    /// The URL, parsed.
    pub url: &'a pipefetch_hub_client::Url,
    /// The sha256 the spec pins, lowercase hex.
    pub sha256: Option<&'a str>,
}

/// What a source may use while planning one spec.
pub struct PlanContext<'a> {
    fetcher: &'a Fetcher,
    spec: &'a PipelineSpec,
    spec_origin: &'a SpecOrigin,
    offline: bool,
    /// The Hub repos met so far in this plan (commits and listings), shared by every component.
    pub(crate) hub: hub::HubRepos,
}

impl<'a> PlanContext<'a> {
    pub(crate) fn new(
        fetcher: &'a Fetcher,
        spec: &'a PipelineSpec,
        spec_origin: &'a SpecOrigin,
        offline: bool,
    ) -> PlanContext<'a> {
        PlanContext {
            fetcher,
            spec,
            spec_origin,
            offline: offline || fetcher.is_offline(),
            hub: hub::HubRepos::default(),
        }
    }

    /// The fetcher (its cache, client, folders).
    pub fn fetcher(&self) -> &'a Fetcher {
        self.fetcher
    }

    /// The spec being planned.
    pub fn spec(&self) -> &'a PipelineSpec {
        self.spec
    }

    /// Where the spec was read from.
    pub fn spec_origin(&self) -> &'a SpecOrigin {
        self.spec_origin
    }

    /// Whether planning must answer from disk alone (for `check`, or offline mode).
    pub fn offline(&self) -> bool {
        self.offline
    }
}

/// What a source may use while fetching one file in a run.
pub struct FetchContext<'a> {
    pub(crate) fetcher: &'a Fetcher,
    pub(crate) engine: &'a Engine,
    pub(crate) file: FileId,
}

impl FetchContext<'_> {
    /// The fetcher.
    pub fn fetcher(&self) -> &Fetcher {
        self.fetcher
    }

    /// The file's id in progress events.
    pub fn file_id(&self) -> FileId {
        self.file
    }

    /// Sends a progress event of this run.
    pub fn report(&self, event: &Event) {
        self.engine.reporter().report(event);
    }

    /// Counts `bytes` of this file that crossed the network and are on disk (for the run's
    /// heartbeat and totals; `Progress` events are the caller's).
    pub fn count_downloaded(&self, bytes: u64) {
        let tracker = self.engine.tracker();
        tracker.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        tracker.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The sources a fetcher knows, by spec key, URL scheme and kind.
#[derive(Clone)]
pub struct Sources {
    all: Vec<Arc<dyn Source>>,
    by_key: HashMap<String, usize>,
    by_scheme: HashMap<String, usize>,
    by_kind: HashMap<String, usize>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.all.iter().map(|s| s.kind()))
            .finish()
    }
}

impl Default for Sources {
    /// The built-in sources: the Hub, URLs and local folders.
    fn default() -> Sources {
        let mut sources = Sources {
            all: Vec::new(),
            by_key: HashMap::new(),
            by_scheme: HashMap::new(),
            by_kind: HashMap::new(),
        };
        sources.add(Arc::new(hub::HubSource));
        sources.add(Arc::new(url::UrlSource));
        sources.add(Arc::new(local::LocalSource));
        sources
    }
}

impl Sources {
    /// Registers `source` for its kind, spec keys and URL schemes; a later registration replaces
    /// an earlier one for the same key, scheme or kind.
    pub fn add(&mut self, source: Arc<dyn Source>) {
        let index = self.all.len();
        self.by_kind.insert(source.kind().to_string(), index);
        for key in source.spec_keys() {
            self.by_key.insert((*key).to_string(), index);
        }
        for scheme in source.url_schemes() {
            self.by_scheme.insert(scheme.to_ascii_lowercase(), index);
        }
        self.all.push(source);
    }

    /// The source for a component's spec key.
    pub fn for_key(&self, key: &str) -> Option<&Arc<dyn Source>> {
        self.by_key.get(key).map(|&i| &self.all[i])
    }

    /// The source for a URL scheme.
    pub fn for_scheme(&self, scheme: &str) -> Option<&Arc<dyn Source>> {
        self.by_scheme
            .get(&scheme.to_ascii_lowercase())
            .map(|&i| &self.all[i])
    }

    /// The source of a lockfile entry's kind.
    pub fn for_kind(&self, kind: &str) -> Option<&Arc<dyn Source>> {
        self.by_kind.get(kind).map(|&i| &self.all[i])
    }

    /// Every URL scheme some source serves, sorted (for the spec's URL check and messages).
    pub fn url_schemes(&self) -> Vec<String> {
        let mut schemes: Vec<String> = self.by_scheme.keys().cloned().collect();
        schemes.sort();
        schemes
    }

    /// Resolves one spec component with the source registered for its key.
    pub(crate) async fn resolve_component(
        &self,
        cx: &mut PlanContext<'_>,
        component: &ComponentRequest<'_>,
    ) -> Result<Vec<PlanFile>> {
        let key = component.source.kind();
        let source = self.for_key(key).ok_or_else(|| {
            Error::Invalid(format!(
                "component `{}`: no source is registered for `{key}` entries",
                component.name
            ))
        })?;
        source.resolve_component(cx, component).await
    }

    /// Resolves the files of a `urls:` component, each with the source of its URL's scheme.
    pub(crate) async fn resolve_urls(
        &self,
        cx: &mut PlanContext<'_>,
        component: &str,
        urls: &BTreeMap<String, String>,
        pins: &BTreeMap<String, String>,
    ) -> Result<Vec<PlanFile>> {
        let mut out = Vec::with_capacity(urls.len());
        for (name, url) in urls {
            let parsed = pipefetch_hub_client::Url::parse(url).map_err(|e| {
                Error::Invalid(format!("component `{component}`: bad URL {url}: {e}"))
            })?;
            let source = self.for_scheme(parsed.scheme()).ok_or_else(|| {
                Error::Invalid(format!(
                    "component `{component}`: no source fetches `{}://` URLs (known: {})",
                    parsed.scheme(),
                    self.url_schemes().join(", ")
                ))
            })?;
            let pin = pins.get(name).map(|p| p.to_ascii_lowercase());
            let file = UrlFile {
                component,
                name,
                url: &parsed,
                sha256: pin.as_deref(),
            };
            out.push(source.resolve_url(cx, &file).await?);
        }
        Ok(out)
    }

    /// The origin of a lockfile entry, from the source of its kind.
    pub(crate) fn unlock(&self, fetcher: &Fetcher, locked: &LockedFile) -> Result<Origin> {
        let kind = locked.source.kind.as_str();
        let source = self.for_kind(kind).ok_or_else(|| {
            Error::Invalid(format!(
                "`{}`: the lockfile names a source of kind `{kind}`, which this pipefetch does not know",
                locked.target
            ))
        })?;
        source.unlock(fetcher, locked)
    }
}
