//! Small process helpers shared by the tasks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

/// Runs one named CI step, printing a header before it and a failure line after it.
pub fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("\n==> {name}");
    let started = std::time::Instant::now();
    f().with_context(|| format!("step `{name}` failed"))?;
    eprintln!("==> {name}: ok ({:.1?})", started.elapsed());
    Ok(())
}

/// The workspace root (the parent of the `xtask` folder).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `target/`, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Runs `cargo ARGS` in the workspace root and fails when it fails.
pub fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new(cargo_bin()).args(args).current_dir(root()))
}

/// Runs a command to completion, inheriting stdio.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} exited with {status}");
    }
    Ok(())
}

/// Paths of the two binaries the tasks drive.
pub struct Bins {
    pub pipefetch: PathBuf,
    pub hub_server: PathBuf,
}

/// Builds `pipefetch` and `hub-server` (release or debug) and returns their paths.
pub fn build_bins(release: bool) -> Result<Bins> {
    let mut args = vec!["build", "--quiet", "-p", "pipefetch", "-p", "hub-server"];
    if release {
        args.push("--release");
    }
    cargo(&args)?;
    let dir = target_dir().join(if release { "release" } else { "debug" });
    Ok(Bins {
        pipefetch: dir.join(exe("pipefetch")),
        hub_server: dir.join(exe("hub-server")),
    })
}

fn exe(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// A running `hub-server` child process, killed on drop.
pub struct ServerProcess {
    child: Child,
    pub url: String,
}

impl ServerProcess {
    /// Starts `hub-server --root ROOT EXTRA...` and waits for its `listening on URL` line.
    pub fn start(bin: &Path, root: &Path, extra: &[&str]) -> Result<ServerProcess> {
        let mut child = Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("could not start {}", bin.display()))?;
        let stdout = child.stdout.take().context("hub-server has no stdout")?;
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .context("reading hub-server's first line")?;
        let Some(url) = first.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!(
                "hub-server printed `{}` instead of `listening on URL`",
                first.trim()
            );
        };
        Ok(ServerProcess {
            url: url.to_string(),
            child,
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates (once) a Python venv at `target/<name>` with the pinned `requirements` installed and
/// returns the path of its `python`. A stamp file holding the requirements makes reruns instant
/// and a changed pin reinstall.
pub fn ensure_venv(name: &str, requirements: &str) -> Result<PathBuf> {
    let venv = target_dir().join(name);
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    let stamp = venv.join("pipefetch-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements) {
        return Ok(python);
    }
    let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    eprintln!(
        "creating {} ({})",
        venv.display(),
        requirements.replace('\n', " ")
    );
    run(Command::new(&system_python)
        .args(["-m", "venv", "--clear"])
        .arg(&venv))?;
    let req_file = venv.join("requirements.in");
    std::fs::write(&req_file, requirements)?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&req_file))?;
    std::fs::write(&stamp, requirements)?;
    Ok(python)
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`, without a date crate.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}
