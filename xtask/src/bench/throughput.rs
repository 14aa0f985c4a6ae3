//! The `plain` and `link` modes: every tool pulls the same workload, timed, as ratios.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, bail};

use super::tools::{self, Pipefetch, PipefetchRun};
use super::{Ctx, Options, Workload, measure};
use crate::util::{self, ServerProcess};

/// One row of a table.
struct Row {
    tool: String,
    secs: f64,
    /// pipefetch only: the budget column and peak RSS.
    budget: String,
    rss: String,
    verifies: &'static str,
}

pub(super) fn run(opts: &Options) -> Result<()> {
    let link = opts.mode == "link";
    let bins = util::build_bins(true)?;
    let base = super::bench_dir();
    let root = base.join("hub-root");
    let single = opts.only.as_deref() != Some("snapshot");
    let workloads = super::ensure_fixtures(&root, opts.size_mb, single)?;
    let python = super::python();
    let rate = opts.rate.clone().unwrap_or_else(|| "40M".into());
    let latency = opts.latency_ms.unwrap_or(20);
    let mut extra: Vec<String> = Vec::new();
    if link {
        extra = vec![
            "--cdn-rate".into(),
            rate.clone(),
            "--cdn-latency-ms".into(),
            latency.to_string(),
        ];
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&bins.hub_server, &root, &extra)?;
    let out_dir = base.join("out");
    let mut report = super::report_header(
        if link {
            "a real-looking link"
        } else {
            "unthrottled"
        },
        opts,
    );
    if link {
        let _ = writeln!(
            report,
            "Every CDN connection capped at {rate}B/s with {latency} ms added latency \
             (hub-server `--cdn-rate {rate} --cdn-latency-ms {latency}`); {} run(s) per tool, \
             median.\n",
            opts.runs
        );
    }
    for w in &workloads {
        if opts.only.as_deref().is_some_and(|o| o != w.name) {
            continue;
        }
        let ctx = Ctx {
            server: &server,
            out: &out_dir,
            workload: w,
        };
        super::warm(&server, &w.repo)?;
        let rows = if link {
            link_rows(&ctx, opts, &bins.pipefetch, python.as_deref())?
        } else {
            plain_rows(&ctx, opts, &bins.pipefetch, python.as_deref())?
        };
        table(&mut report, w, &rows, link);
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    super::write_report(&report)
}

fn pipefetch_row(
    ctx: &Ctx<'_>,
    opts: &Options,
    name: &str,
    tool: String,
    pf: Pipefetch<'_>,
) -> Result<Row> {
    let (secs, run): (f64, PipefetchRun) = measure(ctx, opts.runs, name, |dir| pf.run(ctx, dir))?;
    check_sizes(ctx, &ctx.out.join(name))?;
    let budget = match (&run.budget, pf.args.is_empty()) {
        (Some((last, max)), _) => format!("{last} (max {max})"),
        (None, true) => "n/a".into(),
        (None, false) => format!("{} (fixed)", pf.args[1]),
    };
    Ok(Row {
        tool,
        secs,
        budget,
        rss: run
            .max_rss_kib
            .map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
        verifies: "sha256 / git sha1",
    })
}

fn peer(tool: &str, secs: f64) -> Row {
    Row {
        tool: tool.into(),
        secs,
        budget: String::new(),
        rss: String::new(),
        verifies: "no",
    }
}

fn plain_rows(
    ctx: &Ctx<'_>,
    opts: &Options,
    bin: &Path,
    python: Option<&Path>,
) -> Result<Vec<Row>> {
    let pf = Pipefetch {
        bin,
        args: vec![],
        events: false,
    };
    let mut rows = vec![pipefetch_row(
        ctx,
        opts,
        "pipefetch-cache",
        "pipefetch".into(),
        pf,
    )?];
    rows[0].budget.clear();
    if let Ok((t, ())) = measure(ctx, opts.runs, "curl", |dir| tools::curl(ctx, dir)) {
        rows.push(peer("curl (one stream per file)", t));
    }
    peers(ctx, opts, python, &[16], &mut rows);
    Ok(rows)
}

fn link_rows(ctx: &Ctx<'_>, opts: &Options, bin: &Path, python: Option<&Path>) -> Result<Vec<Row>> {
    let mut rows = vec![pipefetch_row(
        ctx,
        opts,
        "pipefetch-default",
        "pipefetch (default)".into(),
        Pipefetch {
            bin,
            args: vec![],
            events: true,
        },
    )?];
    for n in [8, 16, 32, 64] {
        rows.push(pipefetch_row(
            ctx,
            opts,
            &format!("pipefetch-{n}"),
            format!("pipefetch --connections {n}"),
            Pipefetch {
                bin,
                args: vec!["--connections".into(), n.to_string()],
                events: false,
            },
        )?);
    }
    peers(ctx, opts, python, &[16, 100], &mut rows);
    Ok(rows)
}

/// aria2c, huggingface_hub and hf_transfer with each of `ranges`, when they are there.
fn peers(
    ctx: &Ctx<'_>,
    opts: &Options,
    python: Option<&Path>,
    ranges: &[u32],
    rows: &mut Vec<Row>,
) {
    if tools::which("aria2c") {
        match measure(ctx, opts.runs, "aria2", |dir| tools::aria2(ctx, dir)) {
            Ok((t, ())) => rows.push(peer("aria2c -x8 -j4", t)),
            Err(e) => eprintln!("aria2c failed: {e:#}"),
        }
    } else {
        eprintln!("note: aria2c is not installed (apt-get install aria2); skipped");
    }
    let Some(py) = python else { return };
    match measure(ctx, opts.runs, "hf-cache", |dir| {
        tools::hf_snapshot(ctx, py, dir)
    }) {
        Ok((t, ())) => rows.push(peer("huggingface_hub snapshot_download", t)),
        Err(e) => eprintln!("huggingface_hub failed: {e:#}"),
    }
    for &n in ranges {
        match measure(ctx, opts.runs, &format!("hf-transfer-{n}"), |dir| {
            tools::hf_transfer(ctx, py, dir, n)
        }) {
            Ok((t, ())) => rows.push(peer(&format!("hf_transfer ({n} ranges/file)"), t)),
            Err(e) => eprintln!("hf_transfer ({n}) failed: {e:#}"),
        }
    }
}

fn table(report: &mut String, w: &Workload, rows: &[Row], link: bool) {
    let mb = w.bytes() as f64 / 1e6;
    let reference = rows[0].secs;
    let _ = writeln!(
        report,
        "## {} — {} files, {mb:.0} MB\n",
        w.name,
        w.files.len()
    );
    if link {
        let _ = writeln!(
            report,
            "| tool | seconds | MB/s | pipefetch (default) is × faster | budget | peak RSS | verifies |\n\
             |---|---:|---:|---:|---|---:|---|"
        );
    } else {
        let _ = writeln!(
            report,
            "| tool | seconds | MB/s | pipefetch is × faster | verifies |\n|---|---:|---:|---:|---|"
        );
    }
    for r in rows {
        let ratio = r.secs / reference;
        if link {
            let _ = writeln!(
                report,
                "| {} | {:.2} | {:.0} | {ratio:.2} | {} | {} | {} |",
                r.tool,
                r.secs,
                mb / r.secs,
                r.budget,
                r.rss,
                r.verifies
            );
        } else {
            let _ = writeln!(
                report,
                "| {} | {:.2} | {:.0} | {ratio:.2} | {} |",
                r.tool,
                r.secs,
                mb / r.secs,
                r.verifies
            );
        }
    }
    if link {
        // The targets of issue 7, as ratios within this run.
        let best_fixed = rows
            .iter()
            .filter(|r| r.tool.starts_with("pipefetch --connections"))
            .min_by(|a, b| a.secs.total_cmp(&b.secs));
        if let Some(best) = best_fixed {
            let _ = writeln!(
                report,
                "\npipefetch (default) ÷ its best fixed budget ({}): {:.2}× the speed (target ≥ 0.9)",
                best.tool,
                best.secs / reference
            );
        }
        if let Some(hft) = rows.iter().find(|r| r.tool.starts_with("hf_transfer (100")) {
            let _ = writeln!(
                report,
                "pipefetch (default) ÷ hf_transfer with 100 ranges/file: {:.2}× the speed (target ≥ 1.2)",
                hft.secs / reference
            );
        }
    }
    let _ = writeln!(report);
}

/// Checks that pipefetch's snapshot holds every file with the right size (the bytes themselves
/// pipefetch verified against their hashes).
fn check_sizes(ctx: &Ctx<'_>, cache: &Path) -> Result<()> {
    let snap = super::snapshot_dir(cache, &ctx.workload.repo)?;
    for (path, size) in &ctx.workload.files {
        let len = std::fs::metadata(snap.join(path))
            .map_err(|e| anyhow::anyhow!("pipefetch did not produce {path}: {e}"))?
            .len();
        if len != *size {
            bail!("pipefetch produced {path} with {len} bytes, expected {size}");
        }
    }
    Ok(())
}
