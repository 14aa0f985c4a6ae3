//! Pipelines end to end against hub-server: plan, pull (all four source kinds), assemble, check, list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pipefetch_fetcher::pipeline::check::{ProblemKind, list_pipelines};
use pipefetch_fetcher::pipeline::plan::{Presence, SpecOrigin};
use pipefetch_fetcher::pipeline::pull::PullOptions;
use pipefetch_fetcher::{EngineSettings, Event, Fetcher};
use pipefetch_hub_client::{HfEnv, HubClient, RetryPolicy};
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes};
use pipefetch_hub_server::{HubServer, Route};

use crate::support::read_tree;

const MODEL_INDEX: &str = r#"{
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

struct World {
    hub: HubServer,
    _root: tempfile::TempDir,
    home: tempfile::TempDir,
    specs: tempfile::TempDir,
    local_unet: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
    events: Arc<std::sync::Mutex<Vec<Event>>>,
}

fn pipe_files() -> BTreeMap<String, Vec<u8>> {
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
    async fn new() -> World {
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

    fn fetcher(&self, offline: bool) -> Fetcher {
        let client = HubClient::builder()
            .endpoint(self.hub.url())
            .retry(RetryPolicy::no_delay())
            .build()
            .expect("client");
        let events = Arc::clone(&self.events);
        Fetcher::builder()
            .env(HfEnv::from_vars(|_| None))
            .client(client)
            .hf_home(self.home.path())
            .cache_dir(self.home.path().join("hub"))
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
            .build()
            .expect("fetcher")
    }

    fn spec(&self, name: &str, yaml: &str) -> (pipefetch_spec::PipelineSpec, SpecOrigin) {
        let path = self.specs.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).expect("write spec");
        let spec = pipefetch_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
        (spec, SpecOrigin::Local(path))
    }

    async fn pull(&self, name: &str, yaml: &str) -> pipefetch_fetcher::Result<PathBuf> {
        let (spec, origin) = self.spec(name, yaml);
        let out = self
            .fetcher(false)
            .download_diffusers_pipeline(&spec, &origin, &PullOptions::default())
            .await?;
        Ok(out.path)
    }
}

fn names(dir: &Path) -> Vec<String> {
    read_tree(dir)
        .into_keys()
        .filter(|k| k != ".pipefetch.json")
        .collect()
}

#[tokio::test]
async fn base_only_pull_takes_exactly_what_the_pipeline_needs() {
    let w = World::new().await;
    let folder = w.pull("base", "repo_id: acme/pipe\n").await.expect("pull");
    assert_eq!(folder, w.home.path().join("pipelines/base"));
    assert_eq!(
        names(&folder),
        vec![
            "model_index.json",
            "safety_checker/config.json",
            "safety_checker/model.safetensors",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.safetensors",
            "tokenizer/merges.txt",
            "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    );
    let tree = read_tree(&folder);
    for (path, bytes) in &tree {
        if path == "model_index.json" {
            // Written anew (overrides applied); same content as the repo's here.
            let ours: serde_json::Value = serde_json::from_slice(bytes).expect("json");
            let theirs: serde_json::Value = serde_json::from_str(MODEL_INDEX).expect("json");
            assert_eq!(ours, theirs);
        } else if let Some(src) = w.files.get(path) {
            assert_eq!(bytes, src, "{path}");
        }
    }
    // Relative symlinks into the cache, no copies.
    let link = std::fs::read_link(folder.join("unet/diffusion_pytorch_model.safetensors"))
        .expect("symlink");
    assert!(link.is_relative(), "{}", link.display());
    assert!(
        link.to_string_lossy()
            .contains("models--acme--pipe/snapshots/"),
        "{}",
        link.display()
    );
    // No .bin twin, no vae_1_0, no root checkpoint crossed the network.
    let cdn: Vec<String> = w
        .hub
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.route == Route::Cdn)
        .filter_map(|e| e.query)
        .collect();
    for bad in ["pytorch_model.bin", "vae_1_0", "v1-5-pruned", "fp16"] {
        assert!(
            !cdn.iter().any(|q| q.contains(bad)),
            "{bad} was downloaded: {cdn:?}"
        );
    }
}

#[tokio::test]
async fn mixed_sources_and_variants_assemble_under_canonical_names() {
    let w = World::new().await;
    let hub = w.hub.url();
    let yaml = format!(
        "repo_id: acme/pipe
variant: fp16
components:
  vae:
    hf_repo: acme/vae-fix
  unet:
    local_path: {unet}
  safety_checker: null
  scheduler:
    source: [acme/pipe/scheduler/scheduler_config.json]
  tokenizer:
    urls:
      vocab.json: {hub}/acme/pipe/resolve/main/tokenizer/vocab.json
      merges.txt: {hub}/acme/pipe/resolve/main/tokenizer/merges.txt
      tokenizer_config.json: {hub}/acme/pipe/resolve/main/tokenizer/tokenizer_config.json
",
        unet = w.local_unet.display(),
    );
    let folder = w.pull("mixed", &yaml).await.expect("pull");
    assert_eq!(
        names(&folder),
        vec![
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model-00001-of-00002.safetensors",
            "text_encoder/model-00002-of-00002.safetensors",
            "text_encoder/model.safetensors.index.json",
            "tokenizer/merges.txt",
            "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    );
    let tree = read_tree(&folder);
    // fp16 shards under canonical names, and an index that names them.
    assert_eq!(
        tree["text_encoder/model-00001-of-00002.safetensors"],
        w.files["text_encoder/model.fp16-00001-of-00002.safetensors"]
    );
    let index: serde_json::Value =
        serde_json::from_slice(&tree["text_encoder/model.safetensors.index.json"]).expect("json");
    assert_eq!(
        index["weight_map"]["a.weight"],
        "model-00001-of-00002.safetensors"
    );
    assert_eq!(
        index["weight_map"]["b.weight"],
        "model-00002-of-00002.safetensors"
    );
    // The local unet's lone weights file got diffusers' canonical name.
    assert_eq!(
        tree["unet/diffusion_pytorch_model.safetensors"],
        random_bytes(30, 2222)
    );
    assert!(
        std::fs::read_link(folder.join("unet/diffusion_pytorch_model.safetensors"))
            .expect("link")
            .is_absolute()
    );
    // The flat vae repo: its canonical file, not the single-file distractor.
    assert_eq!(
        tree["vae/diffusion_pytorch_model.safetensors"],
        random_bytes(20, 3100)
    );
    // Dropped component.
    let mi: serde_json::Value = serde_json::from_slice(&tree["model_index.json"]).expect("json");
    assert_eq!(mi["safety_checker"], serde_json::json!([null, null]));
    assert_eq!(
        mi["unet"],
        serde_json::json!(["diffusers", "UNet2DConditionModel"])
    );
    // URL files are cached outside the hub cache.
    assert!(w.home.path().join("pipefetch/url-cache-v1").is_dir());
}

#[tokio::test]
async fn a_warm_pull_costs_one_request_per_branch_repo_and_none_when_pinned() {
    let w = World::new().await;
    let yaml = "repo_id: acme/pipe\ncomponents:\n  vae:\n    hf_repo: acme/vae-fix\n";
    w.pull("warm", yaml).await.expect("cold");
    w.hub.log().clear();
    w.pull("warm", yaml).await.expect("warm");
    let entries = w.hub.log().entries();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    assert!(entries.iter().all(|e| e.route == Route::ApiRepo));

    let pinned = format!(
        "repo_id: acme/pipe\nrevision: {}\ncomponents:\n  vae:\n    hf_repo: acme/vae-fix\n    revision: {}\n",
        w.hub.commit("acme/pipe").expect("commit"),
        w.hub.commit("acme/vae-fix").expect("commit"),
    );
    w.pull("pinned", &pinned).await.expect("pinned cold");
    w.hub.log().clear();
    w.pull("pinned", &pinned).await.expect("pinned warm");
    assert_eq!(w.hub.log().entries(), vec![]);
}

#[tokio::test]
async fn check_answers_from_disk_and_names_every_problem() {
    let w = World::new().await;
    let (spec, origin) = w.spec("c", "repo_id: acme/pipe\n");
    let offline = w.fetcher(false);
    let before = offline
        .is_available_locally(&spec, &origin, false)
        .await
        .expect("check");
    assert!(!before.available);
    assert!(matches!(
        before.problems[0].kind,
        ProblemKind::NotPlannable { .. }
    ));

    w.pull("c", "repo_id: acme/pipe\n").await.expect("pull");
    w.hub.log().clear();
    let fetcher = w.fetcher(false);
    let ok = fetcher
        .is_available_locally(&spec, &origin, true)
        .await
        .expect("check");
    assert!(ok.available, "{:?}", ok.problems);
    assert_eq!(ok.files, 12);

    // Damage: a missing blob (dangling link) and a truncated one.
    let blobs = w.home.path().join("hub/models--acme--pipe/blobs");
    let unet = blob_of(&w, "unet/diffusion_pytorch_model.safetensors");
    std::fs::remove_file(blobs.join(&unet)).expect("rm");
    let vae = blob_of(&w, "vae/diffusion_pytorch_model.safetensors");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(blobs.join(&vae))
        .expect("open");
    f.set_len(10).expect("truncate");
    let bad = fetcher
        .is_available_locally(&spec, &origin, false)
        .await
        .expect("check");
    assert!(!bad.available);
    let kinds: BTreeMap<String, String> = bad
        .problems
        .iter()
        .map(|p| (p.target.clone(), format!("{:?}", p.kind)))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds["unet/diffusion_pytorch_model.safetensors"].contains("DanglingLink"));
    assert!(kinds["vae/diffusion_pytorch_model.safetensors"].contains("WrongSize"));
    // Not a single request, ever.
    assert_eq!(w.hub.log().entries(), vec![]);

    // A re-pull repairs it.
    w.pull("c", "repo_id: acme/pipe\n").await.expect("repair");
    let again = fetcher
        .is_available_locally(&spec, &origin, true)
        .await
        .expect("check");
    assert!(again.available, "{:?}", again.problems);
}

fn blob_of(w: &World, path: &str) -> String {
    let commit = w.hub.commit("acme/pipe").expect("commit");
    let link = w
        .home
        .path()
        .join("hub/models--acme--pipe/snapshots")
        .join(commit)
        .join(path);
    std::fs::read_link(link)
        .expect("link")
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .expect("name")
}

#[tokio::test]
async fn a_missing_variant_is_a_clear_error_naming_what_exists() {
    let w = World::new().await;
    let err = w
        .pull("bad", "repo_id: acme/pipe\ncomponents:\n  unet:\n    hf_repo: acme/pipe/unet\n    variant: bf16\n")
        .await
        .expect_err("no bf16");
    let text = pipefetch_fetcher::render_chain(&err);
    assert!(text.contains("bf16"), "{text}");
    assert!(text.contains("fp16"), "{text}");
}

#[tokio::test]
async fn plans_report_sizes_and_what_is_cached() {
    let w = World::new().await;
    let (spec, origin) = w.spec("p", "repo_id: acme/pipe\n");
    let plan = w
        .fetcher(false)
        .plan(&spec, &origin, false)
        .await
        .expect("plan");
    assert_eq!(plan.files.len(), 12);
    assert!(plan.files.iter().all(|f| f.presence == Presence::Missing));
    let expected: u64 = [
        "safety_checker/config.json",
        "safety_checker/model.safetensors",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    .iter()
    .map(|p| w.files[*p].len() as u64)
    .sum();
    assert_eq!(plan.missing_bytes(), expected);
    w.pull("p", "repo_id: acme/pipe\n").await.expect("pull");
    let plan = w
        .fetcher(false)
        .plan(&spec, &origin, false)
        .await
        .expect("plan");
    assert!(plan.files.iter().all(|f| f.presence == Presence::Cached));
    assert_eq!(plan.missing_bytes(), 0);
}

#[tokio::test]
async fn a_hosted_spec_resolves_its_paths_in_its_repo() {
    let w = World::new().await;
    let fetcher = w.fetcher(false);
    let repo = pipefetch_hub_client::Repo::model("acme/defs").expect("id");
    let local = fetcher
        .download_file(&pipefetch_fetcher::FileRequest::new(
            repo.clone(),
            "pipes/fp16.yaml",
        ))
        .await
        .expect("spec");
    let text = std::fs::read_to_string(local).expect("read");
    let spec =
        pipefetch_spec::parse_str(&text, "pipes/fp16.yaml").unwrap_or_else(|d| panic!("{d}"));
    let origin = SpecOrigin::Hosted {
        repo,
        revision: "main".into(),
        path: "pipes/fp16.yaml".into(),
    };
    let out = fetcher
        .download_diffusers_pipeline(&spec, &origin, &PullOptions::default())
        .await
        .expect("pull");
    let tree = read_tree(&out.path);
    assert_eq!(
        tree["unet/diffusion_pytorch_model.safetensors"],
        w.files["unet/diffusion_pytorch_model.fp16.safetensors"]
    );
}

#[tokio::test]
async fn re_pulls_replace_the_folder_and_foreign_folders_are_never_touched() {
    let w = World::new().await;
    let first = w.pull("r", "repo_id: acme/pipe\n").await.expect("pull");
    let second = w
        .pull("r", "repo_id: acme/pipe\nvariant: fp16\n")
        .await
        .expect("re-pull");
    assert_eq!(first, second);
    assert_eq!(
        read_tree(&second)["unet/diffusion_pytorch_model.safetensors"],
        w.files["unet/diffusion_pytorch_model.fp16.safetensors"]
    );
    // No leftovers beside it.
    let siblings: Vec<_> = std::fs::read_dir(w.home.path().join("pipelines"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(siblings, vec!["r"]);

    let foreign = w.home.path().join("mine");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("precious.txt"), b"keep").expect("write");
    let (spec, origin) = w.spec("f", "repo_id: acme/pipe\n");
    let err = w
        .fetcher(false)
        .download_diffusers_pipeline(
            &spec,
            &origin,
            &PullOptions {
                out: Some(foreign.clone()),
                ..PullOptions::default()
            },
        )
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("refusing to replace"), "{err}");
    assert_eq!(
        std::fs::read(foreign.join("precious.txt")).expect("read"),
        b"keep"
    );

    let listed = list_pipelines(&w.home.path().join("pipelines"));
    assert_eq!(listed.len(), 1);
    assert!(listed[0].complete);
    assert_eq!(listed[0].name, "r");
}

#[tokio::test]
async fn pull_progress_has_a_plan_bytes_and_done() {
    let w = World::new().await;
    w.pull("e", "repo_id: acme/pipe\n").await.expect("pull");
    let events = w.events.lock().expect("events").clone();
    let plan = events
        .iter()
        .find(|e| matches!(e, Event::Plan { .. }))
        .expect("plan event");
    assert!(
        matches!(
            plan,
            Event::Plan {
                files: 12,
                cached_files: 0,
                ..
            }
        ),
        "{plan:?}"
    );
    assert!(
        matches!(events.last(), Some(Event::Done { files: 12, .. })),
        "{:?}",
        events.last()
    );
    let done = events
        .iter()
        .filter(|e| matches!(e, Event::FileDone { .. }))
        .count();
    assert_eq!(done, 12);
}

#[tokio::test]
async fn two_pulls_of_one_pipeline_at_once_both_succeed_and_download_once() {
    let w = World::new().await;
    let (spec, origin) = w.spec("twice", "repo_id: acme/pipe\n");
    let (a, b) = (w.fetcher(false), w.fetcher(false));
    let opts = PullOptions::default();
    let (ra, rb) = tokio::join!(
        a.download_diffusers_pipeline(&spec, &origin, &opts),
        b.download_diffusers_pipeline(&spec, &origin, &opts)
    );
    let (ra, rb) = (ra.expect("first"), rb.expect("second"));
    assert_eq!(ra.path, rb.path);
    let total: u64 = ra.plan.files.iter().filter_map(|f| f.size).sum();
    assert_eq!(ra.downloaded_bytes + rb.downloaded_bytes, total);
    let ok = a
        .is_available_locally(&spec, &origin, true)
        .await
        .expect("check");
    assert!(ok.available, "{:?}", ok.problems);
}

#[tokio::test]
async fn a_stalled_transfer_still_sends_heartbeats() {
    let w = World::new().await;
    w.hub.faults().push(
        pipefetch_hub_server::Fault::stall_after(100, Some(std::time::Duration::from_millis(2500)))
            .on(Route::Cdn)
            .path_contains("unet")
            .times(1),
    );
    w.pull("hb", "repo_id: acme/pipe\n").await.expect("pull");
    let events = w.events.lock().expect("events").clone();
    let stalled: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Heartbeat { stalled_ms, .. } => Some(*stalled_ms),
            _ => None,
        })
        .collect();
    assert!(stalled.len() >= 2, "{stalled:?}");
    assert!(stalled.iter().any(|ms| *ms >= 900), "{stalled:?}");
}

#[tokio::test]
async fn retries_in_a_pull_are_events_of_their_file_whatever_the_source() {
    let w = World::new().await;
    let hub = w.hub.url();
    // One 503 for a URL source's request and one for a Hub weights file on the CDN.
    w.hub.faults().push(
        pipefetch_hub_server::Fault::status(503)
            .on(Route::Resolve)
            .path_contains("tokenizer/vocab.json")
            .times(1),
    );
    w.hub.faults().push(
        pipefetch_hub_server::Fault::status(503)
            .on(Route::Cdn)
            .path_contains("vae")
            .times(1),
    );
    let yaml = format!(
        "repo_id: acme/pipe
variant: fp16
components:
  tokenizer:
    urls:
      vocab.json: {hub}/acme/pipe/resolve/main/tokenizer/vocab.json
      merges.txt: {hub}/acme/pipe/resolve/main/tokenizer/merges.txt
      tokenizer_config.json: {hub}/acme/pipe/resolve/main/tokenizer/tokenizer_config.json
"
    );
    // The World's fetcher is given its own client: its retries must be reported all the same.
    w.pull("retries", &yaml).await.expect("pull");
    let events = w.events.lock().expect("events").clone();
    let path_of = |id: u64| {
        events.iter().find_map(|e| match e {
            Event::FileStarted { file, path, .. } if *file == id => Some(path.clone()),
            _ => None,
        })
    };
    let mut retried: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Retry {
                file: Some(id),
                reason,
                ..
            } => Some((path_of(*id).expect("a started file"), reason.clone())),
            Event::Retry {
                file: None, reason, ..
            } => Some(("<none>".into(), reason.clone())),
            _ => None,
        })
        .collect();
    retried.sort();
    assert_eq!(
        retried,
        vec![
            ("tokenizer/vocab.json".to_string(), "HTTP 503".to_string()),
            // FileStarted names a file by where it lands in the folder: the canonical name.
            (
                "vae/diffusion_pytorch_model.safetensors".to_string(),
                "HTTP 503".to_string()
            ),
        ]
    );
}
