//! `cargo xtask demo`: the main job, end to end, against the bundled hub-server.
//!
//! Writes a Stable-Diffusion-shaped example repo (about 1 GB of random weights) once under
//! `target/demo/`, serves it with `hub-server`, and runs `pipefetch` on it with progress bars into a
//! fresh cache: a selective snapshot (only what a fp32 safetensors pipeline needs), the same again
//! (warm: nothing moves), then `pipefetch scan`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::util::{self, ServerProcess};

const REPO: &str = "demo/sd-like";
const SCALE: u64 = 1_000_000_000;

pub fn run(_args: &[String]) -> Result<()> {
    let bins = util::build_bins(false)?;
    let base = util::target_dir().join("demo");
    let root = base.join("hub-root");
    ensure_fixture(&root)?;
    let cache = base.join("cache");
    let _ = std::fs::remove_dir_all(&cache);

    let server = ServerProcess::start(&bins.hub_server, &root, &[])?;
    eprintln!("\nhub-server: {} serving {}\n", server.url, root.display());

    let pipefetch = |args: &[&str]| -> Result<()> {
        eprintln!("$ pipefetch {}", args.join(" "));
        util::run(
            Command::new(&bins.pipefetch)
                .args(args)
                .env("HF_ENDPOINT", &server.url)
                .env("HF_HUB_CACHE", &cache)
                .env_remove("HF_TOKEN")
                .env_remove("HF_HUB_OFFLINE"),
        )
    };
    let snapshot = [
        "snapshot",
        REPO,
        "--exclude",
        "*.bin",
        "--exclude",
        "*.fp16.*",
        "--exclude",
        "v1-5-pruned.safetensors",
        "--progress",
        "bars",
    ];
    pipefetch(&snapshot)?;
    eprintln!("\nagain, warm (one request to resolve `main`, no transfer):");
    pipefetch(&snapshot)?;
    eprintln!();
    pipefetch(&["scan"])?;
    eprintln!("\ncache: {}", cache.display());
    Ok(())
}

fn ensure_fixture(root: &Path) -> Result<()> {
    let stamp = root.join(".demo-fixture-v1");
    if stamp.exists() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(root);
    eprintln!(
        "writing the example repo {REPO} (~1 GB) under {}",
        root.display()
    );
    hub_server::fixture::sd_like(root, REPO, SCALE).context("writing the demo fixture")?;
    std::fs::write(&stamp, b"")?;
    Ok(())
}
