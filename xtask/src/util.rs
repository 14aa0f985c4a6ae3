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

/// Runs `cargo ARGS` in the workspace root and fails when it fails. Under CI (`CI` set) without
/// incremental compilation: a fresh clone gains nothing from it, and the disk must also hold torch.
/// With this and line tables only (`[profile.dev]`), a fresh clone's `target/debug` after `cargo
/// xtask ci` measured 1.1 GB, where it was about 4 GB.
pub fn cargo(args: &[&str]) -> Result<()> {
    cargo_with_env(args, &[])
}

/// [`cargo`] with extra environment variables for the child.
pub fn cargo_with_env(args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Result<()> {
    let mut cmd = Command::new(cargo_bin());
    cmd.args(args).current_dir(root());
    cmd.envs(envs.iter().copied());
    if std::env::var_os("CI").is_some() && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    run(&mut cmd)
}

/// The workspace's packages marked `publish = false` (xtask, test harnesses, the Python
/// extension, which ships to PyPI): a packaging dry run leaves them out. Read from the manifests'
/// `[package]` tables, which are ours and simple.
pub fn unpublished_packages() -> Result<Vec<String>> {
    Ok(workspace_packages()?
        .into_iter()
        .filter(|(_, published)| !published)
        .map(|(name, _)| name)
        .collect())
}

/// Every package of the workspace (xtask and `crates/*`): its name and whether it is published.
fn workspace_packages() -> Result<Vec<(String, bool)>> {
    let mut manifests = vec![root().join("xtask/Cargo.toml")];
    for entry in std::fs::read_dir(root().join("crates"))? {
        manifests.push(entry?.path().join("Cargo.toml"));
    }
    let mut out = Vec::new();
    for manifest in manifests.iter().filter(|m| m.is_file()) {
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("could not read {}", manifest.display()))?;
        let package = text.split("\n[").next().unwrap_or_default();
        let field = |key: &str| {
            package.lines().find_map(|line| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        if let Some(name) = field("name") {
            out.push((name, field("publish").as_deref() != Some("false")));
        }
    }
    out.sort();
    Ok(out)
}

/// `cargo package --workspace` builds each crate against the others' packaged sources, which
/// cargo unpacks under `$CARGO_HOME/registry/src/-<hash>/` (a local registry of its own) and
/// never unpacks again for the same name and version. Once unpacked, their files carry the
/// tarball's fixed mtime (2006), so a build of them from an earlier run always looks fresh. With a
/// CARGO_HOME or a target folder kept between runs, the CLI was verified against an earlier run's
/// fetcher and failed on a function added since. So first: the unpacked copies of this
/// workspace's published crates are removed (only in local registries' folders), and so are
/// their debug fingerprints (cargo rebuilds what has none; nothing else is
/// touched).
pub fn forget_unpacked_workspace_crates() -> Result<()> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(src) = cargo_home.map(|h| h.join("registry").join("src")) else {
        return Ok(());
    };
    let names: Vec<String> = workspace_packages()?
        .into_iter()
        .filter(|(_, published)| *published)
        .map(|(name, _)| name)
        .collect();
    // `<name>-<version>` in local registries (`-<hash>/`; crates.io's folder is never ours), and
    // `<name>-<16 hex>` among the debug fingerprints.
    let mut stale = Vec::new();
    if let Ok(registries) = std::fs::read_dir(&src) {
        for registry in registries.flatten() {
            if registry.file_name().to_string_lossy().starts_with('-') {
                stale.extend(entries_of(&registry.path(), &names, |version| {
                    version.starts_with(|c: char| c.is_ascii_digit())
                }));
            }
        }
    }
    stale.extend(entries_of(
        &target_dir().join("debug").join(".fingerprint"),
        &names,
        |hash| hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
    ));
    for path in stale {
        std::fs::remove_dir_all(&path)
            .with_context(|| format!("could not remove the stale {}", path.display()))?;
    }
    Ok(())
}

/// The entries of `dir` named `<one of names>-<rest>` where `rest` passes `suffix`.
fn entries_of(dir: &Path, names: &[String], suffix: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            names.iter().any(|name| {
                file.strip_prefix(name.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(&suffix)
            })
        })
        .map(|entry| entry.path())
        .collect()
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
    let mut args = vec![
        "build",
        "--quiet",
        "-p",
        "pipefetch",
        "-p",
        "pipefetch-hub-server",
    ];
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

/// What a venv holds: `resolved` is installed in one pip run with its dependencies; each line of
/// `exact` is a further pip run with `--no-deps`, for wheels whose declared dependencies we do not
/// want (see `interop::TORCH`). One run per line keeps at most one large wheel in pip's temporary
/// folder at a time: pip keeps every wheel of a run until the run ends.
pub struct Requirements<'a> {
    pub resolved: &'a str,
    pub exact: &'a [&'a str],
}

impl Requirements<'_> {
    fn stamp(&self) -> String {
        let mut stamp = self.resolved.to_string();
        for line in self.exact {
            stamp.push_str("--no-deps ");
            stamp.push_str(line);
            stamp.push('\n');
        }
        stamp
    }
}

/// Creates (once) a Python venv at `target/<name>` with the pinned `requirements` installed and
/// returns the path of its `python`. A stamp file holding the requirements makes reruns instant
/// and a changed pin reinstall. pip runs without its cache: on a fresh machine the cache would
/// only double the disk the wheels take (3.5 GB more for torch), and a venv is made once.
pub fn ensure_venv(name: &str, requirements: &Requirements<'_>) -> Result<PathBuf> {
    let venv = target_dir().join(name);
    let python = venv_python(name);
    let stamp_file = venv.join("pipefetch-requirements.txt");
    let stamp = requirements.stamp();
    if python.exists() && std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(&*stamp) {
        return Ok(python);
    }
    let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    eprintln!("creating {} ({})", venv.display(), stamp.replace('\n', " "));
    run(Command::new(&system_python)
        .args(["-m", "venv", "--clear"])
        .arg(&venv))?;
    let pip = || {
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "pip", "install", "--quiet", "--no-cache-dir"])
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
        cmd
    };
    let req_file = venv.join("requirements.in");
    std::fs::write(&req_file, requirements.resolved)?;
    run(pip().arg("-r").arg(&req_file))?;
    for line in requirements.exact {
        run(pip().arg("--no-deps").args(line.split_whitespace()))?;
    }
    std::fs::write(&stamp_file, stamp)?;
    Ok(python)
}

/// Where `ensure_venv(name, ..)` puts the venv's `python`.
pub fn venv_python(name: &str) -> PathBuf {
    let venv = target_dir().join(name);
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// Bytes free for an unprivileged user on the file system holding `path` (`None` where unknown).
pub fn free_space(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let stat = rustix::fs::statvfs(path).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
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
