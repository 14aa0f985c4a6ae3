//! A world for pipeline tests: hub-server with an SD-shaped repo (`acme/pipe`), a flat VAE repo
//! (`acme/vae-fix`), a repo of hosted specs (`acme/defs`), a local UNet folder, and a fetcher that
//! records its events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pipefetch_fetcher::pipeline::plan::SpecOrigin;
use pipefetch_fetcher::pipeline::pull::PullOptions;
use pipefetch_fetcher::{EngineSettings, Event, Fetcher, FetcherBuilder};
use pipefetch_hub_client::{HfEnv, HubClient, RetryPolicy};
use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes};

use crate::support::read_tree;

pub const MODEL_INDEX: &str = r#"{
  "_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.30.0",
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "scheduler": ["diffusers", "PNDMScheduler"],
  "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
  "feature_extractor": [null, null],
  "requires_safety_checker": true
}"#;

const SHARD_INDEX: &str = r#"{
  "metadata": {"total_size": 2000},
  "weight_map": {
    "a.weight": "model.fp16-00001-of-00002.safetensors",
    "b.weight": "model.fp16-00002-of-00002.safetensors"
  }
}"#;

pub struct World {
    pub hub: HubServer,
    pub _root: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub specs: tempfile::TempDir,
    pub local_unet: PathBuf,
    pub files: BTreeMap<String, Vec<u8>>,
    pub events: Arc<std::sync::Mutex<Vec<Event>>>,
}

pub fn pipe_files() -> BTreeMap<String, Vec<u8>> {
    let mut f = BTreeMap::new();
    let mut add = |p: &str, b: Vec<u8>| {
        f.insert(p.to_string(), b);
    };
    add("model_index.json", MODEL_INDEX.as_bytes().to_vec());
    add("README.md", b"# pipe\n".to_vec());
    add("v1-5-pruned.safetensors", random_bytes(1, 5000));
    add(
        "unet/config.json",
        br#"{"_class_name": "UNet2DConditionModel"}"#.to_vec(),
    );
    add(
        "unet/diffusion_pytorch_model.safetensors",
        random_bytes(2, 4000),
    );
    add(
        "unet/diffusion_pytorch_model.fp16.safetensors",
        random_bytes(3, 2000),
    );
    add("unet/diffusion_pytorch_model.bin", random_bytes(4, 4000));
    add(
        "vae/config.json",
        br#"{"_class_name": "AutoencoderKL"}"#.to_vec(),
    );
    add(
        "vae/diffusion_pytorch_model.safetensors",
        random_bytes(5, 3000),
    );
    add(
        "vae_1_0/diffusion_pytorch_model.safetensors",
        random_bytes(6, 3000),
    );
    add(
        "text_encoder/config.json",
        br#"{"architectures": ["CLIPTextModel"]}"#.to_vec(),
    );
    add("text_encoder/model.safetensors", random_bytes(7, 2000));
    add(
        "text_encoder/model.fp16-00001-of-00002.safetensors",
        random_bytes(8, 600),
    );
    add(
        "text_encoder/model.fp16-00002-of-00002.safetensors",
        random_bytes(9, 400),
    );
    add(
        "text_encoder/model.safetensors.index.fp16.json",
        SHARD_INDEX.as_bytes().to_vec(),
    );
    add("tokenizer/vocab.json", br#"{"a": 0}"#.to_vec());
    add("tokenizer/merges.txt", b"#version: 0.2\n".to_vec());
    add(
        "tokenizer/tokenizer_config.json",
        br#"{"model_max_length": 77}"#.to_vec(),
    );
    add(
        "scheduler/scheduler_config.json",
        br#"{"_class_name": "PNDMScheduler"}"#.to_vec(),
    );
    add(
        "safety_checker/config.json",
        br#"{"architectures": ["StableDiffusionSafetyChecker"]}"#.to_vec(),
    );
    add("safety_checker/model.safetensors", random_bytes(10, 1500));
    f
}

impl World {
    pub async fn new() -> World {
        let root = tempfile::tempdir().expect("tempdir");
        let files = pipe_files();
        let mut b = RepoBuilder::new(root.path(), "models", "acme/pipe");
        for (p, bytes) in &files {
            b = b.file(p, bytes.clone());
        }
        b.build().expect("fixture");
        RepoBuilder::new(root.path(), "models", "acme/vae-fix")
            .file(
                "config.json",
                br#"{"_class_name": "AutoencoderKL", "fixed": true}"#.to_vec(),
            )
            .file(
                "diffusion_pytorch_model.safetensors",
                random_bytes(20, 3100),
            )
            .file("sdxl_vae.safetensors", random_bytes(21, 3100))
            .build()
            .expect("fixture");
        RepoBuilder::new(root.path(), "models", "acme/defs")
            .file(
                "pipes/fp16.yaml",
                b"repo_id: acme/pipe\nvariant: fp16\nmodel_index: index.json\n".to_vec(),
            )
            .file("pipes/index.json", MODEL_INDEX.as_bytes().to_vec())
            .build()
            .expect("fixture");
        let hub = HubServer::builder(root.path())
            .page_size(4)
            .start()
            .await
            .expect("hub-server");
        let specs = tempfile::tempdir().expect("tempdir");
        let local_unet = specs.path().join("my-unet");
        std::fs::create_dir_all(&local_unet).expect("mkdir");
        std::fs::write(
            local_unet.join("config.json"),
            br#"{"_class_name": "UNet2DConditionModel", "local": true}"#,
        )
        .expect("write");
        std::fs::write(
            local_unet.join("my-unet.safetensors"),
            random_bytes(30, 2222),
        )
        .expect("write");
        World {
            hub,
            _root: root,
            home: tempfile::tempdir().expect("tempdir"),
            specs,
            local_unet,
            files,
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
                connections: 4,
                min_chunk: 1024,
                max_chunk: 2048,
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
