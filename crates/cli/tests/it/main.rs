//! The `pipefetch` binary as a user runs it: exit codes, stdout/stderr contracts, messages.

mod mirror;

use std::path::Path;
use std::process::{Command, Output};

use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes};

const TOKEN: &str = "hf_cli_test_token";

struct Env {
    hub: HubServer,
    _root: tempfile::TempDir,
    home: tempfile::TempDir,
}

async fn env() -> Env {
    let root = tempfile::tempdir().expect("tempdir");
    RepoBuilder::new(root.path(), "models", "acme/pipe")
        .file(
            "model_index.json",
            br#"{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", "PNDMScheduler"]}"#.to_vec(),
        )
        .file("unet/config.json", br#"{"a": 1}"#.to_vec())
        .file("unet/diffusion_pytorch_model.safetensors", random_bytes(1, 5000))
        .file("scheduler/scheduler_config.json", br#"{"b": 2}"#.to_vec())
        .build()
        .expect("fixture");
    RepoBuilder::new(root.path(), "models", "acme/gated")
        .file("config.json", b"{}".to_vec())
        .gated()
        .build()
        .expect("fixture");
    let hub = HubServer::builder(root.path())
        .token(TOKEN)
        .start()
        .await
        .expect("hub-server");
    Env {
        hub,
        _root: root,
        home: tempfile::tempdir().expect("tempdir"),
    }
}

async fn pipefetch(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> Output {
    pipefetch_at(&env.hub.url(), env.home.path(), args, extra).await
}

/// `pipefetch ARGS` with nothing of the caller's environment but `PATH`: the Hub at `endpoint`,
/// the cache in `home`, then `extra` (which may override both).
async fn pipefetch_at(
    endpoint: &str,
    home: &Path,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipefetch"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", home)
        .env("PIPEFETCH_MAX_RETRIES", "2");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run pipefetch"))
        .await
        .expect("join")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn spec(dir: &Path, name: &str, yaml: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, yaml).expect("write spec");
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_reports_a_typo_with_its_line_and_exits_3() {
    let e = env().await;
    let good = spec(e.home.path(), "good.yaml", "repo_id: acme/pipe\n");
    let bad = spec(
        e.home.path(),
        "bad.yaml",
        "repo_id: acme/pipe\ncomponents:\n  unet:\n    hf_rpo: acme/pipe/unet\n",
    );
    let out = pipefetch(&e, &["validate", &good], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = pipefetch(&e, &["validate", &good, &bad], &[]).await;
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("bad.yaml:4:5"), "{err}");
    assert!(err.contains("hf_repo"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_prints_the_folder_last_and_check_tells_with_its_exit_code() {
    let e = env().await;
    let s = spec(e.home.path(), "p.yaml", "repo_id: acme/pipe\n");
    let out = pipefetch(&e, &["check", &s], &[]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));

    let out = pipefetch(&e, &["pull", &s, "--progress", "json"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let folder = stdout.lines().last().expect("a path");
    assert_eq!(Path::new(folder), e.home.path().join("pipelines/p"));
    assert!(
        Path::new(folder)
            .join("unet/diffusion_pytorch_model.safetensors")
            .is_file()
    );
    // Every progress line is a versioned JSON object.
    let events: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(events.iter().all(|e| e["v"] == 2));
    assert_eq!(
        events.first().map(|e| e["event"].clone()),
        Some("plan".into())
    );
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some("done".into())
    );

    let out = pipefetch(&e, &["check", &s], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = pipefetch(&e, &["list", "--json"], &[]).await;
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed["pipelines"][0]["name"], "p");
    assert_eq!(listed["pipelines"][0]["complete"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_say_what_failed_and_what_to_do() {
    let e = env().await;
    // Gated without a token.
    let out = pipefetch(&e, &["download", "acme/gated", "config.json"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("hint: "), "{err}");
    assert!(err.contains("acme/gated"), "{err}");
    // With it.
    let out = pipefetch(
        &e,
        &["download", "acme/gated", "config.json", "--token", TOKEN],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A missing variant names the ones that exist.
    let s = spec(
        e.home.path(),
        "v.yaml",
        "repo_id: acme/pipe\ncomponents:\n  unet:\n    hf_repo: acme/pipe/unet\n    variant: bf16\n",
    );
    let out = pipefetch(&e, &["pull", &s], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("bf16"), "{}", text(&out.stderr));
    // A dead server: a clear error, quickly, no hang.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        format!("http://127.0.0.1:{port}")
    };
    let out = pipefetch(
        &e,
        &[
            "download",
            "acme/pipe",
            "unet/config.json",
            "--endpoint",
            &dead,
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("acme/pipe"), "{err}");
    assert!(err.to_lowercase().contains("connect"), "{err}");
    // A dead proxy from the environment: named (without its password), with what to do.
    let proxy = dead.replace("http://", "http://user:hunter2@");
    let out = pipefetch(
        &e,
        &["download", "acme/pipe", "unet/config.json"],
        &[("HTTP_PROXY", &proxy)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("through the proxy {dead}")), "{err}");
    assert!(err.contains("NO_PROXY"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // The same server, bypassed with NO_PROXY, works.
    let out = pipefetch(
        &e,
        &["download", "acme/pipe", "unet/config.json"],
        &[("HTTP_PROXY", &proxy), ("NO_PROXY", "127.0.0.1,localhost")],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// The `.incomplete.state` sidecars under `dir`, with the bytes each records as written.
fn recorded_partials(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(".incomplete.state")
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|state| {
            state["chunks"]
                .as_array()
                .map(|chunks| chunks.iter().filter_map(|c| c[2].as_u64()).sum())
                .unwrap_or(0)
        })
        .collect()
}

#[tokio::test]
async fn a_killed_download_resumes_from_what_it_wrote() {
    const SIZE: usize = 3_000_000;
    let root = tempfile::tempdir().expect("tempdir");
    RepoBuilder::new(root.path(), "models", "acme/big")
        .file("model.safetensors", random_bytes(9, SIZE))
        .build()
        .expect("fixture");
    let e = Env {
        hub: HubServer::builder(root.path())
            .start()
            .await
            .expect("hub-server"),
        _root: root,
        home: tempfile::tempdir().expect("tempdir"),
    };
    // Slow enough that the process is killed in the middle, fast enough to record progress.
    e.hub
        .faults()
        .push(pipefetch_hub_server::Fault::trickle(400_000).on(pipefetch_hub_server::Route::Cdn));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipefetch"))
        .args([
            "download",
            "acme/big",
            "model.safetensors",
            "--progress",
            "none",
        ])
        .env_clear()
        .env("HF_ENDPOINT", e.hub.url())
        .env("HF_HOME", e.home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let blobs = e.home.path().join("hub/models--acme--big/blobs");
    let started = std::time::Instant::now();
    let written = loop {
        if let Some(&n) = recorded_partials(&blobs).iter().max()
            && n >= 400_000
        {
            break n;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no progress recorded"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished too early"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // SIGKILL: nothing runs on the way out, as after an OOM kill or a lost pod.
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!((written as usize) < SIZE);

    e.hub.faults().clear();
    let before = e.hub.log().entries().len();
    let out = pipefetch(&e, &["download", "acme/big", "model.safetensors"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let path = text(&out.stdout).trim().to_string();
    assert_eq!(std::fs::read(&path).expect("read"), random_bytes(9, SIZE));
    // The rerun asked only for what was not recorded as written.
    let ranges: Vec<String> = e.hub.log().entries()[before..]
        .iter()
        .filter(|r| r.route == pipefetch_hub_server::Route::Cdn)
        .filter_map(|r| r.range.clone())
        .collect();
    let from: Vec<u64> = ranges
        .iter()
        .filter_map(|r| r.strip_prefix("bytes=")?.split('-').next()?.parse().ok())
        .collect();
    assert_eq!(from.len(), 1, "{ranges:?}");
    assert!(
        from[0] >= written,
        "resumed at {} but {written} were recorded",
        from[0]
    );
    // Nothing partial is left behind.
    assert!(
        std::fs::read_dir(&blobs)
            .expect("blobs")
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains(".incomplete")),
        "a partial file was left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_then_locked_pull_on_another_machine_and_an_edited_spec_is_refused() {
    let e = env().await;
    let specs = tempfile::tempdir().expect("tempdir");
    let yaml = "repo_id: acme/pipe\n";
    let path = spec(specs.path(), "pipe.yaml", yaml);
    let out = pipefetch(&e, &["--progress", "none", "lock", &path], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lockfile = specs.path().join("pipe.lock");
    assert_eq!(text(&out.stdout).trim(), lockfile.display().to_string());
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&lockfile).expect("lockfile")).expect("json");
    assert_eq!(lock["version"], 1);
    assert_eq!(lock["files"].as_array().map(Vec::len), Some(3));

    // Another machine (HF_HOME), the same lock: no resolution, same folder.
    let other = tempfile::tempdir().expect("tempdir");
    let other_home = other.path().display().to_string();
    e.hub.log().clear();
    let out = pipefetch(
        &e,
        &["--progress", "none", "pull", "--locked", &path],
        &[("HF_HOME", &other_home)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let folder = text(&out.stdout).trim().to_string();
    assert_eq!(
        std::fs::read(Path::new(&folder).join("unet/diffusion_pytorch_model.safetensors"))
            .expect("weights"),
        random_bytes(1, 5000)
    );
    assert_eq!(e.hub.log().count(pipefetch_hub_server::Route::ApiRepo), 0);
    assert_eq!(e.hub.log().count(pipefetch_hub_server::Route::ApiTree), 0);

    // Warm and locked: no request at all; `check --locked` agrees; `plan --locked` shows it.
    e.hub.log().clear();
    let out = pipefetch(
        &e,
        &["--progress", "none", "pull", "--locked", &path],
        &[("HF_HOME", &other_home)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = pipefetch(
        &e,
        &["check", "--locked", &path],
        &[("HF_HOME", &other_home)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = pipefetch(
        &e,
        &["plan", "--locked", "--json", &path],
        &[("HF_HOME", &other_home)],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan json");
    assert_eq!(plan["missing_bytes"], 0);
    assert_eq!(
        e.hub.log().entries(),
        vec![],
        "warm locked commands make no request"
    );

    // Edit the spec: the lock no longer describes it.
    std::fs::write(&path, "repo_id: acme/pipe\nvariant: fp16\n").expect("edit");
    let out = pipefetch(
        &e,
        &["pull", "--locked", &path],
        &[("HF_HOME", &other_home)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("changed since it was locked"), "{err}");
    assert!(err.contains("pipefetch lock"), "{err}");

    // No lockfile at all.
    let lonely = spec(specs.path(), "lonely.yaml", yaml);
    let out = pipefetch(&e, &["pull", "--locked", &lonely], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("there is no lockfile at"),
        "{}",
        text(&out.stderr)
    );
}
