//! Developer tasks for pipefetch, run as `cargo xtask <task>` (see `.cargo/config.toml`).
//!
//! - `ci`      — everything CI checks: formatting, clippy with `-D warnings`, the whole test suite,
//!   docs without warnings, a packaging dry run of every publishable crate, and the interop suite.
//!   `.ci/run` runs exactly this.
//! - `interop` — the Python interop suite alone: a venv under `target/interop-venv` with the real
//!   `huggingface_hub` from PyPI checks that our cache and our server are faithful, and the real
//!   diffusers loads what we pull (from hub-server, and from a mirror on a Garage it starts).
//! - `demo`    — the main job against the bundled hub-server and a bundled example repo, with bars.
//! - `bench`   — throughput side by side with curl, huggingface_hub (and aria2c, hf_transfer when
//!   available), reported as ratios: on an unthrottled link, on a real-looking one (a rate cap per
//!   connection), and through seeded faults; and as a fleet (N machines pulling from a mirror on
//!   Garage, from hub-server, and with `aws s3 cp` / `rclone` from the same bucket).
//! - `garage`  — installs Garage (the S3-compatible store the mirror's tests use) when missing;
//!   `--serve` runs one for manual work.
//!
//! xtask keeps few dependencies on purpose (anyhow, serde_json, plus our own hub-server for
//! fixtures): it must build quickly on a fresh clone.

mod bench;
mod demo;
mod garage;
mod interop;
mod util;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <ci|interop|demo|bench> [options]

  ci                    fmt check, clippy -D warnings, all tests, the interop suite
  interop [-k EXPR]     the Python interop suite only (pytest -k EXPR to select)
  demo                  pull the bundled example against a local hub-server, with progress bars
  bench [MODE] [--quick] download throughput vs. curl / huggingface_hub / aria2c / hf_transfer;
                        MODE: plain (unthrottled), link (40 MB/s per connection), faults, check,
                        fleet (N pulls at once from a mirror on Garage, from hub-server, aws/rclone)
                        (`cargo xtask bench --help` for the options)
  garage [--serve]      install Garage (S3 store for the mirror tests) if missing; --serve runs one";

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "ci" => ci(),
        "interop" => {
            for skipped in interop::run(&rest)? {
                eprintln!("\nwarning: {skipped}");
            }
            Ok(())
        }
        "demo" => demo::run(&rest),
        "bench" => bench::run(&rest),
        "garage" => garage::run(&rest),
        "" | "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

/// The CI gate. Each step prints a header so a failing log says at once which step broke.
fn ci() -> Result<()> {
    let started = std::time::Instant::now();
    if let Some(free) = util::free_space(&util::root()) {
        eprintln!(
            "xtask ci: {:.1} GB free on the disk of the workspace",
            free as f64 / 1e9
        );
    }
    util::step("cargo fmt --check", || {
        util::cargo(&["fmt", "--all", "--", "--check"])
    })?;
    util::step("cargo clippy -D warnings", || {
        util::cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    // Before the tests: the mirror's tests run against a real Garage, and fail under CI without it.
    let mut garage_bin = std::path::PathBuf::new();
    util::step("garage (S3 store for the mirror tests)", || {
        garage_bin = garage::ensure()?;
        eprintln!("using {}", garage_bin.display());
        Ok(())
    })?;
    util::step("cargo test", || {
        util::cargo_with_env(
            &["test", "--workspace", "--locked"],
            &[("GARAGE_BIN", garage_bin.as_os_str())],
        )
    })?;
    util::step("cargo doc (no warnings)", || {
        util::cargo_with_env(
            &[
                "doc",
                "--workspace",
                "--exclude",
                "xtask",
                "--no-deps",
                "--locked",
            ],
            &[("RUSTDOCFLAGS", std::ffi::OsStr::new("-D warnings"))],
        )
    })?;
    // A dry run of publishing: every publishable crate is packaged and built from its package
    // (catches a missing file, a path dependency without a version, a broken manifest).
    util::step("cargo package (publishable crates)", || {
        util::forget_unpacked_workspace_crates()?;
        let unpublished = util::unpublished_packages()?;
        let mut args = vec!["package", "--workspace", "--locked"];
        for name in &unpublished {
            args.extend(["--exclude", name.as_str()]);
        }
        util::cargo(&args)
    })?;
    let mut skipped = Vec::new();
    util::step("interop suite", || {
        skipped = interop::run(&[])?;
        Ok(())
    })?;
    eprintln!("\nxtask ci: all steps passed in {:.0?}", started.elapsed());
    for skipped in skipped {
        eprintln!("warning: {skipped}");
    }
    Ok(())
}
