//! `cargo xtask bench`: download throughput, side by side with the reference tools, in one run.
//!
//! Every tool downloads the same data from the same hub-server (release build) over loopback into
//! a fresh folder, three times (after `sync`, median reported); we report MB/s (decimal, like the targets in DEVELOPERS.md) and pipefetch's ratio
//! to each. Two workloads:
//! - `snapshot`: an SD-shaped repo of `--size-mb` MB (default 2150), all files.
//! - `single`: one 1 GiB file.
//!
//! Peers: curl (one stream per file, all files in parallel), huggingface_hub `snapshot_download`
//! (venv under target/), hf_transfer (16 ranges per file) and aria2c (`-x8 -j4`) when they can be
//! installed / are on PATH. pipefetch verifies sha256 (or git sha1) of every file; none of the
//! others verifies anything. Results are written to `target/bench/results.md` as well.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util::{self, ServerProcess};

const BENCH_REQUIREMENTS: util::Requirements<'static> = util::Requirements {
    resolved: "huggingface_hub==2.4.0\nhf_transfer==0.1.9\n",
    exact: &[],
};

struct Workload {
    name: &'static str,
    repo: &'static str,
    /// Repo paths and sizes.
    files: Vec<(String, u64)>,
}

impl Workload {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let mut size_mb = 2150u64;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size-mb" => {
                size_mb = it
                    .next()
                    .context("--size-mb needs a number")?
                    .parse()
                    .context("--size-mb needs a number")?
            }
            "--only" => only = it.next().cloned(),
            "--check" => {
                return check_bench();
            }
            other => {
                bail!("unknown bench option `{other}` (try --size-mb N, --only snapshot|single)")
            }
        }
    }
    let bins = util::build_bins(true)?;
    let base = util::target_dir().join("bench");
    let root = base.join("hub-root");
    let workloads = ensure_fixtures(&root, size_mb)?;
    let python = util::ensure_venv("bench-venv", &BENCH_REQUIREMENTS).ok();
    if python.is_none() {
        eprintln!("note: no Python venv; huggingface_hub and hf_transfer are skipped");
    }
    let server = ServerProcess::start(&bins.hub_server, &root, &[])?;
    let out_dir = base.join("out");

    let mut report = String::new();
    let _ = writeln!(
        report,
        "# pipefetch bench ({}; loopback; hub-server release)\n",
        util::now_utc()
    );
    for w in &workloads {
        if only.as_deref().is_some_and(|o| o != w.name) {
            continue;
        }
        let mb = w.bytes() as f64 / 1e6;
        let _ = writeln!(
            report,
            "## {} — {} files, {:.0} MB\n\n| tool | seconds | MB/s | pipefetch is × faster | verifies |\n|---|---:|---:|---:|---|",
            w.name,
            w.files.len(),
            mb
        );
        let mut results: Vec<(String, f64, &str)> = Vec::new();
        let ctx = Ctx {
            server: &server,
            out: &out_dir,
            workload: w,
        };
        // hub-server hashes a repo on its first request (to derive the commit and etags); pay that
        // before any clock starts, so no tool is charged for it.
        util::run(
            Command::new("curl")
                .args(["-sS", "--fail", "-o", "/dev/null"])
                .arg(format!("{}/api/models/{}", server.url, w.repo)),
        )?;
        let pf = measure(&ctx, "pipefetch-cache", |dir| {
            pipefetch(&ctx, &bins.pipefetch, dir)
        })?;
        check_bytes(&ctx, &out_dir.join("pipefetch-cache"), true)?;
        results.push(("pipefetch".into(), pf, "sha256 / git sha1"));
        if let Ok(t) = measure(&ctx, "curl", |dir| curl(&ctx, dir)) {
            results.push(("curl (one stream per file)".into(), t, "no"));
        }
        if which("aria2c")
            && let Ok(t) = measure(&ctx, "aria2", |dir| aria2(&ctx, dir))
        {
            results.push(("aria2c -x8 -j4".into(), t, "no"));
        }
        if let Some(py) = &python {
            match measure(&ctx, "hf-cache", |dir| hf_snapshot(&ctx, py, dir)) {
                Ok(t) => results.push(("huggingface_hub snapshot_download".into(), t, "no")),
                Err(e) => eprintln!("huggingface_hub failed: {e:#}"),
            }
            match measure(&ctx, "hf-transfer", |dir| hf_transfer(&ctx, py, dir)) {
                Ok(t) => results.push(("hf_transfer (16 ranges/file)".into(), t, "no")),
                Err(e) => eprintln!("hf_transfer failed: {e:#}"),
            }
        }
        for (tool, secs, verifies) in &results {
            let _ = writeln!(
                report,
                "| {tool} | {secs:.2} | {:.0} | {:.2} | {verifies} |",
                mb / secs,
                secs / pf
            );
        }
        let _ = writeln!(report);
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    println!("{report}");
    std::fs::create_dir_all(&base)?;
    std::fs::write(base.join("results.md"), &report)?;
    eprintln!("written to {}", base.join("results.md").display());
    Ok(())
}

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

/// Runs a tool `RUNS` times, each into a fresh empty folder, after `sync` (so that no run pays for
/// writing back the previous run's dirty pages), and returns the median wall time.
fn measure(ctx: &Ctx<'_>, name: &str, f: impl Fn(&Path) -> Result<()>) -> Result<f64> {
    const RUNS: usize = 3;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let dir = ctx.fresh(name)?;
        let _ = Command::new("sync").status();
        let started = Instant::now();
        f(&dir)?;
        times.push(started.elapsed().as_secs_f64());
    }
    eprintln!("{name}: {times:.2?}");
    times.sort_by(f64::total_cmp);
    Ok(times[RUNS / 2])
}

fn pipefetch(ctx: &Ctx<'_>, bin: &Path, cache: &Path) -> Result<()> {
    let w = ctx.workload;
    let mut cmd = Command::new(bin);
    if w.name == "single" {
        cmd.args(["download", w.repo, &w.files[0].0]);
    } else {
        cmd.args(["snapshot", w.repo]);
    }
    cmd.args(["--progress", "none"])
        .env("HF_ENDPOINT", &ctx.server.url)
        .env("HF_HUB_CACHE", cache)
        .stdout(std::process::Stdio::null());
    util::run(&mut cmd)
}

fn curl(ctx: &Ctx<'_>, dir: &Path) -> Result<()> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--no-progress-meter",
        "-L",
        "--fail",
        "-Z",
        "--parallel-max",
        "64",
    ]);
    for (i, (path, _)) in ctx.workload.files.iter().enumerate() {
        cmd.arg("-o")
            .arg(dir.join(format!("f{i}")))
            .arg(ctx.url(path));
    }
    util::run(&mut cmd)
}

fn aria2(ctx: &Ctx<'_>, dir: &Path) -> Result<()> {
    let mut list = String::new();
    for (i, (path, _)) in ctx.workload.files.iter().enumerate() {
        let _ = writeln!(list, "{}\n  out=f{i}", ctx.url(path));
    }
    let input = dir.join("input.txt");
    std::fs::write(&input, list)?;
    util::run(
        Command::new("aria2c")
            .args(["-q", "-x8", "-j4", "-s8", "--file-allocation=none", "-d"])
            .arg(dir)
            .arg("-i")
            .arg(&input),
    )
}

fn hf_snapshot(ctx: &Ctx<'_>, python: &Path, cache: &Path) -> Result<()> {
    let w = ctx.workload;
    let code = if w.name == "single" {
        format!(
            "from huggingface_hub import hf_hub_download; hf_hub_download('{}', '{}')",
            w.repo, w.files[0].0
        )
    } else {
        format!(
            "from huggingface_hub import snapshot_download; snapshot_download('{}')",
            w.repo
        )
    };
    util::run(
        Command::new(python)
            .args(["-c", &code])
            .env("HF_ENDPOINT", &ctx.server.url)
            .env("HF_HUB_CACHE", cache)
            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            .env("HF_HUB_DISABLE_XET", "1"),
    )
}

fn hf_transfer(ctx: &Ctx<'_>, python: &Path, dir: &Path) -> Result<()> {
    // hf_transfer downloads one file at a time with parallel ranges (as huggingface_hub ≤ 0.36 used
    // it); we run the files one after another, like that integration did.
    let mut code = String::from("import hf_transfer\n");
    for (i, (path, _)) in ctx.workload.files.iter().enumerate() {
        let _ = writeln!(
            code,
            "hf_transfer.download({:?}, {:?}, max_files=16, chunk_size=10*1024*1024)",
            ctx.url(path),
            dir.join(format!("f{i}")).display().to_string()
        );
    }
    util::run(Command::new(python).args(["-c", &code]))
}

/// Checks that pipefetch's snapshot holds every file with the right size.
fn check_bytes(ctx: &Ctx<'_>, cache: &Path, _verify: bool) -> Result<()> {
    let folder = format!("models--{}", ctx.workload.repo.replace('/', "--"));
    let snaps = cache.join(folder).join("snapshots");
    let snap = std::fs::read_dir(&snaps)
        .with_context(|| format!("no snapshot in {}", snaps.display()))?
        .next()
        .context("no snapshot")??
        .path();
    for (path, size) in &ctx.workload.files {
        let len = std::fs::metadata(snap.join(path))
            .with_context(|| format!("pipefetch did not produce {path}"))?
            .len();
        if len != *size {
            bail!("pipefetch produced {path} with {len} bytes, expected {size}");
        }
    }
    Ok(())
}

fn ensure_fixtures(root: &Path, size_mb: u64) -> Result<Vec<Workload>> {
    let stamp = root.join(format!(".bench-fixture-v1-{size_mb}"));
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(root);
        eprintln!(
            "writing bench fixtures ({size_mb} MB + 1 GiB) under {}",
            root.display()
        );
        pipefetch_hub_server::fixture::sd_like(root, "bench/sd-like", size_mb * 1_000_000)?;
        pipefetch_hub_server::fixture::RepoBuilder::new(root, "models", "bench/single")
            .random_file("model.safetensors", 42, 1 << 30)
            .build()?;
        std::fs::write(&stamp, b"")?;
    }
    Ok(vec![
        Workload {
            name: "snapshot",
            repo: "bench/sd-like",
            files: list_files(&root.join("models/bench/sd-like"))?,
        },
        Workload {
            name: "single",
            repo: "bench/single",
            files: list_files(&root.join("models/bench/single"))?,
        },
    ])
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

fn which(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `cargo xtask bench --check`: the time of `pipefetch check` (and `list`) on a cache holding 50
/// pulled pipelines, next to huggingface_hub's `scan_cache_dir` on the same cache.
fn check_bench() -> Result<()> {
    const N: usize = 50;
    let bins = util::build_bins(true)?;
    let base = util::target_dir().join("bench-check");
    let root = base.join("hub-root");
    let stamp = root.join(".check-fixture-v1");
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(&root);
        for i in 0..N {
            pipefetch_hub_server::fixture::sd_like(
                &root,
                &format!("bench/pipe-{i:02}"),
                2_000_000,
            )?;
        }
        std::fs::write(&stamp, b"")?;
    }
    let home = base.join("hf-home");
    let _ = std::fs::remove_dir_all(&home);
    let server = ServerProcess::start(&bins.hub_server, &root, &[])?;
    let specs = base.join("specs");
    std::fs::create_dir_all(&specs)?;
    let run = |args: &[&str]| -> Result<std::time::Duration> {
        let started = Instant::now();
        let out = Command::new(&bins.pipefetch)
            .args(args)
            .env("HF_ENDPOINT", &server.url)
            .env("HF_HOME", &home)
            .env_remove("HF_HUB_CACHE")
            .output()?;
        if !out.status.success() {
            bail!(
                "pipefetch {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(started.elapsed())
    };
    let mut paths = Vec::new();
    for i in 0..N {
        let spec = specs.join(format!("pipe-{i:02}.yaml"));
        std::fs::write(
            &spec,
            format!("repo_id: bench/pipe-{i:02}\nvariant: fp16\n"),
        )?;
        let spec = spec.display().to_string();
        run(&["pull", &spec, "--progress", "none"])?;
        paths.push(spec);
    }
    // Each `check` is a fresh process: plan from the cache, stat every file.
    let mut total = std::time::Duration::ZERO;
    let mut worst = std::time::Duration::ZERO;
    for spec in &paths {
        let t = run(&["check", spec])?;
        total += t;
        worst = worst.max(t);
    }
    let list = run(&["list"])?;
    // `scan` lists the {N} repos like scan_cache_dir; a whole process each time, median of 21.
    let mut scans = (0..21)
        .map(|_| run(&["scan"]))
        .collect::<Result<Vec<_>>>()?;
    scans.sort();
    let mut report = format!(
        "# pipefetch check on a cache of {N} pipelines ({})\n\n| what | time |\n|---|---:|\n| `pipefetch check SPEC` (one process each), mean | {:.1} ms |\n| ... worst | {:.1} ms |\n| all {N} checks | {:.0} ms |\n| `pipefetch list` ({N} pipelines + {N} repos) | {:.1} ms |\n| `pipefetch scan` ({N} repos; whole process, median of 21) | {:.1} ms |\n",
        util::now_utc(),
        total.as_secs_f64() * 1000.0 / N as f64,
        worst.as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0,
        list.as_secs_f64() * 1000.0,
        scans[scans.len() / 2].as_secs_f64() * 1000.0,
    );
    if let Ok(python) = util::ensure_venv("bench-venv", &BENCH_REQUIREMENTS) {
        let code = "import time, sys\nfrom huggingface_hub import scan_cache_dir\nscan_cache_dir(sys.argv[1])\nts=[]\nfor _ in range(11):\n    t=time.perf_counter(); scan_cache_dir(sys.argv[1]); ts.append((time.perf_counter()-t)*1000)\nts.sort(); print(f'{ts[5]:.1f}')";
        let out = Command::new(python)
            .args(["-c", code])
            .arg(home.join("hub"))
            .output()?;
        let ms = String::from_utf8_lossy(&out.stdout).trim().to_string();
        report.push_str(&format!(
            "| huggingface_hub `scan_cache_dir` on the same cache (in-process, warm, median of 11) | {ms} ms |\n"
        ));
    }
    println!("{report}");
    std::fs::write(base.join("results.md"), &report)?;
    Ok(())
}
