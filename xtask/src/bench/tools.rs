//! How each tool is run: pipefetch and the peers, one function each.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::Ctx;
use crate::util;

/// What a pipefetch run reports besides its time.
#[derive(Debug, Default, Clone)]
pub(super) struct PipefetchRun {
    /// The connection budget from its JSON progress events: the last value and the largest.
    pub budget: Option<(u64, u64)>,
    /// Peak resident memory in KiB, when `/usr/bin/time` is there to measure it.
    pub max_rss_kib: Option<u64>,
}

/// How pipefetch is run.
pub(super) struct Pipefetch<'a> {
    pub bin: &'a Path,
    /// Extra arguments (`--connections N`).
    pub args: Vec<String>,
    /// Write JSON progress events to a file and read the budget from them.
    pub events: bool,
}

impl Pipefetch<'_> {
    /// `pipefetch snapshot|download ...` into `cache`.
    pub(super) fn run(&self, ctx: &Ctx<'_>, cache: &Path) -> Result<PipefetchRun> {
        let w = ctx.workload;
        let rss_file = cache.with_extension("rss");
        let events_file = cache.with_extension("events.jsonl");
        let time = Path::new("/usr/bin/time");
        let mut cmd = if time.exists() {
            let mut c = Command::new(time);
            c.args(["-f", "%M", "-o"]).arg(&rss_file).arg(self.bin);
            c
        } else {
            Command::new(self.bin)
        };
        if w.name == "single" {
            cmd.args(["download", &w.repo, &w.files[0].0]);
        } else {
            cmd.args(["snapshot", &w.repo]);
        }
        cmd.args(&self.args)
            .env("HF_ENDPOINT", &ctx.server.url)
            .env("HF_HUB_CACHE", cache)
            .stdout(Stdio::null());
        if self.events {
            cmd.args(["--progress", "json"])
                .stderr(std::fs::File::create(&events_file)?);
        } else {
            cmd.args(["--progress", "none"]);
        }
        let status = cmd.status().context("could not start pipefetch")?;
        if !status.success() {
            let tail = std::fs::read_to_string(&events_file).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!("pipefetch exited with {status}: {tail:?}");
        }
        let budget = if self.events {
            budget_from_events(&std::fs::read_to_string(&events_file)?)
        } else {
            None
        };
        let max_rss_kib = std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|s| s.trim().lines().last()?.trim().parse().ok());
        Ok(PipefetchRun {
            budget,
            max_rss_kib,
        })
    }
}

/// Keys under which a progress event may carry the current connection budget. The engine's
/// adaptive budget (issue 7) adds one; until it lands, no event has any and the bench says
/// "n/a".
const BUDGET_KEYS: &[&str] = &[
    "budget",
    "connection_budget",
    "connections",
    "cdn_budget",
    "cdn_connections",
    "current_budget",
];

/// The last and the largest connection budget found in JSON progress lines.
pub(super) fn budget_from_events(text: &str) -> Option<(u64, u64)> {
    let mut last = None;
    let mut max = 0;
    for line in text.lines() {
        let Ok(serde_json::Value::Object(event)) = serde_json::from_str(line) else {
            continue;
        };
        if let Some(n) = BUDGET_KEYS
            .iter()
            .find_map(|k| event.get(*k).and_then(serde_json::Value::as_u64))
        {
            last = Some(n);
            max = max.max(n);
        }
    }
    last.map(|l| (l, max))
}

pub(super) fn curl(ctx: &Ctx<'_>, dir: &Path) -> Result<()> {
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

pub(super) fn aria2(ctx: &Ctx<'_>, dir: &Path) -> Result<()> {
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

/// The Python that runs huggingface_hub's `snapshot_download` (or `hf_hub_download` for one
/// file) on `repo`.
pub(super) fn hf_code(ctx: &Ctx<'_>) -> String {
    let w = ctx.workload;
    if w.name == "single" {
        format!(
            "from huggingface_hub import hf_hub_download; hf_hub_download('{}', '{}')",
            w.repo, w.files[0].0
        )
    } else {
        format!(
            "from huggingface_hub import snapshot_download; snapshot_download('{}')",
            w.repo
        )
    }
}

/// huggingface_hub into `cache`, with its defaults.
pub(super) fn hf_command(ctx: &Ctx<'_>, python: &Path, cache: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-c", &hf_code(ctx)])
        .env("HF_ENDPOINT", &ctx.server.url)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1");
    cmd
}

pub(super) fn hf_snapshot(ctx: &Ctx<'_>, python: &Path, cache: &Path) -> Result<()> {
    util::run(&mut hf_command(ctx, python, cache))
}

/// hf_transfer with `ranges` connections per file, in chunks of 10 MiB: with 100, exactly the
/// call huggingface_hub ≤ 0.36 made (`max_files=HF_TRANSFER_CONCURRENCY` = 100,
/// `chunk_size=DOWNLOAD_CHUNK_SIZE` = 10 MiB). Files are fetched one after another.
pub(super) fn hf_transfer(ctx: &Ctx<'_>, python: &Path, dir: &Path, ranges: u32) -> Result<()> {
    let mut code = String::from("import hf_transfer\n");
    for (i, (path, _)) in ctx.workload.files.iter().enumerate() {
        let _ = writeln!(
            code,
            "hf_transfer.download({:?}, {:?}, max_files={ranges}, chunk_size=10*1024*1024)",
            ctx.url(path),
            dir.join(format!("f{i}")).display().to_string()
        );
    }
    util::run(Command::new(python).args(["-c", &code]))
}

/// Whether `cmd --version` runs.
pub(super) fn which(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_read_from_any_known_key() {
        let lines = "{\"v\":1,\"event\":\"plan\",\"files\":3}\n\
                     {\"v\":2,\"event\":\"budget\",\"connections\":4}\n\
                     not json\n\
                     {\"v\":2,\"event\":\"heartbeat\",\"budget\":24}\n\
                     {\"v\":2,\"event\":\"heartbeat\",\"budget\":16}\n";
        assert_eq!(budget_from_events(lines), Some((16, 24)));
        assert_eq!(budget_from_events("{\"event\":\"done\"}"), None);
    }
}
