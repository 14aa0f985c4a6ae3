//! Lockfiles: the exact bytes of a spec, pulled again anywhere with no resolution.

use pipefetch_fetcher::pipeline::pull::PullOptions;
use pipefetch_fetcher::{Error, Lock};
use pipefetch_hub_server::Route;

use crate::sources::sha256_hex;
use crate::support::read_tree;
use crate::world::{World, names};

/// Every kind of source at once: the base repo at a branch, another repo's folder, exactly listed
/// files, a local folder and URLs.
fn mixed_spec(w: &World) -> String {
    pipefetch_hub_server::fixture::world::mixed_spec(&w.hub.url(), &w.local_unet)
}

#[tokio::test]
async fn a_lock_records_every_file_with_its_sha256_and_is_deterministic() {
    let w = World::new().await;
    let yaml = mixed_spec(&w);
    let (spec, origin) = w.spec("mixed", &yaml);
    let fetcher = w.fetcher(false);
    let lock = fetcher.lock(&spec, &origin, &yaml).await.expect("lock");
    let again = fetcher
        .lock(&spec, &origin, &yaml)
        .await
        .expect("lock again");
    assert_eq!(
        lock.to_json(),
        again.to_json(),
        "the same spec locks to the same text"
    );
    assert_eq!(
        Lock::from_json(lock.to_json().as_bytes()).expect("parse"),
        lock
    );

    let targets: Vec<&str> = lock.files.iter().map(|f| f.target.as_str()).collect();
    let mut sorted = targets.clone();
    sorted.sort_unstable();
    assert_eq!(targets, sorted);
    let kinds: std::collections::BTreeSet<&str> =
        lock.files.iter().map(|f| f.source.kind.as_str()).collect();
    assert_eq!(kinds, ["hub", "local", "url"].into_iter().collect());

    // Each sha256 and size is that of the bytes the pipeline folder gets.
    let folder = fetcher
        .download_diffusers_pipeline(&spec, &origin, &PullOptions::default())
        .await
        .expect("pull");
    let tree = read_tree(&folder.path);
    for file in &lock.files {
        if file.target.ends_with(".index.json") {
            continue; // rewritten in the folder; the lock pins the repo's bytes
        }
        let bytes = &tree[&file.target];
        assert_eq!(file.size, bytes.len() as u64, "{}", file.target);
        assert_eq!(file.sha256, sha256_hex(bytes), "{}", file.target);
    }
    let hub_file = lock
        .files
        .iter()
        .find(|f| f.target == "vae/diffusion_pytorch_model.safetensors")
        .expect("vae");
    assert_eq!(hub_file.source.fields["repo"], "acme/vae-fix");
    assert_eq!(hub_file.source.fields["revision"], "main");
    assert_eq!(
        hub_file.source.fields["commit"],
        w.hub.commit("acme/vae-fix").expect("commit").as_str()
    );
    assert_eq!(
        lock.model_index["safety_checker"],
        serde_json::json!([null, null])
    );
}

#[tokio::test]
async fn a_locked_pull_elsewhere_gets_the_same_bytes_with_no_resolution_and_a_warm_one_no_request()
{
    let w = World::new().await;
    let yaml = mixed_spec(&w);
    let (spec, origin) = w.spec("mixed", &yaml);
    let first = w.fetcher(false);
    let lock = first.lock(&spec, &origin, &yaml).await.expect("lock");
    let here = first
        .download_diffusers_pipeline(&spec, &origin, &PullOptions::default())
        .await
        .expect("pull");

    // A second machine: another HF_HOME, only the lock.
    let other = tempfile::tempdir().expect("tempdir");
    let second = w.builder_in(other.path(), false).build().expect("fetcher");
    w.hub.log().clear();
    lock.check_spec(&yaml).expect("the spec is the locked one");
    let there = second
        .pull_locked(&lock, &PullOptions::default())
        .await
        .expect("locked pull");
    assert_eq!(names(&there.path), names(&here.path));
    let (a, b) = (read_tree(&there.path), read_tree(&here.path));
    let differ: Vec<String> = names(&here.path)
        .into_iter()
        .filter(|n| a.get(n) != b.get(n))
        .collect();
    assert!(differ.is_empty(), "other bytes in {differ:?}");
    let routes: Vec<Route> = w.hub.log().entries().iter().map(|e| e.route).collect();
    assert!(
        !routes
            .iter()
            .any(|r| matches!(r, Route::ApiRepo | Route::ApiTree | Route::ApiPathsInfo)),
        "a locked pull resolves nothing: {routes:?}"
    );
    // huggingface_hub resolves `main` offline from refs/main: a locked pull writes it.
    let refs_main = other.path().join("hub/models--acme--vae-fix/refs/main");
    assert_eq!(
        std::fs::read_to_string(refs_main).expect("refs/main"),
        w.hub.commit("acme/vae-fix").expect("commit")
    );

    w.hub.log().clear();
    let warm = second
        .pull_locked(&lock, &PullOptions::default())
        .await
        .expect("warm locked pull");
    assert_eq!(warm.downloaded_bytes, 0);
    assert_eq!(
        w.hub.log().entries(),
        vec![],
        "a warm locked pull makes no request"
    );

    let check = second
        .is_available_locked(&lock, true)
        .await
        .expect("check");
    assert!(check.available, "{:?}", check.problems);
    assert_eq!(w.hub.log().entries(), vec![]);
}

#[tokio::test]
async fn a_lock_refuses_an_edited_spec_and_other_bytes_behind_a_url() {
    let w = World::new().await;
    let yaml = mixed_spec(&w);
    let (spec, origin) = w.spec("mixed", &yaml);
    let fetcher = w.fetcher(false);
    let lock = fetcher.lock(&spec, &origin, &yaml).await.expect("lock");

    let edited = format!("{yaml}# a comment is an edit too\n");
    let refused = lock.check_spec(&edited).expect_err("edited");
    assert!(
        refused.to_string().contains("changed since it was locked"),
        "{refused}"
    );
    assert!(refused.hint().expect("hint").contains("pipefetch lock"));

    // The URL serves other bytes than were locked (here: the lock says other bytes).
    let mut tampered = lock.clone();
    let vocab = tampered
        .files
        .iter_mut()
        .find(|f| f.target == "tokenizer/vocab.json")
        .expect("vocab");
    let locked_sha = vocab.sha256.clone();
    vocab.sha256 = "0".repeat(64);
    let other = tempfile::tempdir().expect("tempdir");
    let second = w.builder_in(other.path(), false).build().expect("fetcher");
    let error = second
        .pull_locked(&tampered, &PullOptions::default())
        .await
        .expect_err("other bytes");
    assert!(
        matches!(&error, Error::PinMismatch { actual, .. } if *actual == locked_sha),
        "{error:?}"
    );

    // A version this pipefetch does not read, and a file that is not a lock.
    let newer = lock
        .to_json()
        .replacen("\"version\": 1", "\"version\": 2", 1);
    let error = Lock::from_json(newer.as_bytes()).expect_err("v2");
    assert!(error.to_string().contains("lockfile version 2"), "{error}");
    assert!(Lock::from_json(b"{}").is_err());
    let escaping = lock
        .to_json()
        .replacen("\"target\": \"", "\"target\": \"../", 1);
    assert!(Lock::from_json(escaping.as_bytes()).is_err());
}

/// Issue 9: a presigned lock's `mirror_url`s are bearer credentials; a locked pull keeps its lock
/// in the cache for `check`, without them.
#[tokio::test]
async fn a_locked_pull_keeps_its_lock_without_the_mirror_urls() {
    let w = World::new().await;
    let yaml = mixed_spec(&w);
    let (spec, origin) = w.spec("mixed", &yaml);
    let mut lock = w
        .fetcher(false)
        .lock(&spec, &origin, &yaml)
        .await
        .expect("lock");
    // URLs the mirror lacks (404 from hub-server): every file comes from its origin.
    for file in &mut lock.files {
        file.mirror_url = Some(format!(
            "{}/fleet/blobs/sha256/{}?X-Amz-Signature=s3cr3tsignature&X-Amz-Security-Token=s3cr3ttoken",
            w.hub.url(),
            file.sha256
        ));
    }
    let other = tempfile::tempdir().expect("tempdir");
    let second = w.builder_in(other.path(), false).build().expect("fetcher");
    second
        .pull_locked(&lock, &PullOptions::default())
        .await
        .expect("locked pull");
    let kept_dir = other.path().join("pipefetch/locks-v1");
    let kept: Vec<_> = std::fs::read_dir(&kept_dir)
        .expect("kept locks")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let text = std::fs::read_to_string(&kept[0]).expect("kept lock");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(!text.contains("mirror_url"), "{text}");
    let mut without = lock.clone();
    for file in &mut without.files {
        file.mirror_url = None;
    }
    assert_eq!(Lock::from_json(text.as_bytes()).expect("a lock"), without);
    // `check` still answers from it.
    let loaded = second
        .load_spec(
            &w.specs.path().join("mixed.yaml").to_string_lossy(),
            "main",
            true,
        )
        .await
        .expect("spec");
    let available = second.is_available(&loaded, false).await.expect("check");
    assert!(available.available, "{:?}", available.problems);
}
