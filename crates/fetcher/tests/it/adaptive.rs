//! Issue 7: the adaptive connection budget, work stealing, stragglers raced, URL sources in ranges.
//!
//! Nothing here is timed: the assertions are on bytes, on hub-server's log and link counters, and
//! on the budget events the engine reports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipefetch_fetcher::pipeline::plan::SpecOrigin;
use pipefetch_fetcher::pipeline::pull::PullOptions;
use pipefetch_fetcher::{EngineSettings, Event, Fetcher, FileRequest, INITIAL_CONNECTIONS};
use pipefetch_hub_client::{HfEnv, HubClient, Repo, RetryPolicy};
use pipefetch_hub_server::faults::Fault;
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes};
use pipefetch_hub_server::{HubServer, LoggedRequest, Route};
use sha2::Digest as _;

use crate::support::{Setup, cdn_requests};

type Events = Arc<Mutex<Vec<Event>>>;

/// A fetcher over `hub` caching into `cache`, with `settings`, its events collected.
fn fetcher(hub: &HubServer, cache: &Path, settings: EngineSettings, events: &Events) -> Fetcher {
    let client = HubClient::builder()
        .endpoint(hub.url())
        .retry(RetryPolicy::no_delay())
        .read_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let events = Arc::clone(events);
    Fetcher::builder()
        .env(HfEnv::from_vars(|_| None))
        .client(client)
        .cache_dir(cache)
        .hf_home(cache.join("home"))
        .engine_settings(settings)
        .reporter(Arc::new(move |e: &Event| {
            events.lock().expect("events").push(e.clone())
        }))
        .build()
        .expect("fetcher")
}

/// Small ranges, so that small fixtures are cut and split.
fn small_ranges(connections: Option<usize>) -> EngineSettings {
    EngineSettings {
        connections,
        min_chunk: 128 << 10,
        max_chunk: 1 << 20,
        ..EngineSettings::default()
    }
}

/// `(previous, connections, reason)` of every budget event.
fn budget_changes(events: &Events) -> Vec<(u64, u64, String)> {
    events
        .lock()
        .expect("events")
        .iter()
        .filter_map(|e| match e {
            Event::Budget {
                connections,
                previous,
                reason,
            } => Some((*previous, *connections, reason.clone())),
            _ => None,
        })
        .collect()
}

/// `(first, last + 1)` of a logged request's `Range`.
fn range_of(r: &LoggedRequest) -> Option<(u64, Option<u64>)> {
    let spec = r.range.as_deref()?.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    Some((a.parse().ok()?, b.parse::<u64>().ok().map(|b| b + 1)))
}

/// `fut`, or a panic when it runs for a minute: a test that waits on a straggler fails instead of
/// hanging (this bounds a hang; it measures nothing).
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("the download waited on a slow connection")
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A hub-server with one repo `acme/big` holding `big.safetensors` of `size` random bytes.
async fn big_repo(
    size: usize,
    configure: impl FnOnce(
        pipefetch_hub_server::HubServerBuilder,
    ) -> pipefetch_hub_server::HubServerBuilder,
) -> (HubServer, tempfile::TempDir, Vec<u8>) {
    let root = tempfile::tempdir().expect("tempdir");
    let bytes = random_bytes(17, size);
    RepoBuilder::new(root.path(), "models", "acme/big")
        .file("big.safetensors", bytes.clone())
        .build()
        .expect("fixture");
    let hub = configure(HubServer::builder(root.path()))
        .start()
        .await
        .expect("hub-server");
    (hub, root, bytes)
}

fn big_file() -> FileRequest {
    FileRequest::new(Repo::model("acme/big").expect("id"), "big.safetensors")
}

#[tokio::test]
async fn under_a_per_connection_cap_the_budget_grows_past_its_start() {
    // 1 MB/s per connection: every added connection adds goodput, as on a CDN edge.
    let (hub, _root, bytes) = big_repo(24 << 20, |b| b.cdn_rate(1_000_000)).await;
    let cache = tempfile::tempdir().expect("tempdir");
    let events = Events::default();
    let settings = EngineSettings {
        max_connections: 32,
        ..small_ranges(None)
    };
    let f = fetcher(&hub, cache.path(), settings, &events);
    let p = f.download_file(&big_file()).await.expect("download");
    assert_eq!(std::fs::read(p).expect("read"), bytes);

    let changes = budget_changes(&events);
    let start = INITIAL_CONNECTIONS as u64;
    assert!(
        changes.iter().any(|(_, to, _)| *to > start),
        "the budget never grew past its start ({start}): {changes:?}"
    );
    assert!(changes.iter().all(|(_, to, _)| *to <= 32), "{changes:?}");
    // The server saw it: more bodies in flight at once than the budget started with.
    let stats = hub.link_stats();
    assert!(stats.peak_bodies > start, "{stats:?}");
}

#[tokio::test]
async fn a_pinned_budget_never_changes() {
    let (hub, _root, bytes) = big_repo(8 << 20, |b| b.cdn_rate(2_000_000)).await;
    let cache = tempfile::tempdir().expect("tempdir");
    let events = Events::default();
    let f = fetcher(&hub, cache.path(), small_ranges(Some(3)), &events);
    let p = f.download_file(&big_file()).await.expect("download");
    assert_eq!(std::fs::read(p).expect("read"), bytes);
    assert_eq!(budget_changes(&events), vec![]);
    assert!(hub.link_stats().peak_bodies <= 3, "{:?}", hub.link_stats());
}

#[tokio::test]
async fn a_burst_of_429_shrinks_the_budget() {
    let (hub, _root, bytes) = big_repo(4 << 20, |b| b).await;
    hub.faults()
        .push(Fault::retry_after(0).on(Route::Cdn).times(3));
    let cache = tempfile::tempdir().expect("tempdir");
    let events = Events::default();
    let f = fetcher(&hub, cache.path(), small_ranges(None), &events);
    let p = f.download_file(&big_file()).await.expect("download");
    assert_eq!(std::fs::read(p).expect("read"), bytes);
    let changes = budget_changes(&events);
    // One cut for the burst (not three), by half.
    let cuts: Vec<_> = changes
        .iter()
        .filter(|(_, _, why)| why.contains("429"))
        .collect();
    assert_eq!(cuts.len(), 1, "{changes:?}");
    let (from, to) = (cuts[0].0, cuts[0].1);
    assert!(from > 1 && to == from / 2, "{changes:?}");
}

#[tokio::test]
async fn a_trickled_range_completes_through_a_second_request_for_its_rest() {
    let s = Setup::new().await;
    let size = s.files["big.safetensors"].len() as u64;
    s.hub.faults().push(
        Fault::trickle(2_000)
            .on(Route::Cdn)
            .path_contains("big.safetensors")
            .times(1),
    );
    let p = within(s.fetcher().download_file(&FileRequest::new(
        Repo::model("acme/tiny").expect("id"),
        "big.safetensors",
    )))
    .await
    .expect("download");
    assert_eq!(std::fs::read(p).expect("read"), s.files["big.safetensors"]);

    let cdn = cdn_requests(&s.hub);
    let trickled = cdn
        .iter()
        .find(|r| r.fault.as_deref() == Some("trickle"))
        .expect("a trickled request");
    let (start, end) = range_of(trickled).expect("a range");
    let end = end.expect("an end");
    // The rest of the trickled range was asked for again, from where the trickle stood.
    let rest: Vec<_> = cdn
        .iter()
        .filter(|r| r.fault.is_none())
        .filter_map(range_of)
        .filter(|&(a, b)| a > start && a < end && b == Some(end))
        .collect();
    assert_eq!(rest.len(), 1, "{cdn:#?}");
    // The bytes moved stay within the size and one chunk (what the trickle sent meanwhile).
    let sent: u64 = cdn.iter().map(|r| r.sent).sum();
    assert!(sent <= size + (64 << 10), "{sent} bytes sent for {size}");
    let downloaded: u64 = s
        .events
        .lock()
        .expect("events")
        .iter()
        .filter_map(|e| match e {
            Event::FileDone { downloaded, .. } => Some(*downloaded),
            _ => None,
        })
        .sum();
    assert!(
        downloaded <= size + (64 << 10),
        "{downloaded} bytes received for {size}"
    );
}

#[tokio::test]
async fn a_lone_slow_connection_is_not_raced() {
    // One range, no peers: a slow link is not a fault.
    let s = Setup::new().await;
    let path = "unet/diffusion_pytorch_model.safetensors";
    s.hub.faults().push(
        Fault::trickle(150_000)
            .on(Route::Cdn)
            .path_contains("diffusion_pytorch_model.safetensors")
            .times(1),
    );
    let p = within(s.fetcher().download_file(&FileRequest::new(
        Repo::model("acme/tiny").expect("id"),
        path,
    )))
    .await
    .expect("download");
    assert_eq!(std::fs::read(p).expect("read"), s.files[path]);
    let cdn = cdn_requests(&s.hub);
    assert_eq!(cdn.len(), 1, "{cdn:#?}");
}

/// Not a test: the child process of [`a_split_range_survives_kill_9_and_resumes_exactly`],
/// which the parent starts by running this test binary again with the variables set. Without
/// them it does nothing.
#[tokio::test(flavor = "multi_thread")]
async fn child_download_for_the_kill_test() {
    let (Ok(endpoint), Ok(cache)) = (
        std::env::var("PIPEFETCH_IT_CHILD_ENDPOINT"),
        std::env::var("PIPEFETCH_IT_CHILD_CACHE"),
    ) else {
        return;
    };
    let f = Fetcher::builder()
        .env(HfEnv::from_vars(|_| None))
        .endpoint(endpoint)
        .cache_dir(cache)
        .engine_settings(small_ranges(Some(3)))
        .build()
        .expect("fetcher");
    let _ = f.download_file(&big_file()).await;
}

/// The `.state` sidecars below `blobs`, parsed.
fn states(blobs: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let Ok(rd) = std::fs::read_dir(blobs) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(".incomplete.state")
        })
        .filter_map(|e| {
            let v = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            Some((e.path(), v))
        })
        .collect()
}

fn chunks_of(state: &serde_json::Value) -> Vec<(u64, u64, u64)> {
    state["chunks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| Some((c[0].as_u64()?, c[1].as_u64()?, c[2].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_range_survives_kill_9_and_resumes_exactly() {
    const SIZE: usize = 4 << 20;
    let (hub, _root, bytes) = big_repo(SIZE, |b| b).await;
    // One range crawls; the connections that are done early split it and take its tail.
    hub.faults().push(
        Fault::trickle(60_000)
            .on(Route::Cdn)
            .path_contains("big.safetensors")
            .times(1),
    );
    let cache = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "adaptive::child_download_for_the_kill_test",
            "--exact",
            "--nocapture",
        ])
        .env("PIPEFETCH_IT_CHILD_ENDPOINT", hub.url())
        .env("PIPEFETCH_IT_CHILD_CACHE", cache.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let blobs = cache.path().join("models--acme--big/blobs");
    // The initial cut of 4 MiB for 3 connections is 6 ranges; more means a split was recorded.
    let started = Instant::now();
    loop {
        let split = states(&blobs).iter().any(|(_, s)| {
            let chunks = chunks_of(s);
            chunks.len() > 6 && chunks.iter().any(|c| c.2 > 0 && c.2 < c.1 - c.0)
        });
        if split {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no split recorded: {:?}",
            states(&blobs)
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished too early"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL, in the middle of a split file: nothing runs on the way out.
    child.kill().expect("kill");
    child.wait().expect("reap");

    let recorded = states(&blobs);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let chunks = chunks_of(&recorded[0].1);
    let done: u64 = chunks.iter().map(|c| c.2).sum();
    assert!(done > 0 && done < SIZE as u64, "{chunks:?}");
    // The record tiles the file and never claims more than the partial holds.
    let partial = std::fs::read(recorded[0].0.with_extension("")).expect("partial");
    let mut at = 0;
    for &(start, end, written) in &chunks {
        assert_eq!(start, at, "{chunks:?}");
        let (s, w) = (start as usize, (start + written) as usize);
        assert_eq!(
            partial[s..w],
            bytes[s..w],
            "recorded bytes of {start}..{end} differ"
        );
        at = end;
    }
    assert_eq!(at, SIZE as u64);

    // The rerun, one connection: it asks for exactly what is missing, and the blob is exact.
    hub.faults().clear();
    hub.log().clear();
    let events = Events::default();
    let f = fetcher(&hub, cache.path(), small_ranges(Some(1)), &events);
    let p = f.download_file(&big_file()).await.expect("resumed");
    assert_eq!(std::fs::read(p).expect("read"), bytes);
    let asked: Vec<_> = cdn_requests(&hub).iter().filter_map(range_of).collect();
    for (from, _) in &asked {
        let inside_done = chunks.iter().any(|&(s, _, w)| *from >= s && *from < s + w);
        assert!(!inside_done, "asked again from {from}: {chunks:?}");
    }
    let downloaded: u64 = events
        .lock()
        .expect("events")
        .iter()
        .filter_map(|e| match e {
            Event::FileDone { downloaded, .. } => Some(*downloaded),
            _ => None,
        })
        .sum();
    assert_eq!(downloaded, SIZE as u64 - done, "{asked:?}");
    assert!(states(&blobs).is_empty());
}

/// A pipeline whose `unet` weights come from a URL (hub-server's resolve URL, which redirects
/// to its CDN like a presigned link would).
struct UrlWorld {
    hub: HubServer,
    _root: tempfile::TempDir,
    home: tempfile::TempDir,
    weights: Vec<u8>,
}

impl UrlWorld {
    const SIZE: u64 = 3 << 20;

    async fn new() -> UrlWorld {
        let root = tempfile::tempdir().expect("tempdir");
        RepoBuilder::new(root.path(), "models", "acme/pipe")
            .file(
                "model_index.json",
                br#"{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}"#
                    .to_vec(),
            )
            .file("unet/config.json", b"{}".to_vec())
            .safetensors_file("weights/unet.safetensors", 5, UrlWorld::SIZE)
            .build()
            .expect("fixture");
        let weights = std::fs::read(
            root.path()
                .join("models/acme/pipe/weights/unet.safetensors"),
        )
        .expect("weights");
        let hub = HubServer::builder(root.path())
            .start()
            .await
            .expect("hub-server");
        UrlWorld {
            hub,
            _root: root,
            home: tempfile::tempdir().expect("tempdir"),
            weights,
        }
    }

    fn fetcher(&self, client: HubClient, events: &Events) -> Fetcher {
        let events = Arc::clone(events);
        Fetcher::builder()
            .env(HfEnv::from_vars(|_| None))
            .client(client)
            .hf_home(self.home.path())
            .cache_dir(self.home.path().join("hub"))
            .engine_settings(small_ranges(Some(4)))
            .reporter(Arc::new(move |e: &Event| {
                events.lock().expect("events").push(e.clone())
            }))
            .build()
            .expect("fetcher")
    }

    fn client(&self, retry: RetryPolicy, idle: Duration) -> HubClient {
        HubClient::builder()
            .endpoint(self.hub.url())
            .retry(retry)
            .read_idle_timeout(idle)
            .build()
            .expect("client")
    }

    async fn pull(&self, client: HubClient) -> pipefetch_fetcher::Result<PathBuf> {
        let yaml = format!(
            "repo_id: acme/pipe\ncomponents:\n  unet:\n    urls:\n      config.json: {hub}/acme/pipe/resolve/main/unet/config.json\n      diffusion_pytorch_model.safetensors: {hub}/acme/pipe/resolve/main/weights/unet.safetensors\n",
            hub = self.hub.url()
        );
        let path = self.home.path().join("url.yaml");
        std::fs::write(&path, yaml).expect("spec");
        let spec = pipefetch_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
        let folder = self
            .fetcher(client, &Events::default())
            .download_diffusers_pipeline(&spec, &SpecOrigin::Local(path), &PullOptions::default())
            .await?;
        Ok(folder.path)
    }

    fn weights_requests(&self) -> Vec<LoggedRequest> {
        cdn_requests(&self.hub)
            .into_iter()
            .filter(|r| {
                r.query
                    .as_deref()
                    .is_some_and(|q| q.contains("unet.safetensors"))
            })
            .collect()
    }

    fn check(&self, folder: &Path) {
        let got = std::fs::read(folder.join("unet/diffusion_pytorch_model.safetensors"))
            .expect("weights");
        assert_eq!(sha256(&got), sha256(&self.weights));
    }
}

#[tokio::test]
async fn a_big_url_source_is_fetched_in_several_ranges() {
    let w = UrlWorld::new().await;
    let folder = w
        .pull(w.client(RetryPolicy::no_delay(), Duration::from_secs(5)))
        .await
        .expect("pull");
    w.check(&folder);
    let reqs = w.weights_requests();
    assert!(reqs.len() >= 4, "{reqs:#?}");
    assert!(reqs.iter().all(|r| r.status == 206), "{reqs:#?}");
    // The probe asked from byte 0; together the ranges cover the file.
    let mut ranges: Vec<_> = reqs.iter().filter_map(range_of).collect();
    ranges.sort();
    assert_eq!(ranges[0], (0, None), "{ranges:?}");
    let covered = ranges
        .windows(2)
        .all(|p| p[0].1.is_none_or(|end| end >= p[1].0));
    assert!(covered, "{ranges:?}");
}

#[tokio::test]
async fn a_url_source_that_refuses_ranges_comes_in_one_stream() {
    let w = UrlWorld::new().await;
    w.hub.faults().push(
        Fault::ignore_range()
            .on(Route::Cdn)
            .path_contains("unet.safetensors")
            .times(1),
    );
    let folder = w
        .pull(w.client(RetryPolicy::no_delay(), Duration::from_secs(5)))
        .await
        .expect("pull");
    w.check(&folder);
    let reqs = w.weights_requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].status, 200);
}

#[tokio::test]
async fn an_interrupted_ranged_url_download_resumes_what_is_missing() {
    let w = UrlWorld::new().await;
    // The third request for the weights stalls for good, and the client gives up at once.
    w.hub.faults().push(
        Fault::stall_after(100_000, None)
            .on(Route::Cdn)
            .path_contains("unet.safetensors")
            .times(1),
    );
    let fragile = w.client(RetryPolicy::never(), Duration::from_millis(500));
    w.pull(fragile).await.expect_err("stalled");
    let partial_dir = w.home.path().join("pipefetch/url-cache-v1/partial");
    let kept: Vec<String> = std::fs::read_dir(&partial_dir)
        .expect("partials")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        kept.iter().any(|n| n.ends_with(".incomplete.state")),
        "{kept:?}"
    );

    w.hub.faults().clear();
    w.hub.log().clear();
    let folder = w
        .pull(w.client(RetryPolicy::no_delay(), Duration::from_secs(5)))
        .await
        .expect("resumed");
    w.check(&folder);
    // Only what was missing crossed the network again.
    let sent: u64 = w.weights_requests().iter().map(|r| r.sent).sum();
    assert!(sent < UrlWorld::SIZE, "{sent} of {}", UrlWorld::SIZE);
    assert_eq!(
        std::fs::read_dir(&partial_dir).expect("partials").count(),
        0
    );
}
