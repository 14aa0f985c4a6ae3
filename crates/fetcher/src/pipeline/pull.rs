//! Pulling a pipeline: plan, check the disk, fetch every missing file from every source through one
//! engine, assemble the folder.

use std::path::{Path, PathBuf};

use pipefetch_spec::PipelineSpec;
use serde::Serialize;

use super::assemble;
use super::plan::{Plan, PlanFile, Presence, SpecOrigin};
use crate::Fetcher;
use crate::engine::blocking;
use crate::error::{Error, Result, human_bytes};
use crate::progress::Event;
use crate::sources::{FetchContext, MirrorOptions};

/// Options of [`Fetcher::download_diffusers_pipeline`].
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Where to assemble the folder; default `$HF_HOME/pipelines/<name>`.
    pub out: Option<PathBuf>,
    /// Skip the free-disk check.
    pub skip_disk_check: bool,
    /// A fleet's mirror to fetch a locked pull's files from first ([`Fetcher::pull_locked`]).
    pub mirror: MirrorOptions,
}

/// An assembled pipeline folder.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineFolder {
    /// The folder: pass it to `DiffusionPipeline.from_pretrained`.
    pub path: PathBuf,
    /// The plan it was built from.
    pub plan: Plan,
    /// Bytes that crossed the network.
    pub downloaded_bytes: u64,
}

impl Fetcher {
    /// Downloads every file `spec` needs that is not here yet, from every source, and assembles a
    /// folder `DiffusionPipeline.from_pretrained(folder)` loads as is. Returns the folder.
    ///
    /// ```no_run
    /// use pipefetch_fetcher::Fetcher;
    /// use pipefetch_fetcher::pipeline::plan::SpecOrigin;
    /// use pipefetch_fetcher::pipeline::pull::PullOptions;
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let spec = pipefetch_spec::load_file("examples/sdxl-fp16-vae-fix.yaml")?;
    /// let fetcher = Fetcher::from_env()?;
    /// let origin = SpecOrigin::Local("examples/sdxl-fp16-vae-fix.yaml".into());
    /// let folder = fetcher.download_diffusers_pipeline(&spec, &origin, &PullOptions::default()).await?;
    /// println!("load me: {}", folder.path.display());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn download_diffusers_pipeline(
        &self,
        spec: &PipelineSpec,
        origin: &SpecOrigin,
        options: &PullOptions,
    ) -> Result<PipelineFolder> {
        let plan = self.plan(spec, origin, false).await?;
        self.pull_plan(plan, options).await
    }

    /// Fetches what `plan` lacks and assembles its folder.
    pub(crate) async fn pull_plan(
        &self,
        plan: Plan,
        options: &PullOptions,
    ) -> Result<PipelineFolder> {
        if !options.skip_disk_check {
            self.check_disk(&plan)?;
        }
        let downloaded_bytes = self.fetch_plan(&plan).await?;
        let out = options
            .out
            .clone()
            .unwrap_or_else(|| self.pipelines_dir().join(&plan.name));
        let fetcher = self.clone();
        let plan2 = plan.clone();
        let path = blocking(move || assemble::assemble(&fetcher, &plan2, &out)).await?;
        Ok(PipelineFolder {
            path,
            plan,
            downloaded_bytes,
        })
    }

    /// Fails early when the disk cannot hold the bytes still missing (only those: what is cached or
    /// partly downloaded does not count again).
    pub fn check_disk(&self, plan: &Plan) -> Result<()> {
        let needed = plan.missing_bytes();
        if needed == 0 {
            return Ok(());
        }
        let dir = existing_ancestor(self.cache().root());
        let Some(available) = available_space(&dir) else {
            return Ok(());
        };
        if needed > available {
            return Err(Error::NotEnoughSpace {
                dir,
                needed,
                available,
            });
        }
        Ok(())
    }

    /// Fetches every file of `plan` that is not here, in parallel under one connection budget.
    /// Returns the bytes that crossed the network.
    pub(crate) async fn fetch_plan(&self, plan: &Plan) -> Result<u64> {
        let total = plan.total_bytes();
        let cached: Vec<&PlanFile> = plan
            .files
            .iter()
            .filter(|f| f.presence == Presence::Cached)
            .collect();
        let cached_bytes: u64 = cached.iter().filter_map(|f| f.size).sum();
        let engine = self.begin_run(
            plan.files.len() as u64,
            total,
            cached.len() as u64,
            cached_bytes,
        );
        let mut set = tokio::task::JoinSet::new();
        for (index, file) in plan.files.iter().enumerate() {
            let fetcher = self.clone();
            let engine = engine.clone();
            let file = file.clone();
            set.spawn(async move {
                let id = index as u64;
                let cx = FetchContext {
                    fetcher: &fetcher,
                    engine: &engine,
                    file: id,
                };
                let result = file.origin.fetch(&cx, &file).await;
                match &result {
                    Ok(Some(downloaded)) => engine.reporter().report(&Event::FileDone {
                        file: id,
                        bytes: file.size.unwrap_or(*downloaded),
                        downloaded: *downloaded,
                    }),
                    Ok(None) => {}
                    Err(e) => engine.reporter().report(&Event::FileFailed {
                        file: id,
                        error: crate::render_chain(e),
                    }),
                }
                result.map(|d| d.unwrap_or(0))
            });
        }
        self.run_with_heartbeat(&engine, crate::join_transfers(set))
            .await
    }
}

/// The nearest existing folder at or above `path` (the cache may not exist yet).
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut cur = path.to_path_buf();
    loop {
        if cur.exists() {
            return cur;
        }
        if !cur.pop() {
            return PathBuf::from(".");
        }
    }
}

/// Free bytes for an unprivileged writer on the file system holding `dir`.
fn available_space(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// `12.3 GB missing, 4.5 GB free` style summary for messages.
pub fn describe_space(needed: u64, available: u64) -> String {
    format!(
        "{} to download, {} free",
        human_bytes(needed),
        human_bytes(available)
    )
}
