//! A fleet's mirror in front of every other source: the bytes of a locked file come from the
//! mirror first (a presigned URL of its content-addressed blob, or a lockfile's `mirror_url`),
//! through the same engine (one budget, ranges, resume), verified against the locked sha256, and
//! land exactly where the file's own source would have put them (a Hub file under the Hub's blob
//! name, with its snapshot link and branch ref), so every other tool finds them as if they came
//! from their origin.
//!
//! A blob the mirror lacks, or whose bytes do not hash to the lock's sha256 (a poisoned or damaged
//! mirror), comes from its origin instead, with a warning and a `retry` event; with
//! [`MirrorOptions::only`] that is an error naming the file. The mirror is a wrapper
//! ([`MirroredOrigin`]) around each planned file's own origin, so the planner, `check` and the
//! assembler see the file's own source, and no source knows about mirrors.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pipefetch_hub_client::Url;

use super::{FetchContext, FileOrigin, LandingPlace, LinkStyle, Origin};
use crate::Fetcher;
use crate::engine::BlobJob;
use crate::error::{Error, Result};
use crate::lock::LockedSource;
use crate::pipeline::check::ProblemKind;
use crate::pipeline::plan::{PlanFile, Presence};
use crate::progress::Event;
use crate::verify::Expected;

/// A store of blobs by sha256 that the engine can read over HTTP: a fleet's mirror (an
/// S3-compatible bucket whose `pipefetch-mirror` signs the URLs).
#[async_trait]
pub trait BlobMirror: Send + Sync + fmt::Debug + 'static {
    /// The mirror as messages and events name it (`s3://bucket/prefix`), with no credential.
    fn name(&self) -> String;

    /// A URL serving the blob with this sha256 to a `GET` (ranges allowed), such as a presigned
    /// URL. A blob the mirror lacks may simply answer 404 there: the file then comes from its
    /// origin.
    async fn blob_url(&self, sha256: &str) -> Result<Url>;
}

/// How a locked pull uses mirrors.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct MirrorOptions {
    /// A mirror to fetch every file from first. Files of a lockfile that carry a `mirror_url`
    /// (a presigned lock) use it even without one.
    pub mirror: Option<Arc<dyn BlobMirror>>,
    /// Fail, naming the file, instead of falling back to the origin.
    pub only: bool,
}

impl MirrorOptions {
    /// Every file from `mirror` first.
    pub fn with(mirror: Arc<dyn BlobMirror>) -> MirrorOptions {
        MirrorOptions {
            mirror: Some(mirror),
            only: false,
        }
    }

    /// No fallback to the origin.
    pub fn only(mut self, only: bool) -> MirrorOptions {
        self.only = only;
        self
    }
}

/// Where a mirrored file's URL comes from.
#[derive(Debug, Clone)]
enum MirrorUrl {
    /// A lockfile's `mirror_url` (a presigned URL made by whoever holds the credentials).
    Fixed(Url),
    /// A mirror that signs URLs here.
    Store(Arc<dyn BlobMirror>),
}

/// A planned file whose bytes come from a mirror first, then from its own origin.
#[derive(Debug)]
pub struct MirroredOrigin {
    inner: Origin,
    from: MirrorUrl,
    sha256: String,
    only: bool,
}

impl MirroredOrigin {
    /// `inner` (a locked file of sha256 `sha256`), fetched first from `options`' mirror or from
    /// `mirror_url`; `None` when neither applies.
    pub(crate) fn wrap(
        inner: Origin,
        sha256: &str,
        mirror_url: Option<&str>,
        options: &MirrorOptions,
    ) -> Result<Option<Origin>> {
        let from = match (mirror_url, &options.mirror) {
            (_, Some(store)) => MirrorUrl::Store(Arc::clone(store)),
            (Some(url), None) => MirrorUrl::Fixed(Url::parse(url).map_err(|e| Error::Locked {
                what: format!("a `mirror_url` of the lockfile is not a URL: {e}"),
            })?),
            (None, None) => return Ok(None),
        };
        Ok(Some(Origin::new(MirroredOrigin {
            inner,
            from,
            sha256: sha256.to_string(),
            only: options.only,
        })))
    }

    fn mirror_name(&self) -> String {
        match &self.from {
            MirrorUrl::Store(store) => store.name(),
            // A presigned URL's query is its credential: only its origin is named.
            MirrorUrl::Fixed(url) => url.origin().ascii_serialization(),
        }
    }

    /// Brings the bytes from the mirror into the file's own landing place.
    async fn fetch_from_mirror(
        &self,
        cx: &FetchContext<'_>,
        file: &PlanFile,
    ) -> Result<Option<u64>> {
        let Some(place) = self.inner.landing(cx.fetcher(), file)? else {
            return Err(Error::Invalid(format!(
                "a {} file has no place to land bytes from a mirror",
                self.inner.kind()
            )));
        };
        let url = match &self.from {
            MirrorUrl::Fixed(url) => url.clone(),
            MirrorUrl::Store(store) => store.blob_url(&self.sha256).await?,
        };
        let job = BlobJob {
            file: cx.file_id(),
            source: self.mirror_name(),
            path: file.target.clone(),
            direct_url: Some(url.clone()),
            url,
            auth: None,
            size: file.size.unwrap_or(0),
            expected: Expected::Sha256(self.sha256.clone()),
            validator: None,
            dest: place.0,
        };
        let fetched = cx.engine.fetch(&job).await?;
        self.inner.landed(cx, file).await?;
        Ok(Some(fetched.downloaded))
    }
}

#[async_trait]
impl FileOrigin for MirroredOrigin {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn to_json(&self) -> serde_json::Value {
        let mut json = self.inner.to_json();
        if let Some(map) = json.as_object_mut() {
            map.insert("mirror".into(), self.mirror_name().into());
        }
        json
    }

    fn hub_repo(&self) -> Option<&str> {
        self.inner.hub_repo()
    }

    fn presence(&self, fetcher: &Fetcher, file: &PlanFile) -> Result<Presence> {
        self.inner.presence(fetcher, file)
    }

    fn problem(&self, fetcher: &Fetcher, file: &PlanFile, verify: bool) -> Option<ProblemKind> {
        self.inner.problem(fetcher, file, verify)
    }

    async fn fetch(&self, cx: &FetchContext<'_>, file: &PlanFile) -> Result<Option<u64>> {
        if file.presence == Presence::Cached {
            return self.inner.fetch(cx, file).await;
        }
        match self.fetch_from_mirror(cx, file).await {
            Ok(done) => Ok(done),
            Err(e) if self.only => Err(Error::Mirror {
                target: file.target.clone(),
                mirror: self.mirror_name(),
                source: Box::new(e),
            }),
            Err(e) => {
                let why = crate::render_chain(&e);
                tracing::warn!(
                    "`{}`: not from the mirror {} ({why}); fetching it from {}",
                    file.target,
                    self.mirror_name(),
                    self.inner.describe()
                );
                cx.report(&Event::Retry {
                    file: Some(cx.file_id()),
                    reason: format!("not from the mirror: {why}; from its origin"),
                    attempt: 1,
                    wait_ms: 0,
                });
                self.inner.fetch(cx, file).await
            }
        }
    }

    fn local_path(&self, fetcher: &Fetcher) -> Result<Option<PathBuf>> {
        self.inner.local_path(fetcher)
    }

    fn link_style(&self) -> LinkStyle {
        self.inner.link_style()
    }

    fn lock(&self) -> LockedSource {
        self.inner.lock()
    }

    fn landing(&self, fetcher: &Fetcher, file: &PlanFile) -> Result<Option<LandingPlace>> {
        self.inner.landing(fetcher, file)
    }

    async fn landed(&self, cx: &FetchContext<'_>, file: &PlanFile) -> Result<()> {
        self.inner.landed(cx, file).await
    }
}
