//! Garage, the S3-compatible store the mirror's tests run against: found, or installed once per
//! machine outside the clone, and served for manual runs.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use pipefetch_test_garage::{GARAGE_VERSION, Garage, cargo_home, find_garage};

/// The `garage` binary: found where the tests look (`GARAGE_BIN`, `PATH`, `$CARGO_HOME/bin`),
/// else installed into `$CARGO_HOME/bin` with `cargo install` (about 20 minutes on 2 cores, once
/// per machine; later runs find it).
pub fn ensure() -> Result<PathBuf> {
    if let Some(bin) = find_garage() {
        report_version(&bin);
        return Ok(bin);
    }
    if std::env::var_os(pipefetch_test_garage::GARAGE_BIN_VAR).is_some_and(|v| !v.is_empty()) {
        bail!("GARAGE_BIN is set but names no file; unset it to let xtask install Garage");
    }
    let root = cargo_home().context("neither CARGO_HOME nor HOME is set")?;
    eprintln!(
        "Garage {GARAGE_VERSION} is not installed: building it into {}/bin (once per machine; \
         about 20 minutes on 2 cores)",
        root.display()
    );
    // Only what a single test node needs: `bundled-libs` (libsodium and zstd built from source,
    // nothing from the system) and the `lmdb` metadata engine. The defaults would add sqlite,
    // the k2v API and the Prometheus metrics stack, which only lengthen the build.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    crate::util::run(
        Command::new(cargo)
            .args(["install", "garage", "--version", GARAGE_VERSION, "--locked"])
            .args(["--no-default-features", "--features", "bundled-libs,lmdb"])
            .arg("--root")
            .arg(&root),
    )?;
    let bin = root
        .join("bin")
        .join(format!("garage{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "`cargo install garage` succeeded but {} is missing",
            bin.display()
        );
    }
    Ok(bin)
}

/// Warns when the binary found is not the version the tests are written against.
fn report_version(bin: &std::path::Path) {
    let version = Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !version.contains(GARAGE_VERSION) {
        eprintln!(
            "warning: {} reports `{version}`, not {GARAGE_VERSION}; the mirror's tests are written \
             against {GARAGE_VERSION}",
            bin.display()
        );
    }
}

/// `cargo xtask garage [--serve]`: installs Garage if needed and prints its path; with
/// `--serve`, also starts a single-node server with a bucket and a key, prints the variables
/// that point pipefetch at it, and serves until stdin closes (Ctrl-D) or xtask is killed.
pub fn run(args: &[String]) -> Result<()> {
    let bin = ensure()?;
    println!("{}", bin.display());
    if !args.iter().any(|a| a == "--serve") {
        return Ok(());
    }
    let garage = Garage::start(&bin).context("starting Garage")?;
    eprintln!(
        "Garage is serving; its log is {}",
        garage.log_path().display()
    );
    for (name, value) in garage.aws_env() {
        println!("export {name}={value}");
    }
    println!("export PIPEFETCH_MIRROR=s3://{}/pipefetch", garage.bucket());
    eprintln!("press Ctrl-D to stop it");
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink)? > 0 {
        sink.clear();
    }
    drop(garage);
    Ok(())
}
