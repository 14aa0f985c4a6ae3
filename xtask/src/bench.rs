//! `cargo xtask bench`: download throughput, side by side with the reference tools, in one run.
//!
//! Every tool downloads the same data from the same hub-server (release build) over loopback into
//! a fresh folder, `--runs` times (default three, after `sync`, median reported); we report MB/s
//! (decimal) and pipefetch's ratio to each. The modes:
//!
//! - `plain` (the default): an unthrottled link, the "no regression" baseline. Workloads:
//!   `snapshot`, an SD-shaped repo of `--size-mb` MB (default 2150), all files; `single`, one
//!   1 GiB file. Peers: curl (one stream per file, all files at once), huggingface_hub
//!   `snapshot_download`, hf_transfer (16 ranges per file), aria2c (`-x8 -j4`).
//! - `link`: every CDN connection capped at `--rate` (default 40 MB/s) with `--latency-ms`
//!   (default 20) added, what a real CDN edge gives (issue 7). pipefetch's default beside fixed
//!   budgets (`--connections 8, 16, 32, 64`), huggingface_hub, hf_transfer (16 and 100 ranges
//!   per file: 100 is what huggingface_hub gave it), aria2c. For the default, the connection
//!   budget it settled on, read from its JSON progress events.
//! - `faults`: a `--fault-mb` (default 644) pull through a CDN that cuts 25 % of file bodies,
//!   stalls 10 % for 40 s and trickles 5 % at 1.3 kB/s (seeded), for several seeds: pipefetch
//!   (half its attempts killed with SIGKILL at a random moment, then rerun until done) and
//!   huggingface_hub (10-s read timeout, rerun until done). Wall time, longest attempt, bytes
//!   moved ÷ payload from the server's log, and whether the final bytes are exact.
//! - `check`: `pipefetch check` on a cache of 50 pipelines beside huggingface_hub's scan.
//! - `fleet`: N machines pulling one pipeline at once from a mirror on Garage, from hub-server, and
//!   with `aws s3 cp` / `rclone` from the same bucket (`bench/fleet.rs`).
//!
//! `--quick` makes every mode small enough for a few minutes. pipefetch verifies sha256 (or git
//! sha1) of every file; none of the others verifies anything. Results are written to
//! `target/bench/results.md` as well (the `check` mode to `target/bench-check/results.md`).

mod check;
mod faults;
mod fleet;
mod throughput;
mod tools;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{self, ServerProcess};

const BENCH_REQUIREMENTS: util::Requirements<'static> = util::Requirements {
    resolved: "huggingface_hub==2.4.0\nhf_transfer==0.1.9\n",
    exact: &[],
};

pub const USAGE: &str = "usage: cargo xtask bench [plain|link|faults|check|fleet] [options]

  plain (default)       unthrottled loopback: pipefetch vs curl, aria2c, huggingface_hub, hf_transfer
  link                  each CDN connection capped (--rate, --latency-ms): pipefetch default vs
                        --connections 8/16/32/64 vs huggingface_hub, hf_transfer 16/100 ranges, aria2c
  faults                a pull through a CDN with seeded cuts, stalls and trickles; SIGKILLs; reruns
  check                 `pipefetch check` on a cache of 50 pipelines vs huggingface_hub's scan
  fleet [--fleet 1,4,8] N machines pulling one pipeline at once: from a mirror on Garage, from
                        hub-server, and with aws s3 cp / rclone (`cargo xtask bench fleet --help`)

  --quick               small sizes, one run, two seeds: a few minutes
  --size-mb N           plain/link: size of the SD-shaped repo (default 2150; quick 300)
  --only snapshot|single  plain/link: one workload (quick: snapshot only)
  --runs N              plain/link: runs per tool, median reported (default 3; quick 1)
  --rate R              link: per-connection cap (default 40M); faults: also cap (default none)
  --latency-ms N        link: added latency (default 20); faults: also (default 0)
  --fault-mb N          faults: payload size (default 644; quick 100)
  --seeds 1,2,3         faults: seeds (default 1,2,3; quick 1,2)
  --faults RULES        faults: the mix (default cut=0.25,stall=0.10:40s,trickle=0.05:1300)
  --attempt-timeout S   faults: an attempt running this long is killed and counted (default 300; quick 120)
  --max-attempts N      faults: give up on a tool and seed after N attempts (default 8)
  --kill-within S       faults: a random SIGKILL falls within this many seconds (default 8; quick 3)";

/// What the command line asked for.
#[derive(Debug, Clone)]
struct Options {
    mode: String,
    quick: bool,
    size_mb: u64,
    only: Option<String>,
    runs: usize,
    rate: Option<String>,
    latency_ms: Option<u64>,
    fault_mb: u64,
    seeds: Vec<u64>,
    faults: String,
    attempt_timeout: Duration,
    max_attempts: usize,
    kill_within: Duration,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Options {
            mode: "plain".into(),
            quick,
            size_mb: if quick { 300 } else { 2150 },
            only: quick.then(|| "snapshot".to_string()),
            runs: if quick { 1 } else { 3 },
            rate: None,
            latency_ms: None,
            fault_mb: if quick { 100 } else { 644 },
            seeds: if quick { vec![1, 2] } else { vec![1, 2, 3] },
            faults: "cut=0.25,stall=0.10:40s,trickle=0.05:1300".into(),
            attempt_timeout: Duration::from_secs(if quick { 120 } else { 300 }),
            max_attempts: 8,
            kill_within: Duration::from_secs(if quick { 3 } else { 8 }),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
            };
            let number = |name: &str, v: String| -> Result<u64> {
                v.parse()
                    .with_context(|| format!("{name} needs a number, not `{v}`"))
            };
            match a.as_str() {
                "plain" | "link" | "faults" | "check" => o.mode = a.clone(),
                "--check" => o.mode = "check".into(),
                "--quick" => {}
                "--size-mb" => o.size_mb = number(a, value(a)?)?,
                "--only" => o.only = Some(value(a)?),
                "--runs" => o.runs = number(a, value(a)?)?.max(1) as usize,
                "--rate" => o.rate = Some(value(a)?),
                "--latency-ms" => o.latency_ms = Some(number(a, value(a)?)?),
                "--fault-mb" => o.fault_mb = number(a, value(a)?)?,
                "--seeds" => {
                    o.seeds = value(a)?
                        .split(',')
                        .map(|s| number("--seeds", s.trim().to_string()))
                        .collect::<Result<_>>()?
                }
                "--faults" => o.faults = value(a)?,
                "--attempt-timeout" => {
                    o.attempt_timeout = Duration::from_secs(number(a, value(a)?)?)
                }
                "--max-attempts" => o.max_attempts = number(a, value(a)?)?.max(1) as usize,
                "--kill-within" => o.kill_within = Duration::from_secs(number(a, value(a)?)?),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown bench option `{other}`\n\n{USAGE}"),
            }
        }
        if let Some(only) = &o.only
            && only != "snapshot"
            && only != "single"
        {
            bail!("--only takes snapshot or single, not `{only}`");
        }
        Ok(o)
    }
}

pub fn run(args: &[String]) -> Result<()> {
    // The fleet (issue 9) has options of its own.
    if args.iter().any(|a| a == "fleet" || a == "--fleet") {
        return fleet::run(args);
    }
    let opts = Options::parse(args)?;
    match opts.mode.as_str() {
        "check" => check::run(),
        "faults" => faults::run(&opts),
        _ => throughput::run(&opts),
    }
}

/// One thing to download: a repo, or one file of it.
struct Workload {
    name: &'static str,
    repo: String,
    /// Repo paths and sizes.
    files: Vec<(String, u64)>,
}

impl Workload {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }
}

/// What every tool run needs: the server, where to write, what to fetch.
struct Ctx<'a> {
    server: &'a ServerProcess,
    out: &'a Path,
    workload: &'a Workload,
}

impl Ctx<'_> {
    fn fresh(&self, name: &str) -> Result<PathBuf> {
        let dir = self.out.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn url(&self, path: &str) -> String {
        let encoded: Vec<String> = path.split('/').map(encode_segment).collect();
        format!(
            "{}/{}/resolve/main/{}",
            self.server.url,
            self.workload.repo,
            encoded.join("/")
        )
    }
}

/// Runs a tool `runs` times, each into a fresh empty folder, after `sync` (so that no run pays
/// for writing back the previous run's dirty pages). Returns the median wall time and what the
/// median run returned.
fn measure<T>(
    ctx: &Ctx<'_>,
    runs: usize,
    name: &str,
    f: impl Fn(&Path) -> Result<T>,
) -> Result<(f64, T)> {
    let mut results = Vec::with_capacity(runs);
    for _ in 0..runs {
        let dir = ctx.fresh(name)?;
        let _ = Command::new("sync").status();
        let started = Instant::now();
        let extra = f(&dir)?;
        results.push((started.elapsed().as_secs_f64(), extra));
    }
    let times: Vec<f64> = results.iter().map(|r| r.0).collect();
    eprintln!("{name}: {times:.2?}");
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let middle = results.len() / 2;
    Ok(results.swap_remove(middle))
}

/// Writes the SD-shaped repo of `size_mb` MB (and, if asked, the 1 GiB single file) once, under
/// `root`, and returns the workloads. Each repo has its own stamp, so sizes can sit side by side
/// and switching between `--quick` and a full run rewrites nothing.
fn ensure_fixtures(root: &Path, size_mb: u64, single: bool) -> Result<Vec<Workload>> {
    // The first layout had one repo per root and one stamp for all; drop it rather than keep
    // 3 GB nobody reads.
    let old_layout = std::fs::read_dir(root).ok().is_some_and(|mut d| {
        d.any(|e| {
            e.is_ok_and(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".bench-fixture-v1-")
            })
        })
    });
    if old_layout {
        std::fs::remove_dir_all(root)?;
    }
    std::fs::create_dir_all(root)?;
    let sd = format!("bench/sd-like-{size_mb}");
    let stamp = root.join(format!(".stamp-v2-sd-like-{size_mb}"));
    if !stamp.exists() {
        eprintln!(
            "writing the {size_mb} MB SD-shaped fixture under {}",
            root.display()
        );
        let _ = std::fs::remove_dir_all(root.join("models").join(&sd));
        pipefetch_hub_server::fixture::sd_like(root, &sd, size_mb * 1_000_000)?;
        std::fs::write(&stamp, b"")?;
    }
    let mut workloads = vec![Workload {
        name: "snapshot",
        files: list_files(&root.join("models").join(&sd))?,
        repo: sd,
    }];
    if single {
        let stamp = root.join(".stamp-v2-single");
        if !stamp.exists() {
            eprintln!(
                "writing the 1 GiB single-file fixture under {}",
                root.display()
            );
            let _ = std::fs::remove_dir_all(root.join("models/bench/single"));
            pipefetch_hub_server::fixture::RepoBuilder::new(root, "models", "bench/single")
                .random_file("model.safetensors", 42, 1 << 30)
                .build()?;
            std::fs::write(&stamp, b"")?;
        }
        workloads.push(Workload {
            name: "single",
            repo: "bench/single".into(),
            files: list_files(&root.join("models/bench/single"))?,
        });
    }
    Ok(workloads)
}

/// Where the bench keeps its fixtures and writes its results.
fn bench_dir() -> PathBuf {
    util::target_dir().join("bench")
}

/// hub-server hashes a repo on its first request (to derive the commit and etags); pay that
/// before any clock starts, so no tool is charged for it.
fn warm(server: &ServerProcess, repo: &str) -> Result<()> {
    util::run(
        Command::new("curl")
            .args(["-sS", "--fail", "-o", "/dev/null"])
            .arg(format!("{}/api/models/{repo}", server.url)),
    )
}

/// The bench venv's python, or `None` (with a note) when it cannot be made.
fn python() -> Option<PathBuf> {
    match util::ensure_venv("bench-venv", &BENCH_REQUIREMENTS) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("note: no Python venv ({e:#}); huggingface_hub and hf_transfer are skipped");
            None
        }
    }
}

/// Sends a request to one of hub-server's control routes and returns the JSON answer.
fn control(
    server: &ServerProcess,
    method: &str,
    route: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail-with-body", "-X", method])
        .arg(format!("{}/_control/{route}", server.url));
    if let Some(body) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary"])
            .arg(body.to_string());
    }
    let out = cmd.output().context("running curl")?;
    if !out.status.success() {
        bail!(
            "{method} /_control/{route} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{method} /_control/{route} did not answer JSON"))
}

/// Writes the report to stdout and `target/bench/results.md`.
fn write_report(report: &str) -> Result<()> {
    println!("{report}");
    let base = bench_dir();
    std::fs::create_dir_all(&base)?;
    std::fs::write(base.join("results.md"), report)?;
    eprintln!("written to {}", base.join("results.md").display());
    Ok(())
}

fn report_header(what: &str, opts: &Options) -> String {
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# pipefetch bench: {what}{} ({}; loopback; hub-server release; {} cores)\n",
        if opts.quick { " (--quick)" } else { "" },
        util::now_utc(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    report
}

fn list_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(path);
            } else if entry.file_name() != ".gated" {
                let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                out.push((rel, meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The snapshot folder a tool left in an HF cache for `repo`.
fn snapshot_dir(cache: &Path, repo: &str) -> Result<PathBuf> {
    let folder = format!("models--{}", repo.replace('/', "--"));
    let snaps = cache.join(folder).join("snapshots");
    Ok(std::fs::read_dir(&snaps)
        .with_context(|| format!("no snapshot in {}", snaps.display()))?
        .next()
        .context("no snapshot")??
        .path())
}

fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
