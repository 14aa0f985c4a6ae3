//! `pipefetch`: download Hugging Face files, snapshots and diffusers pipelines into the HF cache.
//!
//! Results (local paths) go to stdout, one per line, so scripts can use them; progress and
//! diagnostics go to stderr. Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the operation failed (network, cache, verification, …) |
//! | 2 | bad command line (unknown option, missing argument) |
//! | 3 | a spec is invalid (`validate`, `plan`, `pull`, `check`, `lock`, `mirror`) |
//! | 4 | `check`: the pipeline is not (completely) available locally |

// Doc comments on the argument types are clap's help texts, written for a terminal
// (`[default: $HF_HOME/pipelines/<name>]`), not rustdoc markup.
#![allow(
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls
)]

mod commands;
mod mirror;
mod pipeline;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Download diffusers pipelines from the Hugging Face Hub, only the files they need, into the
/// standard HF cache, verified and resumable.
#[derive(Debug, Parser)]
#[command(name = "pipefetch", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
struct GlobalArgs {
    /// The Hub cache folder [default: $HF_HUB_CACHE, else $HF_HOME/hub]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<std::path::PathBuf>,

    /// A Hugging Face token [default: $HF_TOKEN, else the token file]
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// The Hub endpoint [default: $HF_ENDPOINT, else https://huggingface.co]
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,

    /// Never use the network; answer from the cache [default: $HF_HUB_OFFLINE]
    #[arg(long, global = true)]
    offline: bool,

    /// How to show progress on stderr.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,

    /// Exactly N concurrent connections across all files [default: as many as the link rewards,
    /// found while downloading]
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    connections: Option<u16>,

    /// The most connections the adaptive budget may use across all files
    #[arg(long, global = true, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_connections: u16,

    /// More logging on stderr (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    /// Bars when stderr is a terminal, nothing otherwise.
    Auto,
    /// Always bars.
    Bars,
    /// One JSON object per line on stderr (schema: the `pipefetch_fetcher::progress` docs, version 2).
    Json,
    /// Nothing.
    None,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Download files of a repo (like `hf_hub_download`) and print their local paths.
    Download(commands::DownloadArgs),
    /// Download a repo, or the files matching patterns (like `snapshot_download`), and print the
    /// snapshot folder.
    Snapshot(commands::SnapshotArgs),
    /// List what the cache holds: repos, revisions, sizes, incomplete files, problems.
    Scan(commands::ScanArgs),
    /// Delete a repo, or one revision of it, from the cache (blobs still used elsewhere are kept).
    Rm(commands::RmArgs),
    /// Check pipeline spec files; exit 3 if any is invalid.
    Validate(commands::ValidateArgs),
    /// Show every file a pipeline spec needs, where from, its size, and whether it is cached.
    Plan(pipeline::PlanArgs),
    /// Download what a pipeline spec needs and assemble a folder diffusers loads; print its path.
    Pull(pipeline::PullArgs),
    /// Resolve a pipeline spec to exact files and write them, with their sha256, to a lockfile
    /// beside it (`flux.yaml` → `flux.lock`); print the lockfile's path.
    Lock(pipeline::LockArgs),
    /// Tell, without any network, whether a pipeline is completely here; exit 4 if not.
    Check(pipeline::CheckArgs),
    /// List assembled pipelines and cached repos, with sizes and completeness.
    List(pipeline::ListArgs),
    /// A fleet's mirror on an S3-compatible store: push pipelines to it, presign their locks.
    Mirror(mirror::MirrorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    render::init_logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            render::print_error(
                &anyhow::Error::new(e).context("could not start the async runtime"),
            );
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(commands::run(cli.command, cli.global));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            render::print_error(&e);
            ExitCode::from(1)
        }
    }
}
