//! The URL source: files of `urls:` components from `https://` servers (civitai.com included; plain
//! `http://` only to loopback hosts, as the spec allows), kept in pipefetch's URL cache
//! (`$HF_HOME/pipefetch/url-cache-v1`, see [`crate::url_source`]).
//!
//! A URL's size and sha256 are known before downloading only when it is cached or the spec pins
//! the sha256; the file name decides whether weights are expected, so that an HTML page or a JSON
//! error never lands as a model.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pipefetch_hub_client::Url;
use pipefetch_spec::ComponentSource;
use serde::{Deserialize, Serialize};

use super::{
    ComponentRequest, FetchContext, FileOrigin, LandingPlace, Origin, PlanContext, Source, UrlFile,
};
use crate::error::{Error, Result};
use crate::lock::{LockedFile, LockedSource};
use crate::pipeline::check::ProblemKind;
use crate::pipeline::plan::{PlanFile, Presence, canonicalize_weights};
use crate::url_source::{self, UrlRequest};
use crate::verify::Expected;
use crate::{Fetcher, engine::blocking};

/// Plain HTTPS (and loopback HTTP) servers as a source of pipeline files.
#[derive(Debug, Default)]
pub struct UrlSource;

#[async_trait]
impl Source for UrlSource {
    fn kind(&self) -> &'static str {
        "url"
    }

    fn url_schemes(&self) -> &[&'static str] {
        &["https", "http"]
    }

    /// `urls:` components: each file from the source registered for its URL's scheme (this one
    /// for `https`), then the canonical name for a lone weights file.
    fn spec_keys(&self) -> &[&'static str] {
        &["urls"]
    }

    async fn resolve_component(
        &self,
        cx: &mut PlanContext<'_>,
        component: &ComponentRequest<'_>,
    ) -> Result<Vec<PlanFile>> {
        let ComponentSource::Urls { files, sha256 } = component.source else {
            return Err(Error::Invalid(format!(
                "component `{}`: the url source cannot resolve `{}` entries",
                component.name,
                component.source.kind()
            )));
        };
        let sources = cx.fetcher().sources().clone();
        let mut found = sources
            .resolve_urls(cx, component.name, files, sha256)
            .await?;
        let weights: Vec<usize> = (0..found.len())
            .filter(|&i| {
                let target = &found[i].target;
                url_source::expects_weights(target.rsplit('/').next().unwrap_or(target))
            })
            .collect();
        canonicalize_weights(&mut found, &weights, component.name, component.library);
        Ok(found)
    }

    async fn resolve_url(&self, cx: &mut PlanContext<'_>, file: &UrlFile<'_>) -> Result<PlanFile> {
        let url = file.url.clone();
        let pin = file.sha256.map(str::to_string);
        let cache = cx.fetcher().url_cache();
        let key = url.to_string();
        let cached = blocking(move || cache.lookup(&key)).await?;
        let (size, expected) = match (&cached, &pin) {
            (Some(entry), Some(p)) if &entry.sha256 == p => {
                (Some(entry.size), Expected::Sha256(p.clone()))
            }
            (_, Some(p)) => (None, Expected::Sha256(p.clone())),
            (Some(entry), None) => (Some(entry.size), Expected::Sha256(entry.sha256.clone())),
            (None, None) => (None, Expected::Unknown),
        };
        let origin = Origin::new(UrlOrigin {
            url,
            name: file.name.to_string(),
            pin,
        });
        let mut planned = PlanFile::new(
            format!("{}/{}", file.component, file.name),
            origin,
            size,
            expected,
        );
        planned.component = Some(file.component.to_string());
        Ok(planned)
    }

    fn unlock(&self, _fetcher: &Fetcher, locked: &LockedFile) -> Result<Origin> {
        let fields: UrlFields = locked.source.fields()?;
        let url = Url::parse(&fields.url).map_err(|e| {
            Error::Invalid(format!(
                "`{}`: bad URL in the lockfile {}: {e}",
                locked.target, fields.url
            ))
        })?;
        let name = locked
            .target
            .rsplit('/')
            .next()
            .unwrap_or(&locked.target)
            .to_string();
        Ok(Origin::new(UrlOrigin {
            url,
            name,
            // The lock's sha256 is the pin: other bytes behind the URL now are an error.
            pin: Some(locked.sha256.clone()),
        }))
    }
}

/// What a lockfile records of a URL file (besides its size and sha256).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UrlFields {
    /// The URL, without any `token` query parameter.
    url: String,
}

/// A file behind a URL.
#[derive(Debug, Clone)]
pub struct UrlOrigin {
    url: Url,
    /// The file's name in its component (decides whether weights are expected).
    name: String,
    /// The sha256 its bytes must have (from the spec or the lock).
    pin: Option<String>,
}

impl UrlOrigin {
    /// The URL as the cache names it (without a `token` parameter).
    fn cache_key(&self) -> String {
        url_source::cache_url(self.url.as_str())
    }
}

#[async_trait]
impl FileOrigin for UrlOrigin {
    fn kind(&self) -> &'static str {
        "url"
    }

    fn describe(&self) -> String {
        self.cache_key()
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "url", "url": self.url.as_str() })
    }

    fn presence(&self, fetcher: &Fetcher, _file: &PlanFile) -> Result<Presence> {
        let cache = fetcher.url_cache();
        Ok(match cache.lookup(self.url.as_str())? {
            Some(entry) if self.pin.as_deref().is_none_or(|pin| pin == entry.sha256) => {
                Presence::Cached
            }
            _ => match cache.partial_bytes(self.url.as_str()) {
                0 => Presence::Missing,
                bytes => Presence::Partial { bytes },
            },
        })
    }

    fn problem(&self, fetcher: &Fetcher, _file: &PlanFile, verify: bool) -> Option<ProblemKind> {
        let cache = fetcher.url_cache();
        match cache.lookup(self.url.as_str()) {
            Ok(Some(entry)) => {
                if let Some(pin) = self.pin.as_deref().filter(|pin| *pin != entry.sha256) {
                    return Some(ProblemKind::Corrupt {
                        expected: pin.to_string(),
                        actual: entry.sha256,
                    });
                }
                if verify && !cache.verify(&entry).unwrap_or(false) {
                    return Some(ProblemKind::Corrupt {
                        expected: entry.sha256.clone(),
                        actual: "(other bytes)".into(),
                    });
                }
                None
            }
            _ => match cache.partial_bytes(self.url.as_str()) {
                0 => Some(ProblemKind::Missing),
                bytes => Some(ProblemKind::Incomplete { bytes, size: 0 }),
            },
        }
    }

    async fn fetch(&self, cx: &FetchContext<'_>, file: &PlanFile) -> Result<Option<u64>> {
        if file.presence == Presence::Cached {
            return Ok(None);
        }
        let fetcher = cx.fetcher();
        let request = UrlRequest {
            auth: url_source::auth_for(&self.url, fetcher.civitai_token()),
            url: self.url.clone(),
            name: self.name.clone(),
            sha256: self.pin.clone(),
        };
        // Ranges under the shared budget when the server allows them, one stream otherwise; the
        // engine reports the file's events and keeps every byte for a resume.
        let (_, downloaded) = cx
            .engine
            .fetch_url(cx.file_id(), &file.target, &request, &fetcher.url_cache())
            .await?;
        Ok(Some(downloaded))
    }

    fn local_path(&self, fetcher: &Fetcher) -> Result<Option<PathBuf>> {
        Ok(fetcher
            .url_cache()
            .lookup(self.url.as_str())?
            .filter(|entry| self.pin.as_deref().is_none_or(|pin| pin == entry.sha256))
            .map(|entry| entry.blob))
    }

    /// From a mirror, the bytes land in the URL cache's content-addressed blobs (the URL is not
    /// asked), named by the pinned sha256.
    fn landing(&self, fetcher: &Fetcher, _file: &PlanFile) -> Result<Option<LandingPlace>> {
        Ok(self
            .pin
            .as_deref()
            .map(|sha256| LandingPlace(Arc::new(fetcher.url_cache().content_blob(sha256)))))
    }

    /// Records the URL as that blob, so that the next lookup finds it.
    async fn landed(&self, cx: &FetchContext<'_>, file: &PlanFile) -> Result<()> {
        let Some(sha256) = self.pin.clone() else {
            return Ok(());
        };
        let (cache, url, size) = (cx.fetcher().url_cache(), self.cache_key(), file.size);
        blocking(move || cache.record(&url, &sha256, size.unwrap_or(0))).await
    }

    fn lock(&self) -> LockedSource {
        LockedSource::new(
            "url",
            &UrlFields {
                url: self.cache_key(),
            },
        )
    }
}
