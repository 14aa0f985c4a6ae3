//! The commands. Each returns its exit code; errors bubble up to `main`'s renderer.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use pipefetch_fetcher::{Fetcher, FileRequest, SnapshotRequest, human_bytes};
use pipefetch_hub_client::{HfEnv, Repo, RepoId, RepoType, Token};

use crate::{Command, GlobalArgs, render};

/// A repo type on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RepoTypeArg {
    Model,
    Dataset,
    Space,
}

impl From<RepoTypeArg> for RepoType {
    fn from(t: RepoTypeArg) -> RepoType {
        match t {
            RepoTypeArg::Model => RepoType::Model,
            RepoTypeArg::Dataset => RepoType::Dataset,
            RepoTypeArg::Space => RepoType::Space,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// The repo id, e.g. `stabilityai/stable-diffusion-xl-base-1.0`.
    repo: String,
    /// Paths of files in the repo.
    #[arg(required = true)]
    files: Vec<String>,
    /// A branch, tag or commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// The folder of the repo the files are in.
    #[arg(long)]
    subfolder: Option<String>,
    #[arg(long, value_enum, default_value_t = RepoTypeArg::Model)]
    repo_type: RepoTypeArg,
    /// Download again even when cached.
    #[arg(long)]
    force: bool,
    /// Never use the network for this command.
    #[arg(long)]
    local_files_only: bool,
}

#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// The repo id.
    repo: String,
    /// A branch, tag or commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Only files matching this pattern (fnmatch: `*` crosses `/`; `dir/` = the folder). Repeatable.
    #[arg(long = "include", value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out files matching this pattern. Repeatable.
    #[arg(long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    #[arg(long, value_enum, default_value_t = RepoTypeArg::Model)]
    repo_type: RepoTypeArg,
    /// Download again even when cached.
    #[arg(long)]
    force: bool,
    /// Never use the network for this command.
    #[arg(long)]
    local_files_only: bool,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The repo id.
    repo: String,
    /// Only this revision (a commit, or a ref like `main`); default: the whole repo.
    #[arg(long)]
    revision: Option<String>,
    #[arg(long, value_enum, default_value_t = RepoTypeArg::Model)]
    repo_type: RepoTypeArg,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Spec files to check.
    #[arg(required = true, value_name = "SPEC")]
    specs: Vec<PathBuf>,
}

pub async fn run(command: Command, global: GlobalArgs) -> Result<ExitCode> {
    match command {
        Command::Download(args) => download(args, &global).await,
        Command::Snapshot(args) => snapshot(args, &global).await,
        Command::Scan(args) => scan(args, &global),
        Command::Rm(args) => rm(args, &global),
        Command::Validate(args) => validate(args),
        Command::Plan(args) => crate::pipeline::plan(args, &global).await,
        Command::Pull(args) => crate::pipeline::pull(args, &global).await,
        Command::Lock(args) => crate::pipeline::lock(args, &global).await,
        Command::Check(args) => crate::pipeline::check(args, &global).await,
        Command::List(args) => crate::pipeline::list(args, &global),
        Command::Mirror(args) => crate::mirror::run(args, &global).await,
    }
}

fn env() -> HfEnv {
    HfEnv::from_env()
}

pub fn fetcher(global: &GlobalArgs) -> Result<Fetcher> {
    let env = env();
    let mut builder = Fetcher::builder()
        .max_connections(usize::from(global.max_connections))
        .reporter(render::reporter(global.progress));
    if let Some(n) = global.connections {
        builder = builder.connections(usize::from(n));
    }
    if let Some(dir) = &global.cache_dir {
        builder = builder.cache_dir(dir);
    }
    if let Some(endpoint) = &global.endpoint {
        builder = builder.endpoint(endpoint);
    }
    if let Some(token) = global.token.as_deref().and_then(Token::clean) {
        builder = builder.token(Some(Token::with_source(
            token,
            pipefetch_hub_client::TokenSource::Explicit,
        )));
    }
    if global.offline {
        builder = builder.offline(true);
    }
    Ok(builder.env(env).build()?)
}

fn repo(id: &str, repo_type: RepoTypeArg) -> Result<Repo> {
    let id = RepoId::new(id).with_context(|| format!("`{id}` is not a valid repo id"))?;
    Ok(Repo::new(repo_type.into(), id))
}

pub fn cache(global: &GlobalArgs) -> pipefetch_hub_cache::HfCache {
    let dir = global
        .cache_dir
        .clone()
        .unwrap_or_else(|| env().hub_cache.clone());
    pipefetch_hub_cache::HfCache::new(dir)
}

async fn download(args: DownloadArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let fetcher = fetcher(global)?;
    let repo = repo(&args.repo, args.repo_type)?;
    // Files of one command download concurrently under the fetcher's connection budget; paths are
    // printed in the order given.
    let requests: Vec<FileRequest> = args
        .files
        .iter()
        .map(|file| {
            let mut req = FileRequest::new(repo.clone(), file.clone()).revision(&args.revision);
            req.subfolder = args.subfolder.clone();
            req.force_download = args.force;
            req.local_files_only = args.local_files_only;
            req
        })
        .collect();
    let results =
        futures::future::join_all(requests.iter().map(|r| fetcher.download_file(r))).await;
    let mut failed = None;
    for (req, result) in requests.iter().zip(results) {
        match result {
            Ok(path) => println!("{}", path.display()),
            Err(e) => {
                let e = anyhow::Error::new(e)
                    .context(format!("could not download `{}`", req.repo_path()));
                if failed.is_some() {
                    render::print_error(&e);
                } else {
                    failed = Some(e);
                }
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

async fn snapshot(args: SnapshotArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let fetcher = fetcher(global)?;
    let mut req = SnapshotRequest::new(repo(&args.repo, args.repo_type)?);
    req.revision = args.revision;
    req.allow_patterns = args.include;
    req.ignore_patterns = args.exclude;
    req.force_download = args.force;
    req.local_files_only = args.local_files_only;
    let snapshot = fetcher.snapshot(&req).await?;
    let cached = snapshot.files.iter().filter(|f| f.cached).count();
    tracing::info!(
        "{} files ({} cached), {} downloaded",
        snapshot.files.len(),
        cached,
        human_bytes(snapshot.downloaded_bytes)
    );
    println!("{}", snapshot.path.display());
    Ok(ExitCode::SUCCESS)
}

fn scan(args: ScanArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let cache = cache(global);
    let info = cache
        .scan()
        .with_context(|| format!("could not scan the cache at {}", cache.root().display()))?;
    if args.json {
        let repos: Vec<_> = info
            .repos
            .iter()
            .map(|r| {
                serde_json::json!({
                    "repo_type": r.repo_type.as_str(),
                    "repo_id": r.repo_id,
                    "path": r.path,
                    "size_on_disk": r.size_on_disk,
                    "nb_files": r.nb_files,
                    "refs": r.refs,
                    "incomplete": r.incomplete.iter().map(|i| serde_json::json!({"path": i.path, "size": i.size})).collect::<Vec<_>>(),
                    "revisions": r.revisions.iter().map(|rev| serde_json::json!({
                        "commit": rev.commit,
                        "refs": rev.refs,
                        "size_on_disk": rev.size_on_disk,
                        "files": rev.files.iter().map(|f| serde_json::json!({"path": f.path, "size": f.size})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "cache_dir": cache.root(),
            "size_on_disk": info.size_on_disk,
            "repos": repos,
            "warnings": info.warnings.iter().map(|w| serde_json::json!({"path": w.path, "message": w.message})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<50} {:<8} {:>10} {:>6} {:<12} REFS",
        "REPO ID", "TYPE", "SIZE", "FILES", "REVISIONS"
    );
    for r in &info.repos {
        let refs: Vec<&str> = r.refs.keys().map(String::as_str).collect();
        let incomplete = if r.incomplete.is_empty() {
            String::new()
        } else {
            format!("  ({} incomplete download(s))", r.incomplete.len())
        };
        println!(
            "{:<50} {:<8} {:>10} {:>6} {:<12} {}{}",
            r.repo_id,
            r.repo_type.as_str(),
            human_bytes(r.size_on_disk),
            r.nb_files,
            r.revisions.len(),
            refs.join(", "),
            incomplete
        );
    }
    eprintln!(
        "{} repo(s), {} on disk at {}",
        info.repos.len(),
        human_bytes(info.size_on_disk),
        cache.root().display()
    );
    for w in &info.warnings {
        eprintln!("warning: {}: {}", w.path.display(), w.message);
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(args: RmArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let cache = cache(global);
    let repo_type = match args.repo_type {
        RepoTypeArg::Model => pipefetch_hub_cache::RepoType::Model,
        RepoTypeArg::Dataset => pipefetch_hub_cache::RepoType::Dataset,
        RepoTypeArg::Space => pipefetch_hub_cache::RepoType::Space,
    };
    let report = match &args.revision {
        None => cache.delete_repo(repo_type, &args.repo)?,
        Some(revision) => {
            let repo = cache.repo(repo_type, &args.repo)?;
            let commit = repo.resolve_revision(revision)?.with_context(|| {
                format!(
                    "{}: revision `{revision}` is not in the cache at {}",
                    args.repo,
                    cache.root().display()
                )
            })?;
            repo.delete_revision(&commit)?
        }
    };
    if report.removed_blobs.is_empty() && report.freed_bytes == 0 && args.revision.is_none() {
        bail!(
            "{} is not in the cache at {}",
            args.repo,
            cache.root().display()
        );
    }
    eprintln!(
        "removed {} blob(s), freed {}",
        report.removed_blobs.len(),
        human_bytes(report.freed_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

fn validate(args: ValidateArgs) -> Result<ExitCode> {
    let mut invalid = 0;
    for path in &args.specs {
        match pipefetch_spec::load_file(path) {
            Ok(_) => eprintln!("{}: ok", path.display()),
            Err(diagnostics) => {
                invalid += 1;
                let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
                eprint!("{}", diagnostics.render(color));
                eprintln!("{}: {} error(s)", path.display(), diagnostics.error_count());
            }
        }
    }
    if invalid > 0 {
        eprintln!("{invalid} of {} spec(s) invalid", args.specs.len());
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
