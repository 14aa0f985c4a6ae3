//! The interop suite: the real Python `huggingface_hub` (from PyPI, pinned) against our cache and
//! our server. The tests live in `xtask/interop/test_*.py`; this task prepares a venv and binaries
//! and runs pytest over them.

use std::process::Command;

use anyhow::Result;

use crate::util;

/// Pinned so a new upstream release cannot silently change what "compatible" means; bump on purpose.
pub const REQUIREMENTS: &str = "huggingface_hub==2.4.0\npytest==9.2.0\n";

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
