//! Pulling from the mirror: with the Hub gone, every file comes from the bucket and lands where
//! its own source puts it; with the Hub there, nothing is downloaded from it; a poisoned blob is
//! caught and fetched from its origin (or, with only the mirror, is an error naming the file); four
//! pulls at once into one cache fetch each blob once.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStoreExt as _;
use object_store::PutPayload;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use pipefetch_fetcher::pipeline::pull::PullOptions;
use pipefetch_fetcher::sources::MirrorOptions;
use pipefetch_fetcher::{Error, Fetcher, LoadedSpec, Lock};
use pipefetch_hub_server::Route;
use pipefetch_mirror::{Mirror, PushOptions, Sha256Hex};
use pipefetch_test_garage::Garage;

use crate::world::{Events, NAME, World};
use crate::{garage, guard, mirror, requests_since};

/// Pushes the world's pipeline to `prefix` and returns the mirror, the lock and the spec as the
/// pulling machine reads it.
async fn pushed(w: &World, garage: &Garage, prefix: &str) -> (Mirror, Lock, LoadedSpec) {
    let home = tempfile::tempdir().unwrap();
    let pusher = w.fetcher(home.path());
    let lock = w.lock(&pusher).await;
    let mirror = mirror(garage, prefix);
    mirror
        .push(&pusher, &lock, &Events::default(), &PushOptions::default())
        .await
        .unwrap();
    let spec = pusher
        .load_spec(
            &w.specs
                .path()
                .join(format!("{NAME}.yaml"))
                .to_string_lossy(),
            "main",
            true,
        )
        .await
        .unwrap();
    (mirror, lock, spec)
}

/// The pulling machine lacks the pushing machine's local folders: they move out of reach.
fn hide_local_folders(w: &World) -> tempfile::TempDir {
    let away = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(w.specs.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::rename(&path, away.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    away
}

fn options(mirror: &Mirror, only: bool) -> PullOptions {
    PullOptions {
        mirror: MirrorOptions::with(Arc::new(mirror.clone())).only(only),
        ..PullOptions::default()
    }
}

/// Every file of the assembled folder has the locked size and sha256.
fn assert_folder_is_the_lock(folder: &Path, lock: &Lock) {
    for file in &lock.files {
        if file.target.ends_with(".index.json") {
            continue; // rewritten in the folder
        }
        let bytes = std::fs::read(folder.join(&file.target)).unwrap();
        assert_eq!(bytes.len() as u64, file.size, "{}", file.target);
        assert_eq!(
            Sha256Hex::of(&bytes).as_str(),
            file.sha256,
            "{}",
            file.target
        );
    }
}

/// Overwrites a blob in the bucket with other bytes, behind the mirror's back.
async fn poison(garage: &Garage, mirror: &Mirror, sha256: &str) {
    let store = AmazonS3Builder::new()
        .with_endpoint(garage.endpoint())
        .with_allow_http(true)
        .with_region(garage.region())
        .with_bucket_name(garage.bucket())
        .with_access_key_id(&garage.key().id)
        .with_secret_access_key(&garage.key().secret)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    let key = mirror
        .location()
        .blob_key(&sha256.parse::<Sha256Hex>().unwrap());
    store
        .put(
            &StorePath::from(key.as_str()),
            PutPayload::from(b"not the bytes you locked".to_vec()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn with_the_hub_gone_a_fresh_machine_pulls_everything_from_the_mirror() {
    let Some(garage) =
        garage("with_the_hub_gone_a_fresh_machine_pulls_everything_from_the_mirror").await
    else {
        return;
    };
    guard(async {
        let w = World::new().await;
        let (mirror, lock, spec) = pushed(&w, &garage, "fleet").await;
        let _away = hide_local_folders(&w);
        let World { hub, .. } = w;
        hub.shutdown().await;

        let home = tempfile::tempdir().unwrap();
        // Its endpoint is dead: any request to the Hub would fail the pull.
        let fetcher = Fetcher::builder()
            .env(pipefetch_hub_client::HfEnv::from_vars(|_| None))
            .endpoint("http://127.0.0.1:9")
            .hf_home(home.path())
            .cache_dir(home.path().join("hub"))
            .build()
            .unwrap();
        let from_mirror = mirror.lock_for(&spec).await.unwrap();
        assert_eq!(from_mirror, lock);
        let folder = fetcher
            .pull_locked(&from_mirror, &options(&mirror, true))
            .await
            .unwrap();
        assert_folder_is_the_lock(&folder.path, &lock);

        // `check` answers from disk alone, though the base repo's listing never came.
        let available = fetcher.is_available(&spec, true).await.unwrap();
        assert!(available.available, "{:?}", available.problems);

        // Hub files are in the Hub cache under the Hub's names: refs/main, the snapshot, the blob.
        let vae = lock
            .files
            .iter()
            .find(|f| f.target == "vae/diffusion_pytorch_model.safetensors")
            .unwrap();
        let repo = home.path().join("hub/models--acme--vae-fix");
        let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
        assert_eq!(commit, vae.source.fields["commit"].as_str().unwrap());
        let in_snapshot = repo
            .join("snapshots")
            .join(&commit)
            .join(vae.source.fields["path"].as_str().unwrap());
        assert_eq!(
            Sha256Hex::of(&std::fs::read(&in_snapshot).unwrap()).as_str(),
            vae.sha256
        );
        assert!(
            repo.join("blobs")
                .join(vae.source.fields["etag"].as_str().unwrap())
                .is_file()
        );
    })
    .await;
}

#[tokio::test]
async fn with_the_hub_there_and_the_mirror_complete_nothing_comes_from_the_hub() {
    let Some(garage) =
        garage("with_the_hub_there_and_the_mirror_complete_nothing_comes_from_the_hub").await
    else {
        return;
    };
    guard(async {
        let w = World::new().await;
        let (mirror, lock, spec) = pushed(&w, &garage, "complete").await;
        let home = tempfile::tempdir().unwrap();
        let fetcher = w.fetcher(home.path());
        w.hub.log().clear();
        assert_eq!(mirror.lock_for(&spec).await.unwrap(), lock);
        let folder = fetcher
            .pull_locked(&lock, &options(&mirror, false))
            .await
            .unwrap();
        assert_folder_is_the_lock(&folder.path, &lock);
        let hub_requests = w.hub.log().entries();
        assert!(
            hub_requests.is_empty(),
            "the Hub served {:#?}",
            hub_requests
                .iter()
                .map(|e| (e.route, e.path.clone()))
                .collect::<Vec<_>>()
        );
    })
    .await;
}

#[tokio::test]
async fn a_poisoned_blob_comes_from_its_origin_or_with_only_the_mirror_is_an_error() {
    let Some(garage) =
        garage("a_poisoned_blob_comes_from_its_origin_or_with_only_the_mirror_is_an_error").await
    else {
        return;
    };
    guard(async {
        let w = World::new().await;
        let (mirror, lock, _spec) = pushed(&w, &garage, "poisoned").await;
        let vae = lock
            .files
            .iter()
            .find(|f| f.target == "vae/diffusion_pytorch_model.safetensors")
            .unwrap()
            .clone();
        poison(&garage, &mirror, &vae.sha256).await;

        // Only the mirror: an error naming the file, and nothing bad kept.
        let strict_home = tempfile::tempdir().unwrap();
        let error = w
            .fetcher(strict_home.path())
            .pull_locked(&lock, &options(&mirror, true))
            .await
            .unwrap_err();
        let text = pipefetch_fetcher::render_chain(&error);
        assert!(
            matches!(&error, Error::Mirror { target, .. } if *target == vae.target),
            "{text}"
        );
        assert!(text.contains("sha256"), "{text}");

        // With a fallback: the file comes from the Hub, exact; the others from the mirror.
        let home = tempfile::tempdir().unwrap();
        w.hub.log().clear();
        let folder = w
            .fetcher(home.path())
            .pull_locked(&lock, &options(&mirror, false))
            .await
            .unwrap();
        assert_folder_is_the_lock(&folder.path, &lock);
        let from_hub: Vec<String> = w
            .hub
            .log()
            .entries()
            .into_iter()
            .filter(|e| matches!(e.route, Route::Cdn | Route::Resolve))
            .map(|e| e.path)
            .collect();
        assert!(!from_hub.is_empty());
        assert!(
            from_hub
                .iter()
                .all(|p| p.contains("diffusion_pytorch_model") || p.contains(&vae.sha256)),
            "only the poisoned file comes from the Hub: {from_hub:#?}"
        );
    })
    .await;
}

#[tokio::test]
async fn four_pulls_at_once_into_one_cache_fetch_each_blob_once() {
    let Some(garage) = garage("four_pulls_at_once_into_one_cache_fetch_each_blob_once").await
    else {
        return;
    };
    guard(async {
        let w = World::new().await;
        let (mirror, lock, _spec) = pushed(&w, &garage, "four").await;
        let _away = hide_local_folders(&w);
        let home = tempfile::tempdir().unwrap();
        let before = garage.requests().unwrap().len();
        let pulls = (0..4).map(|i| {
            let fetcher = w.fetcher(home.path());
            let (lock, options) = (lock.clone(), options(&mirror, true));
            let out = home.path().join(format!("out-{i}"));
            async move {
                let options = PullOptions {
                    out: Some(out),
                    ..options
                };
                fetcher.pull_locked(&lock, &options).await
            }
        });
        for result in futures::future::join_all(pulls).await {
            let folder = result.unwrap();
            assert_folder_is_the_lock(&folder.path, &lock);
        }
        let mut gets = std::collections::BTreeMap::<String, usize>::new();
        for r in requests_since(&garage, before) {
            if r.method == "GET" && r.path.contains("/blobs/sha256/") {
                *gets.entry(r.path).or_default() += 1;
            }
        }
        // Once per place a blob lands: a blob shared by a Hub file and a local file (one config,
        // two files) lands in the Hub cache and in the content store.
        let mut places =
            std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
        for f in &lock.files {
            let place = format!(
                "{}:{}",
                f.source.kind,
                f.source
                    .fields
                    .get("repo")
                    .map(|r| r.to_string())
                    .unwrap_or_default()
            );
            places
                .entry(mirror.location().blob_key(&f.sha256.parse().unwrap()))
                .or_default()
                .insert(place);
        }
        let expected: std::collections::BTreeMap<String, usize> = places
            .into_iter()
            .map(|(key, places)| (format!("/{}/{key}", garage.bucket()), places.len()))
            .collect();
        assert_eq!(gets, expected);
    })
    .await;
}
