//! Pipelines to push: the shared pipeline world (`pipefetch_hub_server::fixture::world`) behind a
//! hub-server, its mixed spec plus a local text encoder big enough for multipart uploads, and
//! fetchers for as many machines (`HF_HOME`s) as a test needs.

use std::path::Path;
use std::sync::{Arc, Mutex};

use pipefetch_fetcher::pipeline::plan::SpecOrigin;
use pipefetch_fetcher::{Event, Fetcher, Lock, Reporter};
use pipefetch_hub_client::{HfEnv, HubClient, RetryPolicy};
use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture::world;
use pipefetch_mirror::Sha256Hex;

use crate::{PART, bytes};

/// The pipeline's name (the spec's file stem).
pub const NAME: &str = "mixed";

pub struct World {
    pub hub: HubServer,
    _root: tempfile::TempDir,
    pub specs: tempfile::TempDir,
    /// The local text encoder's weights: two full parts and a short third.
    pub big: Vec<u8>,
    pub yaml: String,
}

impl World {
    pub async fn new() -> World {
        let root = tempfile::tempdir().unwrap();
        let specs = tempfile::tempdir().unwrap();
        let shared = world::build(root.path(), specs.path()).unwrap();
        let hub = HubServer::builder(root.path()).start().await.unwrap();
        // A local text encoder: its config has the same bytes as the scheduler's config (two
        // files, one blob), its weights need a multipart upload.
        let te = specs.path().join("big-te");
        std::fs::create_dir_all(&te).unwrap();
        std::fs::write(
            te.join("config.json"),
            &shared.pipe_files["scheduler/scheduler_config.json"],
        )
        .unwrap();
        let big = bytes(2 * PART as usize + 4321, 42);
        std::fs::write(te.join("model.safetensors"), &big).unwrap();
        let yaml = format!(
            "{}  text_encoder:\n    local_path: {}\n",
            world::mixed_spec(&hub.url(), &shared.local_unet),
            te.display()
        );
        World {
            hub,
            _root: root,
            specs,
            big,
            yaml,
        }
    }

    /// A fetcher with its cache in `home` (one machine), quiet.
    pub fn fetcher(&self, home: &Path) -> Fetcher {
        let client = HubClient::builder()
            .endpoint(self.hub.url())
            .retry(RetryPolicy::no_delay())
            .build()
            .unwrap();
        Fetcher::builder()
            .env(HfEnv::from_vars(|_| None))
            .client(client)
            .hf_home(home)
            .cache_dir(home.join("hub"))
            .connections(4)
            .build()
            .unwrap()
    }

    /// The spec, written to `SPECS/mixed.yaml`, locked by `fetcher`.
    pub async fn lock(&self, fetcher: &Fetcher) -> Lock {
        let path = self.specs.path().join(format!("{NAME}.yaml"));
        std::fs::write(&path, &self.yaml).unwrap();
        let spec = pipefetch_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
        fetcher
            .lock(&spec, &SpecOrigin::Local(path), &self.yaml)
            .await
            .unwrap()
    }
}

/// The distinct blobs of a lock: sha256 and size.
pub fn distinct(lock: &Lock) -> std::collections::BTreeMap<Sha256Hex, u64> {
    lock.files
        .iter()
        .map(|f| (f.sha256.parse().unwrap(), f.size))
        .collect()
}

/// A reporter that records every event.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<Event>>>);

impl Events {
    pub fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

impl Reporter for Events {
    fn report(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}
