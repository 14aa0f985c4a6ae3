//! snapshot_download equivalent: bytes, request counts, patterns, offline.

use pipefetch_fetcher::{Error, Event, SnapshotRequest};
use pipefetch_hub_client::Repo;
use pipefetch_hub_server::Route;

use crate::support::{Setup, read_tree};

fn req() -> SnapshotRequest {
    SnapshotRequest::new(Repo::model("acme/tiny").expect("repo id"))
}

#[tokio::test]
async fn cold_snapshot_has_every_byte_and_costs_one_listing() {
    let s = Setup::new().await;
    let fetcher = s.fetcher();
    let snap = fetcher.snapshot(&req()).await.expect("snapshot");
    assert_eq!(snap.commit, s.commit());
    assert_eq!(snap.path, s.snapshot_dir());
    assert_eq!(read_tree(&snap.path), s.files);
    assert_eq!(
        snap.downloaded_bytes,
        s.files.values().map(|b| b.len() as u64).sum::<u64>()
    );

    let log = s.hub.log();
    assert_eq!(log.count(Route::ApiRepo), 1, "one call resolves main");
    // 12 files + 5 folders listed 3 per page.
    assert_eq!(
        log.count(Route::ApiTree),
        6,
        "every page of the listing, once"
    );
    // Only the big file needed a HEAD (to learn its CDN location for ranges).
    let heads = log
        .entries()
        .into_iter()
        .filter(|e| e.method == "HEAD")
        .count();
    assert_eq!(heads, 1);
    // refs/main and the tree cache were written.
    let repo_dir = s.cache_dir().join("models--acme--tiny");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).expect("ref"),
        s.commit()
    );
    assert!(
        repo_dir
            .join("trees")
            .join(format!("{}.json", s.commit()))
            .is_file()
    );
    // Nothing partial is left behind.
    assert!(s.blob_names().iter().all(|n| !n.ends_with(".incomplete")));
}

#[tokio::test]
async fn warm_snapshot_needs_one_request_on_a_branch_and_none_at_a_commit() {
    let s = Setup::new().await;
    s.fetcher().snapshot(&req()).await.expect("cold");
    s.hub.log().clear();

    let again = s.fetcher().snapshot(&req()).await.expect("warm");
    assert_eq!(again.downloaded_bytes, 0);
    assert!(again.files.iter().all(|f| f.cached));
    let entries = s.hub.log().entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].route, Route::ApiRepo);

    s.hub.log().clear();
    let mut pinned = req();
    pinned.revision = s.commit();
    let snap = s.fetcher().snapshot(&pinned).await.expect("pinned");
    assert_eq!(snap.path, s.snapshot_dir());
    assert_eq!(
        s.hub.log().entries(),
        vec![],
        "a pinned warm snapshot makes no request"
    );
}

#[tokio::test]
async fn patterns_select_like_huggingface_hub() {
    let s = Setup::new().await;
    let mut r = req();
    r.allow_patterns = vec!["unet/".into(), "*.json".into()];
    r.ignore_patterns = vec!["*.fp16.*".into()];
    let snap = s.fetcher().snapshot(&r).await.expect("snapshot");
    let got: Vec<String> = read_tree(&snap.path).into_keys().collect();
    assert_eq!(
        got,
        vec![
            "model_index.json",
            "tokenizer/vocab.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/config.json",
        ]
    );
    // Files outside the selection were not transferred at all.
    let cdn = crate::support::cdn_requests(&s.hub);
    assert_eq!(cdn.len(), 1, "{cdn:?}");
}

#[tokio::test]
async fn offline_snapshot_uses_the_cache_and_never_the_network() {
    let s = Setup::new().await;
    s.fetcher().snapshot(&req()).await.expect("cold");
    s.hub.log().clear();
    let offline = s.fetcher_with(s.client(None), true);
    let snap = offline.snapshot(&req()).await.expect("offline");
    assert_eq!(snap.path, s.snapshot_dir());
    assert_eq!(s.hub.log().entries(), vec![]);

    // A file that was never fetched is reported missing, by name.
    let other = Setup::new().await;
    let offline = other.fetcher_with(other.client(None), true);
    let err = offline.snapshot(&req()).await.expect_err("nothing cached");
    assert!(matches!(err, Error::NotCached { .. }), "{err}");
    assert!(err.hint().unwrap_or_default().contains("HF_HUB_OFFLINE"));
    assert_eq!(other.hub.log().entries(), vec![]);
}

#[tokio::test]
async fn progress_events_tell_the_whole_story() {
    let s = Setup::new().await;
    s.fetcher().snapshot(&req()).await.expect("snapshot");
    let events = s.events.lock().expect("events").clone();
    let total: u64 = s.files.values().map(|b| b.len() as u64).sum();
    assert!(
        matches!(
            events.first(),
            Some(Event::Plan { files: 12, total_bytes, cached_files: 0, cached_bytes: 0 }) if *total_bytes == total
        ),
        "{:?}",
        events.first()
    );
    assert!(
        matches!(events.last(), Some(Event::Done { bytes_downloaded, .. }) if *bytes_downloaded == total)
    );
    let done: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::FileDone { .. }))
        .collect();
    assert_eq!(done.len(), 12);
    // Per file, positions only grow and end at the size.
    for id in 0..12u64 {
        let positions: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Progress {
                    file, bytes_done, ..
                } if *file == id => Some(*bytes_done),
                _ => None,
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] <= w[1]),
            "file {id}: {positions:?}"
        );
    }
}
