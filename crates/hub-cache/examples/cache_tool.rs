//! A small tool to check interoperability with Python's huggingface_hub by hand.
//!
//! ```text
//! cargo run -p pipefetch-hub-cache --example cache_tool -- build <cache dir>   # write a sample cache
//! cargo run -p pipefetch-hub-cache --example cache_tool -- scan <cache dir>    # print what we read
//! cargo run -p pipefetch-hub-cache --example cache_tool -- lookup <cache dir> <repo id> <revision> <path>
//! cargo run -p pipefetch-hub-cache --example cache_tool -- many <cache dir> 50         # 50 repos for timing
//! cargo run -p pipefetch-hub-cache --example cache_tool -- time-scan <cache dir>
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use pipefetch_hub_cache::{
    CacheOptions, HfCache, Lookup, RepoType, SymlinkMode, TreeCache, TreeFile,
};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn build(root: &str) -> Result<(), pipefetch_hub_cache::Error> {
    // Honour HF_HUB_DISABLE_SYMLINKS=1 to check the no-symlink layout against Python too.
    let disabled = std::env::var("HF_HUB_DISABLE_SYMLINKS").is_ok_and(|v| v == "1");
    let mode = if disabled {
        SymlinkMode::Disabled
    } else {
        SymlinkMode::Auto
    };
    let cache = HfCache::with_options(root, CacheOptions::with_symlinks(mode));
    let repo = cache.repo(RepoType::Model, "org/pipe")?;
    repo.ensure_layout()?;
    let files: [(&str, &[u8]); 3] = [
        ("model_index.json", b"{\"_class_name\": \"X\"}"),
        ("unet/config.json", b"{}"),
        ("unet/diffusion_pytorch_model.safetensors", b"weights"),
    ];
    let mut tree = TreeCache::default();
    for (i, (path, bytes)) in files.iter().enumerate() {
        let etag = format!("{:040x}", i + 1);
        let blob = repo.begin_blob(&etag)?;
        blob.file()
            .write_all(bytes)
            .map_err(|e| pipefetch_hub_cache::Error::Io {
                op: "write",
                path: blob.path().to_path_buf(),
                source: e,
            })?;
        blob.commit()?;
        repo.link_snapshot(COMMIT, path, &etag)?;
        tree.files.insert(
            (*path).to_owned(),
            TreeFile {
                size: bytes.len() as u64,
                blob_id: etag,
                ..TreeFile::default()
            },
        );
    }
    repo.write_ref("main", COMMIT)?;
    repo.write_ref("refs/pr/1", COMMIT)?;
    repo.mark_no_exist(COMMIT, "unet/missing.bin")?;
    repo.write_tree(COMMIT, &tree)?;
    let dataset = cache.repo(RepoType::Dataset, "org/data")?;
    dataset.ensure_layout()?;
    dataset.mark_no_exist(COMMIT, "README.md")?;
    let partial = repo.begin_blob(&format!("{:064x}", 9))?;
    partial.into_resumable();
    Ok(())
}

fn scan(root: &str) -> Result<(), pipefetch_hub_cache::Error> {
    let info = HfCache::new(root).scan()?;
    for repo in &info.repos {
        println!(
            "repo {} {} size={} nb_files={} refs={:?} incomplete={}",
            repo.repo_type,
            repo.repo_id,
            repo.size_on_disk,
            repo.nb_files,
            repo.refs,
            repo.incomplete.len()
        );
        for rev in &repo.revisions {
            let files: BTreeMap<&str, u64> = rev
                .files
                .iter()
                .map(|f| (f.path.as_str(), f.size))
                .collect();
            println!("  rev {} refs={:?} files={files:?}", rev.commit, rev.refs);
        }
    }
    for warning in &info.warnings {
        println!("warning {}", warning.message);
    }
    println!("size_on_disk {}", info.size_on_disk);
    Ok(())
}

fn lookup(
    root: &str,
    repo_id: &str,
    revision: &str,
    path: &str,
) -> Result<(), pipefetch_hub_cache::Error> {
    let repo = HfCache::new(root).repo(RepoType::Model, repo_id)?;
    match repo.lookup(revision, path)? {
        Lookup::Found(p) => println!("found {}", p.display()),
        Lookup::NoExist => println!("no_exist"),
        Lookup::Missing => println!("missing"),
        other => println!("{other:?}"),
    }
    if let Some(commit) = repo.resolve_revision(revision)?
        && let Some(tree) = repo.read_tree(&commit)?
    {
        println!("tree {:?}", tree.files.keys().collect::<Vec<_>>());
    }
    Ok(())
}

/// Builds `n` repos of 12 files over two revisions each, to time scans.
fn many(root: &str, n: usize) -> Result<(), pipefetch_hub_cache::Error> {
    let cache = HfCache::new(root);
    for r in 0..n {
        let repo = cache.repo(RepoType::Model, &format!("org/repo{r}"))?;
        repo.ensure_layout()?;
        for (c, commit) in [COMMIT, "89abcdef0123456789abcdef0123456789abcdef"]
            .iter()
            .enumerate()
        {
            for f in 0..12 {
                let etag = format!("{:040x}", f + c * 6);
                if !repo.has_blob(&etag) {
                    repo.begin_blob(&etag)?.commit()?;
                }
                repo.link_snapshot(commit, &format!("sub{}/file{f}.bin", f % 3), &etag)?;
            }
        }
        repo.write_ref("main", COMMIT)?;
    }
    Ok(())
}

/// Times repeated scans (best of 20).
fn time_scan(root: &str) -> Result<(), pipefetch_hub_cache::Error> {
    let cache = HfCache::new(root);
    let mut best = std::time::Duration::MAX;
    let mut repos = 0;
    for _ in 0..20 {
        let start = std::time::Instant::now();
        repos = cache.scan()?.repos.len();
        best = best.min(start.elapsed());
    }
    println!("{repos} repos scanned in {best:?} (best of 20)");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["build", root] => build(root),
        ["scan", root] => scan(root),
        ["many", root, n] => many(root, n.parse().unwrap_or(50)),
        ["time-scan", root] => time_scan(root),
        ["lookup", root, repo, revision, path] => lookup(root, repo, revision, path),
        _ => {
            eprintln!("usage: cache_tool build|scan <dir> | lookup <dir> <repo> <revision> <path>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
