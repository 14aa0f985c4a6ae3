//! The transfer engine under faults: verification, resume, ranges, concurrency.

use pipefetch_fetcher::{Error, FileRequest, SnapshotRequest};
use pipefetch_hub_client::Repo;
use pipefetch_hub_server::Route;
use pipefetch_hub_server::faults::Fault;

use crate::support::{Setup, read_tree};

fn big() -> FileRequest {
    FileRequest::new(Repo::model("acme/tiny").expect("id"), "big.safetensors")
}

#[tokio::test]
async fn big_files_come_in_parallel_ranges_from_the_cdn() {
    let s = Setup::new().await;
    let p = s.fetcher().download_file(&big()).await.expect("big");
    assert_eq!(std::fs::read(p).expect("read"), s.files["big.safetensors"]);
    let cdn = crate::support::cdn_requests(&s.hub);
    // 3,000,000 bytes for 4 connections: two ranges per connection, 375,000 bytes each.
    assert_eq!(cdn.len(), 8, "{cdn:?}");
    assert!(cdn.iter().all(|e| e.range.is_some()));
}

#[tokio::test]
async fn a_flipped_byte_is_caught_and_nothing_lands() {
    let s = Setup::new().await;
    s.hub
        .faults()
        .push(Fault::flip_byte(1000).on(Route::Cdn).times(1));
    let req = FileRequest::new(
        Repo::model("acme/tiny").expect("id"),
        "unet/diffusion_pytorch_model.safetensors",
    );
    let err = s.fetcher().download_file(&req).await.expect_err("corrupt");
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(err.to_string().contains("sha256"), "{err}");
    // No blob under a final name, no temp file, no pointer.
    assert!(s.blob_names().is_empty(), "{:?}", s.blob_names());
    assert!(
        !s.snapshot_dir()
            .join("unet/diffusion_pytorch_model.safetensors")
            .exists()
    );
    // The next run gets it right.
    let p = s.fetcher().download_file(&req).await.expect("clean");
    assert_eq!(
        std::fs::read(p).expect("read"),
        s.files["unet/diffusion_pytorch_model.safetensors"]
    );
}

#[tokio::test]
async fn a_cut_body_resumes_with_range() {
    let s = Setup::new().await;
    s.hub
        .faults()
        .push(Fault::cut_after(100_000).on(Route::Cdn).times(1));
    let req = FileRequest::new(
        Repo::model("acme/tiny").expect("id"),
        "unet/diffusion_pytorch_model.safetensors",
    );
    let p = s.fetcher().download_file(&req).await.expect("resumed");
    assert_eq!(
        std::fs::read(p).expect("read"),
        s.files["unet/diffusion_pytorch_model.safetensors"]
    );
    let cdn = crate::support::cdn_requests(&s.hub);
    assert_eq!(cdn.len(), 2, "{cdn:#?}");
    assert_eq!(
        cdn[1].range.as_deref(),
        Some("bytes=100000-299999"),
        "{cdn:#?}"
    );
}

#[tokio::test]
async fn a_server_ignoring_range_still_yields_the_right_bytes() {
    let s = Setup::new().await;
    s.hub
        .faults()
        .push(Fault::ignore_range().on(Route::Cdn).times(2));
    let p = s.fetcher().download_file(&big()).await.expect("big");
    assert_eq!(std::fs::read(p).expect("read"), s.files["big.safetensors"]);
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let s = Setup::new().await;
    s.hub
        .faults()
        .push(Fault::status(503).on(Route::ApiRepo).times(2));
    s.hub
        .faults()
        .push(Fault::status(500).on(Route::Cdn).times(2));
    let snap = s
        .fetcher()
        .snapshot(&SnapshotRequest::new(Repo::model("acme/tiny").expect("id")))
        .await
        .expect("retried");
    assert_eq!(read_tree(&snap.path), s.files);
    assert_eq!(s.hub.log().count(Route::ApiRepo), 3);
}

#[tokio::test]
async fn retries_become_progress_events_of_their_file() {
    let s = Setup::new().await;
    s.hub
        .faults()
        .push(Fault::status(503).on(Route::Cdn).times(1));
    // The client must be built by the fetcher for its retry callbacks to be wired.
    let events = std::sync::Arc::clone(&s.events);
    let fetcher = pipefetch_fetcher::Fetcher::builder()
        .env(pipefetch_hub_client::HfEnv::from_vars(|_| None))
        .endpoint(s.hub.url())
        .cache_dir(s.cache_dir())
        .reporter(std::sync::Arc::new(move |e: &pipefetch_fetcher::Event| {
            events.lock().expect("events").push(e.clone())
        }))
        .build()
        .expect("fetcher");
    let req = FileRequest::new(
        Repo::model("acme/tiny").expect("id"),
        "vae/diffusion_pytorch_model.safetensors",
    );
    fetcher.download_file(&req).await.expect("retried");
    let retries: Vec<_> = s
        .events
        .lock()
        .expect("events")
        .iter()
        .filter_map(|e| match e {
            pipefetch_fetcher::Event::Retry {
                file,
                reason,
                attempt,
                ..
            } => Some((*file, reason.clone(), *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(retries, vec![(Some(0), "HTTP 503".to_string(), 1)]);
    // The file's end, then `Done` last, with the plan's file count.
    let events = s.events.lock().expect("events").clone();
    let n = events.len();
    assert!(n >= 2, "{events:?}");
    assert!(
        matches!(
            events[n - 2],
            pipefetch_fetcher::Event::FileDone { file: 0, .. }
        ),
        "{events:?}"
    );
    assert!(
        matches!(
            events[n - 1],
            pipefetch_fetcher::Event::Done { files: 1, .. }
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn two_fetchers_on_one_cache_download_each_blob_once() {
    let s = Setup::new().await;
    let a = s.fetcher();
    let b = s.fetcher();
    let req = SnapshotRequest::new(Repo::model("acme/tiny").expect("id"));
    let (ra, rb) = tokio::join!(a.snapshot(&req), b.snapshot(&req));
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(read_tree(&ra.path), s.files);
    assert_eq!(ra.path, rb.path);
    let total: u64 = s.files.values().map(|b| b.len() as u64).sum();
    assert_eq!(ra.downloaded_bytes + rb.downloaded_bytes, total);
}

/// A client that gives up at the first failure and notices a stall fast: an "interrupted" run.
fn fragile(s: &Setup) -> pipefetch_hub_client::HubClient {
    pipefetch_hub_client::HubClient::builder()
        .endpoint(s.hub.url())
        .retry(pipefetch_hub_client::RetryPolicy::never())
        .read_idle_timeout(std::time::Duration::from_millis(300))
        .build()
        .expect("client")
}

#[tokio::test]
async fn an_interrupted_download_resumes_from_the_bytes_on_disk() {
    let s = Setup::new().await;
    let path = "unet/diffusion_pytorch_model.safetensors";
    let req = FileRequest::new(Repo::model("acme/tiny").expect("id"), path);
    s.hub
        .faults()
        .push(Fault::stall_after(120_000, None).on(Route::Cdn).times(1));
    let err = s
        .fetcher_with(fragile(&s), false)
        .download_file(&req)
        .await
        .expect_err("stalled");
    assert!(matches!(err, Error::Transfer { .. }), "{err}");
    // The partial and its state are kept for the next run.
    let names = s.blob_names();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".incomplete")));
    assert!(names.iter().any(|n| n.ends_with(".incomplete.state")));

    s.hub.log().clear();
    let p = s.fetcher().download_file(&req).await.expect("resumed");
    assert_eq!(std::fs::read(p).expect("read"), s.files[path]);
    let cdn = crate::support::cdn_requests(&s.hub);
    assert_eq!(cdn.len(), 1, "{cdn:?}");
    let range = cdn[0].range.clone().unwrap_or_default();
    let from: u64 = range
        .trim_start_matches("bytes=")
        .split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(from > 0 && from <= 120_000, "resumed from {range}");
    // Nothing partial is left once the blob is complete.
    assert_eq!(
        s.blob_names()
            .iter()
            .filter(|n| n.contains(".incomplete"))
            .count(),
        0
    );
}

#[tokio::test]
async fn an_interrupted_ranged_download_only_fetches_what_is_missing() {
    let s = Setup::new().await;
    s.hub.faults().push(
        Fault::stall_after(100_000, None)
            .on(Route::Cdn)
            .path_contains("big.safetensors")
            .times(1),
    );
    let fragile = s.fetcher_with(fragile(&s), false);
    fragile.download_file(&big()).await.expect_err("stalled");
    s.hub.log().clear();
    s.fetcher().download_file(&big()).await.expect("resumed");
    let p = s.snapshot_dir().join("big.safetensors");
    assert_eq!(std::fs::read(p).expect("read"), s.files["big.safetensors"]);
    // Completed ranges were not asked for again.
    let cdn = crate::support::cdn_requests(&s.hub);
    assert!(cdn.len() < 8, "{cdn:#?}");
}

#[tokio::test]
async fn a_corrupt_partial_is_discarded_and_the_file_fetched_again() {
    let s = Setup::new().await;
    let path = "unet/diffusion_pytorch_model.safetensors";
    let req = FileRequest::new(Repo::model("acme/tiny").expect("id"), path);
    s.hub
        .faults()
        .push(Fault::stall_after(120_000, None).on(Route::Cdn).times(1));
    s.fetcher_with(fragile(&s), false)
        .download_file(&req)
        .await
        .expect_err("stalled");
    // Damage the kept bytes, as a crash or a bad disk would.
    let blobs = s.cache_dir().join("models--acme--tiny/blobs");
    let partial = s
        .blob_names()
        .into_iter()
        .find(|n| n.ends_with(".incomplete"))
        .expect("partial");
    let mut bytes = std::fs::read(blobs.join(&partial)).expect("read");
    bytes[10] ^= 0xff;
    std::fs::write(blobs.join(&partial), bytes).expect("write");

    let p = s
        .fetcher()
        .download_file(&req)
        .await
        .expect("fetched again");
    assert_eq!(std::fs::read(p).expect("read"), s.files[path]);
    assert_eq!(
        s.blob_names()
            .iter()
            .filter(|n| n.contains(".incomplete"))
            .count(),
        0
    );
}

#[tokio::test]
async fn bytes_sent_again_after_an_inline_hash_are_hashed_from_disk() {
    // One range (min_chunk above the file size): the sink hashes inline; a cut after more than
    // one flushed buffer, then a server that ignores Range, makes it rewrite hashed bytes.
    let s = Setup::new().await;
    s.hub
        .faults()
        .push(Fault::cut_after(1_500_000).on(Route::Cdn).times(1));
    s.hub
        .faults()
        .push(Fault::ignore_range().on(Route::Cdn).times(1));
    let fetcher = pipefetch_fetcher::Fetcher::builder()
        .env(pipefetch_hub_client::HfEnv::from_vars(|_| None))
        .client(s.client(None))
        .cache_dir(s.cache_dir())
        .engine_settings(pipefetch_fetcher::EngineSettings {
            connections: Some(2),
            min_chunk: 4 << 20,
            max_chunk: 8 << 20,
            ..Default::default()
        })
        .build()
        .expect("fetcher");
    let p = fetcher.download_file(&big()).await.expect("verified");
    assert_eq!(std::fs::read(p).expect("read"), s.files["big.safetensors"]);
    let cdn = crate::support::cdn_requests(&s.hub);
    assert_eq!(cdn.len(), 2, "{cdn:#?}");
    assert_eq!(cdn[1].fault.as_deref(), Some("ignore_range"));
}

/// Python's Ctrl-C, a timeout or an aborted task drop a download's future midway. What was
/// written must stay resumable, as after a failure: the partial and its state file are kept
/// (dropping the partial used to delete it) and the next run fetches only the missing ranges.
#[tokio::test]
async fn a_download_dropped_midway_keeps_its_partial_for_the_next_run() {
    let s = Setup::new().await;
    // One range of the big file stalls for good; the seven others complete.
    s.hub.faults().push(
        Fault::stall_after(100_000, None)
            .on(Route::Cdn)
            .path_contains("big.safetensors")
            .times(1),
    );
    let size = s.files["big.safetensors"].len() as u64;
    let range = size / 8;
    // A client that waits for the stalled range far longer than the test takes: the drop, not a
    // timeout and a retry, must be what ends this download.
    let patient = pipefetch_hub_client::HubClient::builder()
        .endpoint(s.hub.url())
        .retry(pipefetch_hub_client::RetryPolicy::no_delay())
        .read_idle_timeout(std::time::Duration::from_secs(600))
        .build()
        .expect("client");
    let fetcher = s.fetcher_with(patient, false);
    let request = big();
    let download = fetcher.download_file(&request);
    let stalled = async {
        // Every range but the stalled one is in, and so is the stalled one's first part.
        while !s.events.lock().expect("events").iter().any(|e| {
            matches!(e, pipefetch_fetcher::Event::Heartbeat { bytes_done, stalled_ms, .. }
                if *bytes_done >= size - range + 100_000 && *stalled_ms > 0)
        }) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        result = download => panic!("the stalled download ended: {result:?}"),
        () = stalled => {}
    }
    // The future is dropped here, as a cancelled caller's would be.
    let names = s.blob_names();
    assert!(
        names.iter().any(|n| n.ends_with(".incomplete")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(".incomplete.state")),
        "{names:?}"
    );

    s.hub.log().clear();
    s.events.lock().expect("events").clear();
    let p = s.fetcher().download_file(&big()).await.expect("resumed");
    assert_eq!(std::fs::read(p).expect("read"), s.files["big.safetensors"]);
    // Only the stalled range was asked for again, and the run said it resumed.
    let cdn = crate::support::cdn_requests(&s.hub);
    assert_eq!(cdn.len(), 1, "{cdn:#?}");
    let resumed = s
        .events
        .lock()
        .expect("events")
        .iter()
        .find_map(|e| match e {
            pipefetch_fetcher::Event::FileStarted { resumed, .. } => Some(*resumed),
            _ => None,
        });
    assert_eq!(resumed, Some(size - range), "resumed bytes");
    assert!(!s.blob_names().iter().any(|n| n.contains(".incomplete")));
}
