//! The interop suite: the real Python `huggingface_hub` (from PyPI, pinned) against our cache and
//! our server. The tests live in `xtask/interop/test_*.py`; this task prepares a venv and binaries,
//! starts a Garage (the S3 store of the mirror's end-to-end test, `test_mirror_e2e.py`), and runs
//! pytest over them.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use pipefetch_test_garage::Garage;

use crate::util::{self, Requirements};

/// Pinned so a new upstream release cannot silently change what "compatible" means; bump on purpose.
/// diffusers and transformers are for `test_pipeline_e2e.py`, which loads and runs a pulled
/// pipeline; they need torch, installed from `TORCH`.
/// maturin builds the `pipefetch` Python package (crates/python) into a wheel, which is installed in
/// the venv and tested by `test_python_*.py`; mypy checks its stubs with `--strict`.
const BASE: &str = "\
huggingface_hub==2.4.0
pytest==9.2.0
diffusers==0.42.1
transformers==5.24.0
safetensors==0.8.0
maturin==1.16.0
mypy==2.4.1
";

/// torch for CPU, installed with `--no-deps`. PyPI has only CUDA builds of torch for Linux x86_64,
/// and they cannot even be imported without the CUDA libraries they link against (`readelf -d
/// libtorch_cuda.so` lists them), so those are here; what torch declares besides (triton, 1 GB,
/// cuSOLVER, NVTX, cuda-bindings) is for GPUs and is left out. Measured: 4.0 GB installed instead
/// of 5.7 GB, and without pip's cache 3.5 GB less again. A bump of torch means re-reading its
/// `Requires-Dist` (`pip install --dry-run --report r.json torch==X`).
const TORCH: &[&str] = &[
    "torch==2.15.0",
    "nvidia-cudnn-cu13==9.26.0.51",
    "nvidia-cublas==13.4.1.3",
    "nvidia-cufft==12.2.0.57",
    "nvidia-cusparse==12.7.10.12 nvidia-nvjitlink==13.5.37",
    "nvidia-nccl-cu13==2.30.7 nvidia-cusparselt-cu13==0.8.1 nvidia-nvshmem-cu13==3.7.2",
    "nvidia-cuda-runtime==13.2.86 nvidia-cuda-nvrtc==13.2.86 nvidia-cuda-cupti==13.2.86 \
     nvidia-cufile==1.17.1.22",
    "sympy==1.14.0 mpmath==1.3.0 networkx==3.6.1 jinja2==3.1.6 markupsafe==3.0.4 \
     setuptools==84.2.1 fsspec filelock typing_extensions",
];

/// Free disk the torch part needs while it installs: 4.0 GB installed plus the largest wheel
/// unpacked beside it, with a margin.
const TORCH_DISK: u64 = 5_500_000_000;

const VENV: &str = "interop-venv";

/// Runs the suite. Returns what was skipped, and why (the diffusers tests when this machine has no
/// room for torch, the mirror's when Garage is not installed outside CI): the caller says so at
/// the end, where it is seen.
pub fn run(args: &[String]) -> Result<Vec<String>> {
    let bins = util::build_bins(false)?;
    let (python, skipped) = venv()?;
    python_package(&python)?;
    // The S3 store of the mirror's test (`test_mirror_e2e.py`), served while pytest runs.
    let garage = garage()?;
    let scratch = util::target_dir().join("interop-scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let mut cmd = Command::new(python);
    // `-rs` lists every skipped test with its reason in the summary.
    cmd.args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
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
        // Loopback only: a developer's proxy must not sit between the suite and its servers.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("HF_HUB_DISABLE_TELEMETRY", "1");
    // Nor a real bucket: only the Garage started here, under names no other test reads.
    for name in [
        "PIPEFETCH_MIRROR",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
    ] {
        cmd.env_remove(name);
    }
    let mut skips = Vec::new();
    if let Some(reason) = &skipped {
        cmd.env("INTEROP_SKIP_TORCH", reason);
        skips.push(format!(
            "the diffusers end-to-end tests were skipped: {reason}"
        ));
    }
    match &garage {
        Ok(garage) => {
            for (name, value) in garage.aws_env() {
                cmd.env(format!("INTEROP_MIRROR_{name}"), value);
            }
            cmd.env("INTEROP_MIRROR_BUCKET", garage.bucket());
        }
        Err(reason) => {
            cmd.env("INTEROP_SKIP_MIRROR", reason);
            skips.push(format!("the mirror's interop test was skipped: {reason}"));
        }
    }
    util::run(&mut cmd)?;
    drop(garage);
    Ok(skips)
}

/// A running Garage for the mirror's test, or why there is none. Under CI it is installed when
/// missing (the test must run there); elsewhere a missing Garage skips the test with that reason
/// rather than start a 20-minute build.
fn garage() -> Result<std::result::Result<Garage, String>> {
    let under_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let bin = if under_ci {
        crate::garage::ensure()?
    } else {
        match pipefetch_test_garage::find_garage() {
            Some(bin) => bin,
            None => {
                return Ok(Err(format!(
                    "Garage (an S3-compatible store) is not installed; `cargo xtask garage` \
                     installs it (once per machine, about 20 minutes), or set {}",
                    pipefetch_test_garage::GARAGE_BIN_VAR
                )));
            }
        }
    };
    Ok(Ok(
        Garage::start(&bin).context("starting Garage for the interop suite")?
    ))
}

/// Builds the `pipefetch` wheel with the venv's maturin, installs it in the venv, and type-checks the
/// package and its example with `mypy --strict`. A dev-profile wheel: it shares `target/debug` with
/// the rest of the build (the tests measure behaviour, not speed; `cargo xtask bench` and a
/// `pip install ./crates/python` build in release).
fn python_package(python: &Path) -> Result<()> {
    let bin = python.parent().context("the venv's python has no folder")?;
    let wheels = util::target_dir().join("wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    let crate_dir = util::root().join("crates").join("python");
    let mut build = Command::new(bin.join("maturin"));
    build
        .args(["build", "--quiet", "--profile", "dev", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--interpreter")
        .arg(python)
        .arg("--out")
        .arg(&wheels);
    if std::env::var_os("CI").is_some() && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        build.env("CARGO_INCREMENTAL", "0");
    }
    util::run(&mut build)?;
    let wheel = std::fs::read_dir(&wheels)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("maturin built no wheel")?;
    util::run(
        Command::new(python)
            .args(["-m", "pip", "install", "--quiet", "--no-cache-dir"])
            .args(["--no-deps", "--force-reinstall"])
            .arg(&wheel)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    )?;
    // The package's own code and a user's view of it (the installed stubs), both strictly.
    util::run(
        Command::new(python)
            .args(["-m", "mypy", "--strict", "--no-incremental"])
            .arg(crate_dir.join("examples"))
            .current_dir(util::root().join("target")),
    )?;
    util::run(
        Command::new(python)
            .args(["-m", "mypy", "--strict", "--no-incremental"])
            .arg(crate_dir.join("python").join("pipefetch"))
            .current_dir(util::root().join("target")),
    )
}

/// The venv, with torch when it is installed already or the disk has room for it; otherwise
/// without, and the reason.
fn venv() -> Result<(std::path::PathBuf, Option<String>)> {
    let with_torch = Requirements {
        resolved: BASE,
        exact: TORCH,
    };
    let without = Requirements {
        resolved: BASE,
        exact: &[],
    };
    let target = util::target_dir();
    std::fs::create_dir_all(&target)?;
    let installed = std::fs::read_to_string(target.join(VENV).join("pipefetch-requirements.txt"))
        .is_ok_and(|stamp| stamp.contains("torch=="));
    // A venv being replaced frees its own space first.
    let free = util::free_space(&target).map(|free| {
        free + if installed {
            0
        } else {
            dir_size(&target.join(VENV))
        }
    });
    match free {
        Some(free) if !installed && free < TORCH_DISK => {
            let reason = format!(
                "no room for torch: {} has {:.1} GB free, torch needs {:.1} GB to install",
                target.display(),
                free as f64 / 1e9,
                TORCH_DISK as f64 / 1e9
            );
            eprintln!("warning: {reason}; the diffusers end-to-end tests will be skipped");
            Ok((util::ensure_venv(VENV, &without)?, Some(reason)))
        }
        _ => {
            let python = util::ensure_venv(VENV, &with_torch)?;
            // A lock that misses a library torch links against fails here, said plainly, rather
            // than as an import error deep in a test.
            util::run(Command::new(&python).args([
                "-c",
                "import torch; torch.nn.Linear(2, 2)(torch.ones(1, 2))",
            ]))?;
            Ok((python, None))
        }
    }
}

/// Total size of the files under `dir` (0 when it does not exist).
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_size(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
