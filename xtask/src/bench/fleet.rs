//! `cargo xtask bench fleet`: a fleet of N machines pulling one pipeline at once (issue 9).
//!
//! Each machine is a process of its own with an `HF_HOME` of its own (so its own connection
//! budget and its own disk cache), all started together; N = 1, 4, 8 by default, in one run. The
//! pipeline is the bench's SD-shaped repo as a spec (`repo_id: bench/sd-pipe-<MB>`, written by
//! `fixture::sd_pipeline` with only the files the spec pulls), about `--size-mb` MB (default
//! 2000). Beside each other, for each N:
//!
//! - **pipefetch from the mirror**: the pipeline is pushed once (`pipefetch mirror push`, from
//!   hub-server to a single-node Garage on loopback, timed apart), then every machine runs
//!   `pipefetch pull SPEC --mirror-only` with the AWS variables and `PIPEFETCH_MIRROR`;
//! - **pipefetch from hub-server**: every machine runs `pipefetch pull SPEC --no-mirror`;
//! - **the anchors a user would reach for**, copying the same blobs from the same bucket, one
//!   process per machine with its defaults: `aws s3 cp --recursive` (awscli from PyPI, pinned, in
//!   `target/bench-fleet-venv`) and `rclone copy` (when `rclone` is on `PATH`: `apt-get install
//!   rclone`). Neither verifies a sha256 (pipefetch does, of every byte) nor lays out an HF cache.
//!
//! Reported per run: wall time (first start to last exit), aggregate throughput (N × payload ÷
//! wall), the slowest and the median machine, and the bytes hub-server sent (its request log's
//! `sent`): with the mirror, the pulls take nothing from it and the push took the payload once;
//! without it, every machine takes the payload. One run per cell (a fleet run is long and its
//! machines already give N samples). Results go to `target/bench/results.md`.
//!
//! The fleet needs N_max × payload of free disk for the machines' caches at the peak, plus the
//! payload in Garage's data (in the temp folder) and the fixture; the bench checks first and says
//! what fits. `--work-dir` puts the machines' caches elsewhere.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pipefetch_test_garage::Garage;

use super::control;
use crate::util::{self, Requirements, ServerProcess};

pub const USAGE: &str = "usage: cargo xtask bench fleet [--fleet N,...] [--quick] [options]

  N machines (processes with HF_HOMEs of their own) pull one SD-shaped pipeline at once: from a
  mirror on Garage (pushed once from hub-server), from hub-server, and with aws s3 cp --recursive
  and rclone copy from the same bucket.

  --fleet 1,4,8         fleet sizes, one run each (default 1,4,8)
  --size-mb N           the pipeline's size (default 2000; quick 200)
  --work-dir DIR        where the machines' HF_HOMEs go (default target/bench/fleet)
  --quick               a 200 MB pipeline";

/// The awscli the anchor runs: pinned, so that a new release cannot silently change the anchor.
const AWSCLI: Requirements<'static> = Requirements {
    resolved: "awscli==1.46.2\n",
    exact: &[],
};

/// Where the pipeline sits in the bucket.
const PREFIX: &str = "fleet";

/// Free disk kept beyond what the bench needs, for the rest of the machine.
const MARGIN: u64 = 1_000_000_000;

struct FleetOptions {
    fleet: Vec<usize>,
    size_mb: u64,
    quick: bool,
    work_dir: PathBuf,
}

impl FleetOptions {
    fn parse(args: &[String]) -> Result<FleetOptions> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = FleetOptions {
            fleet: vec![1, 4, 8],
            size_mb: if quick { 200 } else { 2000 },
            quick,
            work_dir: super::bench_dir().join("fleet"),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
            };
            match a.as_str() {
                "fleet" | "--quick" => {}
                "--fleet" => {
                    o.fleet = value(a)?
                        .split(',')
                        .map(|n| {
                            n.trim()
                                .parse::<usize>()
                                .ok()
                                .filter(|n| *n > 0)
                                .with_context(|| format!("--fleet takes sizes over 0, not `{n}`"))
                        })
                        .collect::<Result<_>>()?
                }
                "--size-mb" => {
                    let v = value(a)?;
                    o.size_mb = v
                        .parse()
                        .with_context(|| format!("--size-mb needs a number, not `{v}`"))?
                }
                "--work-dir" => o.work_dir = PathBuf::from(value(a)?),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown fleet option `{other}`\n\n{USAGE}"),
            }
        }
        Ok(o)
    }
}

/// The pipeline as the lock says: what a machine pulls, and the distinct blobs the anchors copy.
struct Payload {
    files: usize,
    bytes: u64,
    blobs: usize,
    blob_bytes: u64,
}

/// One cell of the table: a tool at one fleet size.
struct Cell {
    tool: &'static str,
    n: usize,
    wall: f64,
    /// Each machine's time, sorted.
    machines: Vec<f64>,
    /// Bytes each machine received.
    bytes: u64,
    /// Bytes hub-server sent during the run.
    hub_sent: u64,
}

impl Cell {
    fn aggregate_mbs(&self) -> f64 {
        (self.n as u64 * self.bytes) as f64 / 1e6 / self.wall
    }
}

pub(super) fn run(args: &[String]) -> Result<()> {
    let opts = FleetOptions::parse(args)?;
    let bins = util::build_bins(true)?;
    let garage_bin = crate::garage::ensure()?;
    let root = super::bench_dir().join("hub-root");
    let repo = format!("bench/sd-pipe-{}", opts.size_mb);
    let pipeline_bytes = opts.size_mb * 1_000_000;
    let stamp = root.join(format!(".stamp-v1-sd-pipe-{}", opts.size_mb));
    let fixture_missing = !stamp.exists();
    let work = &opts.work_dir;
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work)?;
    std::fs::create_dir_all(&root)?;
    check_disk(&opts, &root, fixture_missing.then_some(pipeline_bytes))?;
    if fixture_missing {
        eprintln!(
            "writing the {} MB SD-shaped pipeline under {}",
            opts.size_mb,
            root.display()
        );
        let _ = std::fs::remove_dir_all(root.join("models").join(&repo));
        pipefetch_hub_server::fixture::sd_pipeline(&root, &repo, pipeline_bytes)?;
        std::fs::write(&stamp, b"")?;
    }

    let hub = ServerProcess::start(&bins.hub_server, &root, &[])?;
    super::warm(&hub, &repo)?;
    let spec = work.join("sd-pipe.yaml");
    std::fs::write(&spec, format!("repo_id: {repo}\n"))?;
    let payload = lock(&bins.pipefetch, &hub, &spec, work)?;
    eprintln!(
        "the pipeline: {} files, {:.0} MB ({} blobs, {:.0} MB)",
        payload.files,
        payload.bytes as f64 / 1e6,
        payload.blobs,
        payload.blob_bytes as f64 / 1e6
    );

    let garage = Garage::start(&garage_bin).context("starting Garage")?;
    let mirror = format!("s3://{}/{PREFIX}", garage.bucket());
    let fleet = Fleet {
        pipefetch: &bins.pipefetch,
        hub: &hub,
        garage: &garage,
        spec: &spec,
        work,
    };
    let (push_secs, push_sent) = fleet.push(&mirror)?;
    eprintln!(
        "push: {push_secs:.1} s, hub-server sent {:.0} MB",
        push_sent as f64 / 1e6
    );
    let aws = awscli(work);
    let rclone = super::tools::which("rclone");
    if !rclone {
        eprintln!("note: rclone is not on PATH (apt-get install rclone); its rows are skipped");
    }

    let mut cells = Vec::new();
    for &n in &opts.fleet {
        cells.push(
            fleet.measure("pipefetch, from the mirror", n, payload.bytes, |dir| {
                fleet.pull_command(dir, Some(&mirror))
            })?,
        );
        cells.push(
            fleet.measure("pipefetch, from hub-server", n, payload.bytes, |dir| {
                fleet.pull_command(dir, None)
            })?,
        );
        if let Some(aws) = &aws {
            cells.push(
                fleet.measure("aws s3 cp --recursive", n, payload.blob_bytes, |dir| {
                    fleet.aws_command(aws, dir)
                })?,
            );
        }
        if rclone {
            cells.push(fleet.measure("rclone copy", n, payload.blob_bytes, |dir| {
                fleet.rclone_command(dir)
            })?);
        }
    }
    drop(garage);
    drop(hub);
    let _ = std::fs::remove_dir_all(work);
    super::write_report(&report(
        &opts,
        &payload,
        push_secs,
        push_sent,
        &cells,
        aws.is_some(),
        rclone,
    ))
}

/// Refuses to start when the disk cannot hold the run: the largest fleet's caches at once, the
/// pipeline in Garage's data (the temp folder), and the fixture when it is still to be written.
fn check_disk(opts: &FleetOptions, root: &Path, fixture: Option<u64>) -> Result<()> {
    let payload = opts.size_mb * 1_000_000;
    let largest = opts.fleet.iter().copied().max().unwrap_or(1) as u64;
    let places = [
        (
            opts.work_dir.clone(),
            largest * payload,
            "the machines' caches",
        ),
        (std::env::temp_dir(), payload, "Garage's data"),
        (root.to_path_buf(), fixture.unwrap_or(0), "the fixture"),
    ];
    // Places on one file system share its free space.
    let mut by_device: Vec<(u64, PathBuf, u64, Vec<&str>)> = Vec::new();
    for (path, need, what) in places {
        let device = device_of(&path);
        match by_device.iter_mut().find(|d| d.0 == device) {
            Some(d) => {
                d.2 += need;
                d.3.push(what);
            }
            None => by_device.push((device, path, need, vec![what])),
        }
    }
    for (_, path, need, what) in by_device {
        let Some(free) = util::free_space(&path) else {
            continue;
        };
        if free < need + MARGIN {
            let fits = (free.saturating_sub(MARGIN) / (largest + 2)) / 1_000_000;
            bail!(
                "{} has {:.1} GB free; {} need {:.1} GB and {:.0} GB are kept free. Use a \
                 smaller pipeline (--size-mb {fits} fits with fleets up to {largest}), smaller \
                 fleets, or --work-dir on another disk",
                path.display(),
                free as f64 / 1e9,
                what.join(" and "),
                need as f64 / 1e9,
                MARGIN as f64 / 1e9
            );
        }
    }
    Ok(())
}

#[cfg(unix)]
fn device_of(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).map_or(0, |m| m.dev())
}

#[cfg(not(unix))]
fn device_of(_: &Path) -> u64 {
    0
}

/// `pipefetch lock` of the spec: what each machine pulls.
fn lock(pipefetch: &Path, hub: &ServerProcess, spec: &Path, work: &Path) -> Result<Payload> {
    let lockfile = work.join("sd-pipe.lock");
    let home = work.join("locker");
    let mut cmd = Command::new(pipefetch);
    clean_env(&mut cmd);
    cmd.args(["--progress", "none", "lock"])
        .arg(spec)
        .arg("--lockfile")
        .arg(&lockfile)
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_HOME", &home)
        .stdout(Stdio::null());
    util::run(&mut cmd)?;
    let _ = std::fs::remove_dir_all(&home);
    let lock: serde_json::Value = serde_json::from_slice(&std::fs::read(&lockfile)?)?;
    let files = lock["files"].as_array().context("a lock without files")?;
    let mut blobs = std::collections::BTreeMap::new();
    let mut bytes = 0;
    for f in files {
        let size = f["size"].as_u64().context("a file without size")?;
        bytes += size;
        blobs.insert(f["sha256"].as_str().unwrap_or_default().to_string(), size);
    }
    Ok(Payload {
        files: files.len(),
        bytes,
        blobs: blobs.len(),
        blob_bytes: blobs.values().sum(),
    })
}

/// Removes every variable that would point a tool elsewhere than the bench's servers, or give it
/// credentials of the developer's.
fn clean_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("HF_")
            || name.starts_with("HUGGING_FACE_")
            || name.starts_with("AWS_")
            || name.starts_with("RCLONE_")
            || name.starts_with("PIPEFETCH_")
        {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
}

/// The awscli of the anchor, or `None` (with a note) when its venv cannot be made.
fn awscli(work: &Path) -> Option<PathBuf> {
    match util::ensure_venv("bench-fleet-venv", &AWSCLI) {
        Ok(python) => {
            let aws = python.with_file_name("aws");
            // Path-style addressing, as for any self-hosted store; everything else its defaults.
            let config = work.join("aws-config");
            std::fs::write(&config, "[default]\ns3 =\n    addressing_style = path\n").ok()?;
            Some(aws)
        }
        Err(e) => {
            eprintln!("note: no venv for awscli ({e:#}); its rows are skipped");
            None
        }
    }
}

/// What every run needs.
struct Fleet<'a> {
    pipefetch: &'a Path,
    hub: &'a ServerProcess,
    garage: &'a Garage,
    spec: &'a Path,
    work: &'a Path,
}

impl Fleet<'_> {
    /// Pushes the pipeline to the mirror from a machine of its own; returns the time it took and
    /// what hub-server sent for it. The pusher's cache is removed after.
    fn push(&self, mirror: &str) -> Result<(f64, u64)> {
        control(self.hub, "POST", "reset", Some(&serde_json::json!({})))?;
        let home = self.work.join("pusher");
        let mut cmd = Command::new(self.pipefetch);
        clean_env(&mut cmd);
        cmd.args(["--progress", "none", "mirror", "push"])
            .arg(self.spec)
            .arg(mirror)
            .env("HF_ENDPOINT", &self.hub.url)
            .env("HF_HOME", &home)
            .envs(self.garage.aws_env())
            .stdout(Stdio::null());
        let started = Instant::now();
        util::run(&mut cmd)?;
        let secs = started.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(&home);
        Ok((secs, self.hub_sent()?))
    }

    /// Bytes hub-server sent since its log was last reset.
    fn hub_sent(&self) -> Result<u64> {
        let log = control(self.hub, "GET", "log", None)?;
        Ok(log["entries"]
            .as_array()
            .map(|entries| entries.iter().filter_map(|e| e["sent"].as_u64()).sum())
            .unwrap_or(0))
    }

    /// `pipefetch pull` on a machine whose `HF_HOME` is `home`: from `mirror` only, or from
    /// hub-server with no mirror.
    fn pull_command(&self, home: &Path, mirror: Option<&str>) -> Command {
        let mut cmd = Command::new(self.pipefetch);
        clean_env(&mut cmd);
        cmd.args(["--progress", "none", "pull"])
            .arg(self.spec)
            .env("HF_ENDPOINT", &self.hub.url)
            .env("HF_HOME", home);
        match mirror {
            Some(mirror) => {
                cmd.arg("--mirror-only")
                    .env("PIPEFETCH_MIRROR", mirror)
                    .envs(self.garage.aws_env());
            }
            None => {
                cmd.arg("--no-mirror");
            }
        }
        cmd
    }

    /// `aws s3 cp --recursive` of the mirror's blobs into `dir`.
    fn aws_command(&self, aws: &Path, dir: &Path) -> Command {
        let mut cmd = Command::new(aws);
        clean_env(&mut cmd);
        cmd.args([
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            "--no-progress",
        ])
        .arg(format!("s3://{}/{PREFIX}/blobs/", self.garage.bucket()))
        .arg(dir)
        .envs(self.garage.aws_env())
        .env("AWS_DEFAULT_REGION", self.garage.region())
        .env("AWS_CONFIG_FILE", self.work.join("aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            self.work.join("no-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    }

    /// `rclone copy` of the mirror's blobs into `dir`, the store given by rclone's variables.
    fn rclone_command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new("rclone");
        clean_env(&mut cmd);
        let key = self.garage.key();
        cmd.args(["copy", "--config", "/dev/null"])
            .arg(format!(":s3:{}/{PREFIX}/blobs", self.garage.bucket()))
            .arg(dir)
            .env("RCLONE_S3_PROVIDER", "Other")
            .env("RCLONE_S3_ENDPOINT", self.garage.endpoint())
            .env("RCLONE_S3_REGION", self.garage.region())
            .env("RCLONE_S3_ACCESS_KEY_ID", &key.id)
            .env("RCLONE_S3_SECRET_ACCESS_KEY", &key.secret)
            .env("RCLONE_S3_FORCE_PATH_STYLE", "true");
        cmd
    }

    /// Runs `n` machines at once, each `command(its own folder)`, and times them. Each must exit
    /// 0 and hold `bytes` bytes of files after.
    fn measure(
        &self,
        tool: &'static str,
        n: usize,
        bytes: u64,
        command: impl Fn(&Path) -> Command,
    ) -> Result<Cell> {
        let slug: String = tool
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dirs: Vec<PathBuf> = (0..n)
            .map(|i| self.work.join(format!("{slug}-{n}-{i}")))
            .collect();
        let mut commands = Vec::new();
        for dir in &dirs {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir)?;
            let mut cmd = command(dir);
            let log = std::fs::File::create(dir.with_extension("log"))?;
            cmd.stdout(log.try_clone()?).stderr(log);
            commands.push(cmd);
        }
        control(self.hub, "POST", "reset", Some(&serde_json::json!({})))?;
        // No machine pays for writing back the previous run's dirty pages.
        let _ = Command::new("sync").status();
        let started = Instant::now();
        let mut children = Vec::new();
        for cmd in &mut commands {
            children.push(
                cmd.spawn()
                    .with_context(|| format!("could not start {cmd:?}"))?,
            );
        }
        // One waiting thread per machine, so each one's end is seen when it comes.
        let ends: Vec<Result<f64>> = std::thread::scope(|scope| {
            let waits: Vec<_> = children
                .into_iter()
                .map(|mut child| {
                    scope.spawn(move || -> Result<f64> {
                        let status = child.wait()?;
                        let secs = started.elapsed().as_secs_f64();
                        if !status.success() {
                            bail!("exited with {status}");
                        }
                        Ok(secs)
                    })
                })
                .collect();
            waits
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
                })
                .collect()
        });
        let wall = started.elapsed().as_secs_f64();
        let hub_sent = self.hub_sent()?;
        let mut machines = Vec::new();
        for (dir, end) in dirs.iter().zip(ends) {
            let log = dir.with_extension("log");
            let secs = end
                .with_context(|| format!("{tool}: a machine failed; its log: {}", log.display()))?;
            let got = tree_bytes(dir);
            if got < bytes {
                bail!(
                    "{tool}: {} holds {got} bytes, not the {bytes} of the pipeline; its log: {}",
                    dir.display(),
                    log.display()
                );
            }
            machines.push(secs);
        }
        machines.sort_by(f64::total_cmp);
        eprintln!(
            "{tool}, {n} machine(s): {wall:.1} s, {:.0} MB/s in all, hub-server sent {:.0} MB",
            (n as u64 * bytes) as f64 / 1e6 / wall,
            hub_sent as f64 / 1e6
        );
        for dir in &dirs {
            let _ = std::fs::remove_dir_all(dir);
            let _ = std::fs::remove_file(dir.with_extension("log"));
        }
        Ok(Cell {
            tool,
            n,
            wall,
            machines,
            bytes,
            hub_sent,
        })
    }
}

/// Bytes of the regular files under `dir` (links not followed: a snapshot's links point into
/// the blobs, which are counted once).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn report(
    opts: &FleetOptions,
    payload: &Payload,
    push_secs: f64,
    push_sent: u64,
    cells: &[Cell],
    aws: bool,
    rclone: bool,
) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# pipefetch bench: a fleet{} ({}; loopback; release builds; {} cores)\n",
        if opts.quick { " (--quick)" } else { "" },
        util::now_utc(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        r,
        "`cargo xtask bench fleet --fleet {} --size-mb {}`. N machines, each a process with an \
         HF_HOME of its own, start together and pull one SD-shaped pipeline ({} files, {:.0} MB; \
         {} distinct blobs, {:.0} MB). The mirror is a single-node Garage {} on loopback, \
         filled once by `pipefetch mirror push` from hub-server ({push_secs:.1} s; hub-server \
         sent {:.2}× the payload). pipefetch verifies the sha256 of every byte and lays out the \
         HF cache; the anchors copy the bucket's blobs as they are, with their defaults{}{}. \
         Aggregate: N × payload ÷ wall (first start to last exit). One run per row.\n",
        opts.fleet
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        opts.size_mb,
        payload.files,
        payload.bytes as f64 / 1e6,
        payload.blobs,
        payload.blob_bytes as f64 / 1e6,
        pipefetch_test_garage::GARAGE_VERSION,
        push_sent as f64 / payload.bytes as f64,
        if aws {
            format!(
                " (awscli {})",
                AWSCLI.resolved.trim().trim_start_matches("awscli==")
            )
        } else {
            " (awscli: no venv)".to_string()
        },
        if rclone {
            String::new()
        } else {
            "; rclone not installed".to_string()
        },
    );
    let _ = writeln!(
        r,
        "| N | tool | wall s | aggregate MB/s | per machine: median s / slowest s | vs aws s3 cp | hub-server sent ÷ payload |\n\
         |---:|---|---:|---:|---:|---:|---:|"
    );
    for c in cells {
        let anchor = cells
            .iter()
            .find(|a| a.n == c.n && a.tool == "aws s3 cp --recursive");
        let median = c.machines[c.machines.len() / 2];
        let slowest = c.machines.last().copied().unwrap_or(c.wall);
        let hub = if c.tool.contains("mirror") {
            format!(
                "{:.2}× (+ {:.2}× once, the push)",
                c.hub_sent as f64 / payload.bytes as f64,
                push_sent as f64 / payload.bytes as f64
            )
        } else {
            format!("{:.2}×", c.hub_sent as f64 / payload.bytes as f64)
        };
        let _ = writeln!(
            r,
            "| {} | {} | {:.1} | {:.0} | {median:.1} / {slowest:.1} | {} | {hub} |",
            c.n,
            c.tool,
            c.wall,
            c.aggregate_mbs(),
            anchor.map_or("n/a".to_string(), |a| format!(
                "{:.2}×",
                c.aggregate_mbs() / a.aggregate_mbs()
            )),
        );
    }
    r
}
