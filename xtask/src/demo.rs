//! `cargo xtask demo`: the main job, end to end, against the bundled hub-server.
//!
//! Writes a Stable-Diffusion-shaped example repo (about 2 GB of random weights), a flat VAE repo and
//! a local "fine-tuned" text encoder once under `target/demo/`, serves the repos with `hub-server`, and runs
//! `pipefetch` with progress bars into a fresh cache: `plan`, `pull` of `xtask/demo/demo.yaml.in`
//! (all four source kinds), `check`, a second `pull` (warm: nothing moves), and `list`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::util::{self, ServerProcess};

const SCALE: u64 = 2_000_000_000;

pub fn run(_args: &[String]) -> Result<()> {
    let bins = util::build_bins(false)?;
    let base = util::target_dir().join("demo");
    let root = base.join("hub-root");
    ensure_fixture(&root, &base)?;
    let home = base.join("hf-home");
    let _ = std::fs::remove_dir_all(&home);

    let server = ServerProcess::start(&bins.hub_server, &root, &[])?;
    eprintln!("\nhub-server: {} serving {}\n", server.url, root.display());

    let template = std::fs::read_to_string(util::root().join("xtask/demo/demo.yaml.in"))?;
    let spec = base.join("demo.yaml");
    std::fs::write(
        &spec,
        template.replace("{{HUB}}", &server.url).replace(
            "{{LOCAL_TEXT_ENCODER}}",
            &base.join("my-text-encoder").display().to_string(),
        ),
    )?;
    let spec = spec.display().to_string();

    let pipefetch = |args: &[&str]| -> Result<()> {
        eprintln!("$ pipefetch {}", args.join(" "));
        util::run(
            Command::new(&bins.pipefetch)
                .args(args)
                .env("HF_ENDPOINT", &server.url)
                .env("HF_HOME", &home)
                .env_remove("HF_HUB_CACHE")
                .env_remove("HF_TOKEN")
                .env_remove("HF_HUB_OFFLINE"),
        )
    };
    pipefetch(&["plan", &spec])?;
    eprintln!();
    pipefetch(&["pull", &spec, "--progress", "bars"])?;
    eprintln!();
    pipefetch(&["check", &spec])?;
    eprintln!("\nagain, warm (one request per repo to resolve `main`, no transfer):");
    pipefetch(&["pull", &spec, "--progress", "bars"])?;
    eprintln!();
    pipefetch(&["list"])?;
    eprintln!("\nHF_HOME of the demo: {}", home.display());
    Ok(())
}

fn ensure_fixture(root: &Path, base: &Path) -> Result<()> {
    let stamp = root.join(".demo-fixture-v4");
    if stamp.exists() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(root);
    eprintln!("writing the example repos (~2 GB) under {}", root.display());
    pipefetch_hub_server::fixture::sd_like(root, "demo/sd-like", SCALE)
        .context("writing the demo fixture")?;
    pipefetch_hub_server::fixture::RepoBuilder::new(root, "models", "demo/vae-fix")
        .file(
            "config.json",
            br#"{"_class_name": "AutoencoderKL", "force_upcast": false}"#.to_vec(),
        )
        .safetensors_file("diffusion_pytorch_model.safetensors", 77, 80_000_000)
        .build()?;
    let text_encoder = base.join("my-text-encoder");
    std::fs::create_dir_all(&text_encoder)?;
    std::fs::write(
        text_encoder.join("config.json"),
        br#"{"architectures": ["CLIPTextModel"], "hidden_size": 768}"#,
    )?;
    pipefetch_hub_server::fixture::write_safetensors_file(
        &text_encoder.join("my-finetune.safetensors"),
        78,
        60_000_000,
    )?;
    std::fs::write(&stamp, b"")?;
    Ok(())
}
