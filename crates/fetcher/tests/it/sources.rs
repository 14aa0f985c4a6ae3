//! A kind of source added from outside the crate: `file://` URLs, written against the public API
//! only and registered with `FetcherBuilder::source`. If this compiles and passes, adding a kind
//! needs no change to pipefetch-fetcher.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pipefetch_fetcher::pipeline::check::ProblemKind;
use pipefetch_fetcher::pipeline::plan::SpecOrigin;
use pipefetch_fetcher::pipeline::pull::PullOptions;
use pipefetch_fetcher::sources::{FetchContext, LinkStyle, PlanContext, UrlFile};
use pipefetch_fetcher::{
    Error, Expected, Fetcher, FileOrigin, LockedFile, LockedSource, Origin, PlanFile, Presence,
    Result, Source,
};
use pipefetch_hub_server::fixture::random_bytes;

use crate::world::World;

/// `file:///path` URLs: the bytes are used where they are.
#[derive(Debug)]
struct FileUrls;

#[async_trait]
impl Source for FileUrls {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn url_schemes(&self) -> &[&'static str] {
        &["file"]
    }

    async fn resolve_url(&self, _cx: &mut PlanContext<'_>, file: &UrlFile<'_>) -> Result<PlanFile> {
        let path = file
            .url
            .to_file_path()
            .map_err(|()| Error::Invalid(format!("{} is not a local file URL", file.url)))?;
        let size = std::fs::metadata(&path).ok().map(|m| m.len());
        let origin = Origin::new(FileUrl { path });
        let mut planned = PlanFile::new(
            format!("{}/{}", file.component, file.name),
            origin,
            size,
            Expected::Unknown,
        );
        planned.component = Some(file.component.to_string());
        Ok(planned)
    }

    fn unlock(&self, _fetcher: &Fetcher, locked: &LockedFile) -> Result<Origin> {
        let fields: serde_json::Map<String, serde_json::Value> = locked.source.fields()?;
        let path = fields
            .get("path")
            .and_then(|p| p.as_str())
            .ok_or_else(|| Error::Invalid("a file entry without a path".into()))?;
        Ok(Origin::new(FileUrl {
            path: PathBuf::from(path),
        }))
    }
}

#[derive(Debug)]
struct FileUrl {
    path: PathBuf,
}

#[async_trait]
impl FileOrigin for FileUrl {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn describe(&self) -> String {
        format!("file://{}", self.path.display())
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "file", "path": self.path })
    }

    fn presence(&self, _fetcher: &Fetcher, _file: &PlanFile) -> Result<Presence> {
        Ok(if self.path.is_file() {
            Presence::Cached
        } else {
            Presence::Missing
        })
    }

    fn problem(&self, _fetcher: &Fetcher, _file: &PlanFile, _verify: bool) -> Option<ProblemKind> {
        (!self.path.is_file()).then_some(ProblemKind::Missing)
    }

    async fn fetch(&self, _cx: &FetchContext<'_>, _file: &PlanFile) -> Result<Option<u64>> {
        Ok(None)
    }

    fn local_path(&self, _fetcher: &Fetcher) -> Result<Option<PathBuf>> {
        Ok(self.path.is_file().then(|| self.path.clone()))
    }

    fn link_style(&self) -> LinkStyle {
        LinkStyle::Absolute
    }

    fn lock(&self) -> LockedSource {
        LockedSource::new("file", &serde_json::json!({ "path": self.path }))
    }
}

#[tokio::test]
async fn a_source_added_from_outside_serves_its_scheme_in_plan_pull_check_and_lock() {
    let w = World::new().await;
    let dir = w.specs.path().join("file-unet");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("config.json"),
        br#"{"_class_name": "UNet2DConditionModel"}"#,
    )
    .expect("write");
    let weights = random_bytes(77, 3333);
    std::fs::write(dir.join("tuned.safetensors"), &weights).expect("write");
    let yaml = format!(
        "repo_id: acme/pipe\nvariant: fp16\ncomponents:\n  unet:\n    urls:\n      config.json: file://{d}/config.json\n      tuned.safetensors: file://{d}/tuned.safetensors\n",
        d = dir.display()
    );
    let path = w.specs.path().join("file.yaml");
    std::fs::write(&path, &yaml).expect("write");
    let origin = SpecOrigin::Local(path.clone());

    // Without the source, the spec's `file://` URLs are refused where they are written...
    let plain = w.fetcher(false);
    let refused = pipefetch_spec::load_file_with(&path, &plain.spec_options())
        .expect_err("file:// is unknown");
    assert!(
        refused
            .to_string()
            .contains("the scheme `file` is not supported"),
        "{refused}"
    );
    // ...and a spec read some other way cannot be planned: no source serves the scheme.
    let spec = pipefetch_spec::load_file_with(
        &path,
        &pipefetch_spec::ParseOptions::default().url_scheme("file"),
    )
    .expect("spec");
    let error = plain
        .plan(&spec, &origin, false)
        .await
        .expect_err("no source");
    assert!(
        pipefetch_fetcher::render_chain(&error)
            .contains("no source fetches `file://` URLs (known: http, https)"),
        "{error}"
    );

    // With it, the same spec reads, plans, pulls, checks and locks.
    let fetcher = w
        .builder(false)
        .source(Arc::new(FileUrls))
        .build()
        .expect("fetcher");
    let spec = pipefetch_spec::load_file_with(&path, &fetcher.spec_options()).expect("spec");
    let folder = fetcher
        .download_diffusers_pipeline(&spec, &origin, &PullOptions::default())
        .await
        .expect("pull");
    // The lone weights file got the canonical name, linked to the file where it is.
    let unet = folder.path.join("unet/diffusion_pytorch_model.safetensors");
    assert_eq!(std::fs::read(&unet).expect("read"), weights);
    assert_eq!(
        std::fs::read_link(&unet).expect("link"),
        dir.join("tuned.safetensors")
    );
    let planned = folder
        .plan
        .files
        .iter()
        .find(|f| f.target == "unet/diffusion_pytorch_model.safetensors")
        .expect("planned");
    assert_eq!(planned.origin.kind(), "file");
    assert_eq!(
        serde_json::to_value(&planned.origin).expect("json")["kind"],
        "file"
    );

    let lock = fetcher.lock(&spec, &origin, &yaml).await.expect("lock");
    let entry = lock
        .files
        .iter()
        .find(|f| f.target == "unet/diffusion_pytorch_model.safetensors")
        .expect("locked");
    assert_eq!(entry.source.kind, "file");
    assert_eq!(entry.size, weights.len() as u64);
    assert_eq!(entry.sha256, sha256_hex(&weights));

    let available = fetcher
        .is_available_locally(&spec, &origin, false)
        .await
        .expect("check");
    assert!(available.available, "{:?}", available.problems);
    std::fs::remove_file(dir.join("tuned.safetensors")).expect("rm");
    let gone = fetcher
        .is_available_locked(&lock, false)
        .await
        .expect("check");
    assert!(!gone.available);
    assert_eq!(
        gone.problems
            .iter()
            .map(|p| p.target.as_str())
            .collect::<Vec<_>>(),
        ["unet/diffusion_pytorch_model.safetensors"]
    );
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
