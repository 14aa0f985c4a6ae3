//! Shared set-up: a fixture repo, a running hub-server, a fetcher with fast test timeouts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipefetch_fetcher::{EngineSettings, Event, Fetcher};
use pipefetch_hub_client::{HfEnv, HubClient, RetryPolicy, Token};
use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes};

pub const TOKEN: &str = "hf_test_token";

/// The files of the `acme/tiny` fixture repo.
pub fn tiny_files() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut add = |p: &str, b: Vec<u8>| {
        files.insert(p.to_string(), b);
    };
    add(
        "model_index.json",
        br#"{"_class_name": "StableDiffusionPipeline"}"#.to_vec(),
    );
    add("README.md", b"# tiny\n".to_vec());
    add("unet/config.json", br#"{"sample_size": 8}"#.to_vec());
    add(
        "unet/diffusion_pytorch_model.safetensors",
        random_bytes(1, 300_000),
    );
    add(
        "unet/diffusion_pytorch_model.fp16.safetensors",
        random_bytes(2, 150_000),
    );
    add("vae/config.json", br#"{"latent_channels": 4}"#.to_vec());
    add(
        "vae/diffusion_pytorch_model.safetensors",
        random_bytes(3, 100_000),
    );
    add("text_encoder/model.safetensors", random_bytes(4, 90_000));
    add("tokenizer/vocab.json", br#"{"a": 1}"#.to_vec());
    add("docs/a file #1.txt", b"space and hash\n".to_vec());
    add("big.safetensors", random_bytes(5, 3_000_000));
    add("empty.txt", Vec::new());
    files
}

pub struct Setup {
    pub hub: HubServer,
    pub _root: tempfile::TempDir,
    pub cache: tempfile::TempDir,
    pub files: BTreeMap<String, Vec<u8>>,
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Setup {
    pub async fn new() -> Setup {
        let root = tempfile::tempdir().expect("tempdir");
        let files = tiny_files();
        let mut builder = RepoBuilder::new(root.path(), "models", "acme/tiny");
        for (path, bytes) in &files {
            builder = builder.file(path, bytes.clone());
        }
        builder.build().expect("fixture");
        RepoBuilder::new(root.path(), "models", "acme/gated")
            .file("config.json", b"{}".to_vec())
            .gated()
            .build()
            .expect("fixture");
        let hub = HubServer::builder(root.path())
            .token(TOKEN)
            .page_size(3)
            .start()
            .await
            .expect("hub-server");
        Setup {
            hub,
            _root: root,
            cache: tempfile::tempdir().expect("tempdir"),
            files,
            events: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn commit(&self) -> String {
        self.hub.commit("acme/tiny").expect("commit")
    }

    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    /// A client with test timeouts and no retry delays.
    pub fn client(&self, token: Option<&str>) -> HubClient {
        HubClient::builder()
            .endpoint(self.hub.url())
            .token(token.map(Token::new))
            .retry(RetryPolicy::no_delay())
            .read_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("client")
    }

    /// A fetcher whose "big file" threshold is small, so the ranged path runs on small fixtures.
    pub fn fetcher(&self) -> Fetcher {
        self.fetcher_with(self.client(None), false)
    }

    pub fn fetcher_with(&self, client: HubClient, offline: bool) -> Fetcher {
        let events = Arc::clone(&self.events);
        Fetcher::builder()
            .env(HfEnv::from_vars(|_| None))
            .client(client)
            .cache_dir(self.cache_dir())
            .offline(offline)
            .engine_settings(EngineSettings {
                connections: Some(4),
                min_chunk: 256 * 1024,
                max_chunk: 512 * 1024,
                ..EngineSettings::default()
            })
            .reporter(Arc::new(move |e: &Event| {
                events.lock().expect("events").push(e.clone())
            }))
            .build()
            .expect("fetcher")
    }

    pub fn blob_names(&self) -> Vec<String> {
        let dir = self.cache_dir().join("models--acme--tiny").join("blobs");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.cache_dir()
            .join("models--acme--tiny")
            .join("snapshots")
            .join(self.commit())
    }
}

/// Every regular file below `dir` (following symlinks), by `/` path.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

/// The requests the CDN listener received, in order.
pub fn cdn_requests(hub: &HubServer) -> Vec<pipefetch_hub_server::LoggedRequest> {
    hub.log()
        .entries()
        .into_iter()
        .filter(|e| e.route == pipefetch_hub_server::Route::Cdn)
        .collect()
}
