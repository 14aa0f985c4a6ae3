//! `pipefetch mirror push|presign`: a fleet's mirror on an S3-compatible store (`docs/mirror.md`).
//! The work is `pipefetch_mirror`'s; this module reads the command line and prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use pipefetch_fetcher::{Event, PullOptions, Reporter, human_bytes};
use pipefetch_mirror::{Mirror, MirrorEnv, MirrorLocation, PushOptions, Sha256Hex};

use crate::GlobalArgs;
use crate::commands::fetcher;
use crate::pipeline::{INVALID_SPEC, Loaded, LockedArg, SpecArg, load, read_lock};

#[derive(Debug, clap::Args)]
pub struct MirrorArgs {
    #[command(subcommand)]
    command: MirrorCommand,
}

#[derive(Debug, clap::Subcommand)]
enum MirrorCommand {
    /// Push a pipeline to a mirror and print the key of its lock there.
    ///
    /// Locks the spec (or uses its lockfile with --locked), brings its files into the local
    /// cache, uploads each file the mirror lacks once, and writes the lock to the mirror.
    /// Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY [, AWS_SESSION_TOKEN], AWS_REGION,
    /// AWS_ENDPOINT_URL (docs/mirror.md).
    Push(PushArgs),
    /// Write a mirror's lock of a pipeline with a presigned URL per file.
    ///
    /// For machines without credentials: each file gets a `mirror_url`, a presigned GET of its
    /// blob. Whoever holds the lock can read those files until the URLs expire.
    Presign(PresignArgs),
}

#[derive(Debug, clap::Args)]
struct PushArgs {
    #[command(flatten)]
    spec: SpecArg,
    /// The mirror, s3://BUCKET/PREFIX [default: $PIPEFETCH_MIRROR]
    #[arg(value_name = "MIRROR")]
    mirror: Option<String>,
    #[command(flatten)]
    lock: LockedArg,
    /// Where to assemble the pipeline the push pulls first [default: $HF_HOME/pipelines/<name>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Do not check free disk space before pulling.
    #[arg(long)]
    no_disk_check: bool,
}

#[derive(Debug, clap::Args)]
struct PresignArgs {
    /// A spec (file, or ORG/NAME/path.yaml in a Hub repo), or a pipeline's name.
    #[arg(value_name = "SPEC|NAME")]
    target: String,
    /// The mirror, s3://BUCKET/PREFIX [default: $PIPEFETCH_MIRROR]
    #[arg(value_name = "MIRROR")]
    mirror: Option<String>,
    /// How long the URLs work: 90m, 12h, 7d (at most 7d).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    expires: String,
    /// Write the lock to this file (readable by its owner only) instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The lock with this sha256 (`pipelines/<name>/<sha256>.lock`) instead of the current one.
    #[arg(long, value_name = "SHA256")]
    lock_sha256: Option<String>,
    /// The revision of a hosted spec's repo (branch, tag or commit).
    #[arg(long, default_value = "main")]
    spec_revision: String,
}

pub async fn run(args: MirrorArgs, global: &GlobalArgs) -> Result<ExitCode> {
    match args.command {
        MirrorCommand::Push(args) => push(args, global).await,
        MirrorCommand::Presign(args) => presign(args, global).await,
    }
}

/// The mirror a pull reads first: `--mirror S3_URL`, else (`--mirror` alone, or no flag at all)
/// `PIPEFETCH_MIRROR` when it is set, unless `--no-mirror`. `--mirror-only` without any mirror is
/// an error.
pub fn for_pull(
    arg: Option<Option<String>>,
    only: bool,
    none: bool,
    global: &GlobalArgs,
) -> Result<Option<Mirror>> {
    if none {
        return Ok(None);
    }
    let named = arg.clone().flatten();
    let from_env = MirrorEnv::from_env().mirror_location()?.is_some();
    if named.is_none() && !from_env {
        if arg.is_some() || only {
            bail!("no mirror given: pass --mirror s3://BUCKET/PREFIX, or set PIPEFETCH_MIRROR");
        }
        return Ok(None);
    }
    open(named.as_deref(), global).map(Some)
}

/// The mirror named on the command line, else by `PIPEFETCH_MIRROR`, with the AWS variables.
pub fn open(arg: Option<&str>, global: &GlobalArgs) -> Result<Mirror> {
    let env = MirrorEnv::from_env();
    let location: MirrorLocation = match arg {
        Some(text) => text.parse()?,
        None => env.mirror_location()?.context(
            "no mirror given: pass s3://BUCKET/PREFIX after the spec, or set PIPEFETCH_MIRROR",
        )?,
    };
    let credentials = env.credentials()?;
    // `--connections N` pins uploads too: that many parts in flight (and in memory) at most.
    // Uploads have no adaptive budget; without the flag they use the mirror's default of 8.
    Ok(Mirror::builder(location)
        .region(env.region.clone())
        .endpoint(env.endpoint.clone())
        .credentials(credentials)
        .upload_slots(upload_slots(global))
        .build()?)
}

/// Parts in flight for uploads: `--connections`, else 8.
fn upload_slots(global: &GlobalArgs) -> usize {
    global.connections.map_or(8, usize::from)
}

async fn push(args: PushArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let mirror = open(args.mirror.as_deref(), global)?;
    let locker = fetcher(global)?;
    let Loaded::Spec(s) = load(&args.spec, &locker, false).await? else {
        return Ok(ExitCode::from(INVALID_SPEC));
    };
    let name = &s.spec.name;
    // Refused credentials or a missing bucket are said before any work on the sources.
    mirror.probe().await?;
    let lock = if args.lock.locked {
        read_lock(&s, args.lock.lockfile.as_ref())?
    } else {
        locker
            .lock(&s.spec, &s.origin, &s.text)
            .await
            .with_context(|| format!("could not lock pipeline `{name}`"))?
    };
    // Each run (locking, the pull, the upload) gets renderers of its own: bars are finished at
    // the end of their run.
    drop(locker);
    let puller = fetcher(global)?;
    let mut options = PushOptions::default();
    options.parallel_files = upload_slots(global);
    options.pull = PullOptions {
        out: args.out,
        skip_disk_check: args.no_disk_check,
        ..PullOptions::default()
    };
    let reporter = Later {
        mode: global.progress,
        renderer: OnceLock::new(),
    };
    let pushed = mirror
        .push(&puller, &lock, &reporter, &options)
        .await
        .with_context(|| format!("could not push pipeline `{name}` to {}", mirror.location()))?;
    eprintln!(
        "{name}: {} files in {} blobs: {} uploaded ({}), {} already in the mirror ({}); {} pulled from the sources",
        pushed.files,
        pushed.blobs,
        pushed.uploaded_blobs,
        human_bytes(pushed.uploaded_bytes),
        pushed.present_blobs,
        human_bytes(pushed.present_bytes),
        human_bytes(pushed.downloaded_bytes),
    );
    eprintln!(
        "{name}: lock {} {}",
        if pushed.lock_written {
            "written to"
        } else {
            "unchanged at"
        },
        mirror.url_of(&pushed.keys.current)
    );
    println!("{}", mirror.url_of(&pushed.keys.version));
    Ok(ExitCode::SUCCESS)
}

async fn presign(args: PresignArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let ttl = pipefetch_mirror::parse_expiry(&args.expires)?;
    let version: Option<Sha256Hex> = args.lock_sha256.as_deref().map(str::parse).transpose()?;
    let mirror = open(args.mirror.as_deref(), global)?;
    let name = if is_spec(&args.target) {
        let fetcher = fetcher(global)?;
        let arg = SpecArg {
            spec: args.target.clone(),
            spec_revision: args.spec_revision.clone(),
        };
        let Loaded::Spec(s) = load(&arg, &fetcher, false).await? else {
            return Ok(ExitCode::from(INVALID_SPEC));
        };
        s.spec.name
    } else {
        pipefetch_mirror::check_pipeline_name(&args.target)?;
        args.target.clone()
    };
    let lock = mirror.read_lock(&name, version.as_ref()).await?;
    let signed = mirror
        .presign_lock(&lock, ttl)
        .await
        .with_context(|| format!("could not presign the lock of `{name}`"))?;
    let until = httpdate::fmt_http_date(SystemTime::now() + ttl);
    match &args.output {
        Some(path) => {
            write_private(path, signed.to_json().as_bytes())
                .with_context(|| format!("could not write {}", path.display()))?;
            println!("{}", path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(signed.to_json().as_bytes())?;
            out.flush()?;
        }
    }
    eprintln!(
        "{name}: {} files presigned for {} (until {until}); whoever holds this lock can read them until then",
        signed.files.len(),
        shown(ttl),
    );
    if std::env::var_os("AWS_SESSION_TOKEN").is_some_and(|v| !v.is_empty()) {
        eprintln!(
            "{name}: the URLs carry the session token (X-Amz-Security-Token): treat the lock as a credential until it expires"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A renderer made at its first event: one made earlier would draw an empty bar through the
/// runs before it.
struct Later {
    mode: crate::ProgressMode,
    renderer: OnceLock<Arc<dyn Reporter>>,
}

impl Reporter for Later {
    fn report(&self, event: &Event) {
        self.renderer
            .get_or_init(|| crate::render::reporter(self.mode))
            .report(event);
    }
}

/// Whether `target` names a spec (an existing file, or `ORG/NAME/path.yaml`) rather than a
/// pipeline's name.
fn is_spec(target: &str) -> bool {
    Path::new(target).exists()
        || target.ends_with(".yaml")
        || target.ends_with(".yml")
        || target.contains('/')
}

/// `24h`, `90m`, `7d` (the largest unit that divides it).
fn shown(ttl: Duration) -> String {
    let s = ttl.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Writes `bytes` to `path` through a temp file beside it, readable by its owner only (a
/// presigned lock is a bearer credential), renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(file_name) = path.file_name() else {
        bail!("{} is not a file name", path.display());
    };
    let tmp = dir.join(format!(
        ".{}.{:08x}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}
