//! The `check` mode: `pipefetch check` and `list` on a cache of 50 pulled pipelines, next to
//! huggingface_hub's `scan_cache_dir` on the same cache.

use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::util::{self, ServerProcess};

/// `cargo xtask bench --check`: the time of `pipefetch check` (and `list`) on a cache holding 50
/// pulled pipelines, next to huggingface_hub's `scan_cache_dir` on the same cache.
pub(super) fn run() -> Result<()> {
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
    if let Ok(python) = util::ensure_venv("bench-venv", &super::BENCH_REQUIREMENTS) {
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
