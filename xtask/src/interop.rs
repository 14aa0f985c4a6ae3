//! The interop suite: the real Python `huggingface_hub` (from PyPI, pinned) against our cache and
//! our server. The tests live in `xtask/interop/test_*.py`; this task prepares a venv and binaries
//! and runs pytest over them.

use std::process::Command;

use anyhow::Result;

use crate::util;

/// Pinned so a new upstream release cannot silently change what "compatible" means; bump on purpose.
///
/// diffusers, transformers and torch are there for `test_pipeline_e2e.py`, which loads and runs a
/// pulled pipeline. PyPI has only CUDA builds of torch for Linux x86_64, and they cannot even be
/// imported without the `nvidia-*` libraries they link against, so the venv is large: about
/// 5.7 GB and 1m45s to create from an empty pip cache (measured on a 2-core machine like CI's). A
/// `--no-deps` lock without triton and cusolver saved only 30 s and 1.3 GB, not worth a hand-kept
/// list of 60 pins.
pub const REQUIREMENTS: &str = "\
huggingface_hub==2.4.0
pytest==9.2.0
torch==2.15.0
diffusers==0.42.1
transformers==5.24.0
safetensors==0.8.0
";

pub fn run(args: &[String]) -> Result<()> {
    let bins = util::build_bins(false)?;
    let python = util::ensure_venv("interop-venv", REQUIREMENTS)?;
    let scratch = util::target_dir().join("interop-scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(util::root().join("xtask").join("interop"))
        .args(args)
        .env("PIPEFETCH_BIN", &bins.pipefetch)
        .env("HUB_SERVER_BIN", &bins.hub_server)
        .env("INTEROP_SCRATCH", &scratch)
        // The suite must never reach a real hub, whatever the developer's environment says.
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_ENDPOINT")
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_HUB_DISABLE_TELEMETRY", "1");
    util::run(&mut cmd)
}
