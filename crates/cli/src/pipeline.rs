//! The pipeline commands: plan, pull, lock, check, list.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use pipefetch_fetcher::pipeline::check::list_pipelines;
use pipefetch_fetcher::pipeline::plan::{Plan, Presence};
use pipefetch_fetcher::pipeline::pull::PullOptions;
use pipefetch_fetcher::sources::MirrorOptions;
use pipefetch_fetcher::{Fetcher, LoadedSpec, Lock, SpecLoadError, human_bytes};

use crate::GlobalArgs;
use crate::commands::{cache, fetcher};

/// Exit code for an invalid spec.
pub(crate) const INVALID_SPEC: u8 = 3;
/// Exit code for `check` when the pipeline is not available.
const NOT_AVAILABLE: u8 = 4;

#[derive(Debug, clap::Args)]
pub struct SpecArg {
    /// A spec file, or a spec hosted in a Hub repo: `ORG/NAME/path/spec.yaml`.
    pub(crate) spec: String,
    /// The revision of a hosted spec's repo (branch, tag or commit).
    #[arg(long, default_value = "main")]
    pub(crate) spec_revision: String,
}

/// `--locked` and where the lockfile is.
#[derive(Debug, clap::Args)]
pub struct LockedArg {
    /// Use exactly the files of the spec's lockfile (see `pipefetch lock`): nothing is resolved,
    /// and a spec edited since it was locked is an error.
    #[arg(long)]
    pub(crate) locked: bool,
    /// The lockfile [default: the spec's path with `.lock` (`flux.yaml` → `flux.lock`); for a
    /// hosted spec, `<its stem>.lock` in the current folder]
    #[arg(long, value_name = "PATH")]
    pub(crate) lockfile: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    spec: SpecArg,
    #[command(flatten)]
    lock: LockedArg,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    #[command(flatten)]
    spec: SpecArg,
    /// Where to write the lockfile [default: as `--lockfile` of `pull --locked`]
    #[arg(long, value_name = "PATH")]
    lockfile: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    #[command(flatten)]
    spec: SpecArg,
    #[command(flatten)]
    lock: LockedArg,
    /// Where to assemble the pipeline [default: $HF_HOME/pipelines/<name>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Do not check free disk space first.
    #[arg(long)]
    no_disk_check: bool,
    /// Fetch the files from a fleet's mirror first, s3://BUCKET/PREFIX [default with no value,
    /// and without the flag when it is set: $PIPEFETCH_MIRROR]. Without --locked, the mirror's
    /// lock of the pipeline says which files; a file the mirror lacks, or serves damaged, comes
    /// from its origin (docs/mirror.md).
    #[arg(long, value_name = "S3_URL", num_args = 0..=1, conflicts_with = "no_mirror")]
    mirror: Option<Option<String>>,
    /// Every file from the mirror, or fail naming the file.
    #[arg(long, conflicts_with = "no_mirror")]
    mirror_only: bool,
    /// Ignore $PIPEFETCH_MIRROR.
    #[arg(long)]
    no_mirror: bool,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    spec: SpecArg,
    #[command(flatten)]
    lock: LockedArg,
    /// Re-hash every file instead of trusting sizes.
    #[arg(long)]
    verify: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A spec, where it came from and its text, or the exit code after its diagnostics were printed.
pub(crate) enum Loaded {
    Spec(Box<LoadedSpec>),
    Invalid,
}

pub(crate) async fn load(arg: &SpecArg, fetcher: &Fetcher, offline: bool) -> Result<Loaded> {
    match fetcher
        .load_spec(&arg.spec, &arg.spec_revision, offline)
        .await
    {
        Ok(spec) => Ok(Loaded::Spec(Box::new(spec))),
        Err(SpecLoadError::Invalid { diagnostics, text }) => {
            // A hosted spec's excerpts come from the downloaded text: no colour for those.
            let color = text.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
            eprint!("{}", diagnostics.render(color));
            Ok(Loaded::Invalid)
        }
        Err(SpecLoadError::Fetch(e)) => Err(e.into()),
        Err(other) => Err(anyhow::anyhow!("{other}")),
    }
}

/// Where the lockfile is: `--lockfile`, else the spec's default.
fn lockfile_of(s: &LoadedSpec, arg: Option<&PathBuf>) -> PathBuf {
    arg.cloned().unwrap_or_else(|| s.lockfile.clone())
}

/// The spec's lockfile, checked against the spec's text.
pub(crate) fn read_lock(s: &LoadedSpec, arg: Option<&PathBuf>) -> Result<Lock> {
    let path = lockfile_of(s, arg);
    s.read_lock(Some(&path))
        .with_context(|| format!("cannot use the lockfile {}", path.display()))
}

pub async fn plan(args: PlanArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let fetcher = fetcher(global)?;
    let Loaded::Spec(s) = load(&args.spec, &fetcher, false).await? else {
        return Ok(ExitCode::from(INVALID_SPEC));
    };
    let plan = if args.lock.locked {
        let lock = read_lock(&s, args.lock.lockfile.as_ref())?;
        fetcher.plan_locked(&lock).await?
    } else {
        fetcher.plan(&s.spec, &s.origin, false).await?
    };
    let disk = fetcher.check_disk(&plan);
    if args.json {
        let out = serde_json::json!({
            "name": plan.name,
            "files": plan.files,
            "total_bytes": plan.total_bytes(),
            "missing_bytes": plan.missing_bytes(),
            "unknown_sizes": plan.unknown_sizes(),
            "disk_ok": disk.is_ok(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_plan(&plan);
        match &disk {
            Ok(()) => println!("disk: enough free space for the missing bytes"),
            Err(e) => println!("disk: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(plan: &Plan) {
    println!("pipeline {}", plan.name);
    println!("{:<58} {:>10}  {:<8} SOURCE", "FILE", "SIZE", "STATE");
    for f in &plan.files {
        let size = f.size.map(human_bytes).unwrap_or_else(|| "?".into());
        let state = match f.presence {
            Presence::Cached => "cached".to_string(),
            Presence::Partial { bytes } => format!("partial {}", human_bytes(bytes)),
            Presence::Missing => "missing".to_string(),
            _ => "?".to_string(),
        };
        println!(
            "{:<58} {:>10}  {:<8} {}",
            f.target,
            size,
            state,
            f.origin.describe()
        );
    }
    let cached = plan
        .files
        .iter()
        .filter(|f| f.presence == Presence::Cached)
        .count();
    let unknown = plan.unknown_sizes();
    println!(
        "{} files, {} in all; {} cached; {} to download{}",
        plan.files.len(),
        human_bytes(plan.total_bytes()),
        cached,
        human_bytes(plan.missing_bytes()),
        if unknown > 0 {
            format!(" (+ {unknown} file(s) of unknown size)")
        } else {
            String::new()
        }
    );
}

pub async fn pull(args: PullArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let fetcher = fetcher(global)?;
    let Loaded::Spec(s) = load(&args.spec, &fetcher, false).await? else {
        return Ok(ExitCode::from(INVALID_SPEC));
    };
    let mirror = crate::mirror::for_pull(
        args.mirror.clone(),
        args.mirror_only,
        args.no_mirror,
        global,
    )?;
    let mut options = PullOptions {
        out: args.out,
        skip_disk_check: args.no_disk_check,
        ..PullOptions::default()
    };
    // The lock to follow: the spec's own with --locked, else the mirror's of this pipeline.
    let lock = if args.lock.locked {
        Some(read_lock(&s, args.lock.lockfile.as_ref())?)
    } else if let Some(mirror) = &mirror {
        match mirror.lock_for(&s).await {
            Ok(lock) => Some(lock),
            Err(e) if args.mirror_only => {
                return Err(anyhow::Error::new(e).context(format!(
                    "could not pull pipeline `{}` from the mirror",
                    s.spec.name
                )));
            }
            Err(e) => {
                tracing::warn!(
                    "{}; pulling `{}` from its origins",
                    pipefetch_fetcher::render_chain(&e),
                    s.spec.name
                );
                None
            }
        }
    } else {
        None
    };
    if let Some(mirror) = mirror {
        options.mirror = MirrorOptions::with(Arc::new(mirror)).only(args.mirror_only);
    }
    let folder = match &lock {
        Some(lock) => fetcher.pull_locked(lock, &options).await,
        None => {
            fetcher
                .download_diffusers_pipeline(&s.spec, &s.origin, &options)
                .await
        }
    }
    .with_context(|| format!("could not pull pipeline `{}`", s.spec.name))?;
    eprintln!(
        "{}: {} files, {} downloaded",
        s.spec.name,
        folder.plan.files.len(),
        human_bytes(folder.downloaded_bytes)
    );
    println!("{}", folder.path.display());
    Ok(ExitCode::SUCCESS)
}

pub async fn check(args: CheckArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let fetcher = fetcher(global)?;
    let Loaded::Spec(s) = load(&args.spec, &fetcher, true).await? else {
        return Ok(ExitCode::from(INVALID_SPEC));
    };
    let availability = if args.lock.locked {
        let lock = read_lock(&s, args.lock.lockfile.as_ref())?;
        fetcher.is_available_locked(&lock, args.verify).await?
    } else {
        fetcher.is_available(&s, args.verify).await?
    };
    let spec = &s.spec;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&availability)?);
    } else if availability.available {
        println!(
            "{}: available ({} files, {})",
            spec.name,
            availability.files,
            human_bytes(availability.bytes)
        );
    } else {
        println!(
            "{}: NOT available ({} problem(s))",
            spec.name,
            availability.problems.len()
        );
        for p in &availability.problems {
            println!("  {p}");
        }
    }
    Ok(if availability.available {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_AVAILABLE)
    })
}

pub async fn lock(args: LockArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let fetcher = fetcher(global)?;
    let Loaded::Spec(s) = load(&args.spec, &fetcher, false).await? else {
        return Ok(ExitCode::from(INVALID_SPEC));
    };
    let lock = fetcher
        .lock(&s.spec, &s.origin, &s.text)
        .await
        .with_context(|| format!("could not lock pipeline `{}`", s.spec.name))?;
    let path = lockfile_of(&s, args.lockfile.as_ref());
    lock.write(&path)?;
    let bytes: u64 = lock.files.iter().map(|f| f.size).sum();
    eprintln!(
        "{}: locked {} files, {}",
        s.spec.name,
        lock.files.len(),
        human_bytes(bytes)
    );
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn list(args: ListArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let fetcher = fetcher(global)?;
    let pipelines = list_pipelines(&fetcher.pipelines_dir());
    let cache = cache(global);
    let info = cache
        .scan()
        .with_context(|| format!("could not scan {}", cache.root().display()))?;
    let repos: Vec<serde_json::Value> = info
        .repos
        .iter()
        .map(|r| {
            let broken = info.warnings.iter().any(|w| w.path.starts_with(&r.path));
            serde_json::json!({
                "repo_id": r.repo_id,
                "repo_type": r.repo_type.as_str(),
                "size_on_disk": r.size_on_disk,
                "revisions": r.revisions.len(),
                "complete": r.incomplete.is_empty() && !broken,
                "incomplete_downloads": r.incomplete.len(),
            })
        })
        .collect();
    if args.json {
        let out = serde_json::json!({ "pipelines": pipelines, "repos": repos });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("PIPELINES ({})", fetcher.pipelines_dir().display());
    if pipelines.is_empty() {
        println!("  (none)");
    }
    for p in &pipelines {
        println!(
            "  {:<40} {:>10} {:>5} files  {}",
            p.name,
            human_bytes(p.bytes),
            p.files,
            if p.complete {
                "complete".to_string()
            } else {
                format!("BROKEN: {}", p.broken.join(", "))
            }
        );
    }
    println!("REPOS ({})", cache.root().display());
    if repos.is_empty() {
        println!("  (none)");
    }
    for r in &info.repos {
        let broken = info.warnings.iter().any(|w| w.path.starts_with(&r.path));
        println!(
            "  {:<40} {:>10} {:>3} rev  {}",
            r.repo_id,
            human_bytes(r.size_on_disk),
            r.revisions.len(),
            if !r.incomplete.is_empty() {
                format!("{} incomplete download(s)", r.incomplete.len())
            } else if broken {
                "problems (see `pipefetch scan`)".to_string()
            } else {
                "complete".to_string()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
