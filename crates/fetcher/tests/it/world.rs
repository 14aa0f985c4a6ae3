//! A world for pipeline tests: hub-server with the shared pipeline world
//! (`pipefetch_hub_server::fixture::world`: an SD-shaped repo `acme/pipe`, a flat VAE repo
//! `acme/vae-fix`, hosted specs in `acme/defs`, a local UNet folder), and a fetcher that records
//! its events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pipefetch_fetcher::pipeline::plan::SpecOrigin;
use pipefetch_fetcher::pipeline::pull::PullOptions;
use pipefetch_fetcher::{EngineSettings, Event, Fetcher, FetcherBuilder};
use pipefetch_hub_client::{HfEnv, HubClient, RetryPolicy};
use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture;

use crate::support::read_tree;

pub use pipefetch_hub_server::fixture::world::MODEL_INDEX;

pub struct World {
    pub hub: HubServer,
    pub _root: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub specs: tempfile::TempDir,
    pub local_unet: PathBuf,
    pub files: BTreeMap<String, Vec<u8>>,
    pub events: Arc<std::sync::Mutex<Vec<Event>>>,
}

impl World {
    pub async fn new() -> World {
        let root = tempfile::tempdir().expect("tempdir");
        let specs = tempfile::tempdir().expect("tempdir");
        let world = fixture::world::build(root.path(), specs.path()).expect("fixture");
        let hub = HubServer::builder(root.path())
            .page_size(4)
            .start()
            .await
            .expect("hub-server");
        World {
            hub,
            _root: root,
            home: tempfile::tempdir().expect("tempdir"),
            specs,
            local_unet: world.local_unet,
            files: world.pipe_files,
            events: Arc::default(),
        }
    }

    pub fn fetcher(&self, offline: bool) -> Fetcher {
        self.builder(offline).build().expect("fetcher")
    }

    /// The test fetcher's builder, for tests that add to it (another source, another home).
    pub fn builder(&self, offline: bool) -> FetcherBuilder {
        self.builder_in(self.home.path(), offline)
    }

    /// [`World::builder`] with another `HF_HOME` (a second machine).
    pub fn builder_in(&self, home: &Path, offline: bool) -> FetcherBuilder {
        let client = HubClient::builder()
            .endpoint(self.hub.url())
            .retry(RetryPolicy::no_delay())
            .build()
            .expect("client");
        let events = Arc::clone(&self.events);
        Fetcher::builder()
            .env(HfEnv::from_vars(|_| None))
            .client(client)
            .hf_home(home)
            .cache_dir(home.join("hub"))
            .offline(offline)
            .engine_settings(EngineSettings {
                connections: Some(4),
                min_chunk: 1024,
                max_chunk: 2048,
                ..EngineSettings::default()
            })
            .reporter(Arc::new(move |e: &Event| {
                events.lock().expect("events").push(e.clone())
            }))
    }

    pub fn spec(&self, name: &str, yaml: &str) -> (pipefetch_spec::PipelineSpec, SpecOrigin) {
        let path = self.specs.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).expect("write spec");
        let spec = pipefetch_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
        (spec, SpecOrigin::Local(path))
    }

    pub async fn pull(&self, name: &str, yaml: &str) -> pipefetch_fetcher::Result<PathBuf> {
        let (spec, origin) = self.spec(name, yaml);
        let out = self
            .fetcher(false)
            .download_diffusers_pipeline(&spec, &origin, &PullOptions::default())
            .await?;
        Ok(out.path)
    }
}

/// The files of an assembled folder, without its manifest.
pub fn names(dir: &Path) -> Vec<String> {
    read_tree(dir)
        .into_keys()
        .filter(|k| k != ".pipefetch.json")
        .collect()
}
