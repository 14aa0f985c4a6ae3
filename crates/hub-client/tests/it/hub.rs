//! The client against `hub-server`, the project's Hub-compatible server: real Hub answers,
//! redirects to a second (CDN) port, pagination, error codes and injected faults.

use std::time::Duration;

use pipefetch_hub_client::{
    EntryKind, Error, HubClient, Repo, RetryPolicy, RetryReason, Token, Url,
};
use pipefetch_hub_server::faults::Fault;
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes};
use pipefetch_hub_server::{HubServer, Route};

use crate::{Recorder, builder, guard};

const WEIGHTS: &str = "unet/diffusion_pytorch_model.safetensors";
const WEIGHTS_LEN: usize = 300_000;

struct Setup {
    _root: tempfile::TempDir,
    hub: HubServer,
    repo: Repo,
}

async fn setup() -> Setup {
    let root = tempfile::tempdir().unwrap();
    RepoBuilder::new(root.path(), "models", "org/name")
        .file("model_index.json", br#"{"_class_name": "X"}"#.to_vec())
        .file("unet/config.json", br#"{"a": 1}"#.to_vec())
        .file("vae/config.json", br#"{"b": 2}"#.to_vec())
        .file("text_encoder/config.json", br#"{"c": 3}"#.to_vec())
        .random_file(WEIGHTS, 7, WEIGHTS_LEN as u64)
        .build()
        .unwrap();
    RepoBuilder::new(root.path(), "models", "org/gated")
        .file("config.json", b"{}".to_vec())
        .gated()
        .build()
        .unwrap();
    let hub = HubServer::builder(root.path())
        .token("secret")
        .page_size(2)
        .start()
        .await
        .unwrap();
    Setup {
        _root: root,
        hub,
        repo: Repo::model("org/name").unwrap(),
    }
}

fn client(hub: &HubServer) -> HubClient {
    builder(&hub.url())
        .token(Some(Token::new("secret")))
        .build()
        .unwrap()
}

#[tokio::test]
async fn metadata_tree_and_bytes_agree() {
    guard(async {
        let s = setup().await;
        let client = client(&s.hub);
        let commit = s.hub.commit("org/name").unwrap();

        let tree = client.list_tree(&s.repo, "main", None, true).await.unwrap();
        let mut files: Vec<&str> = tree
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.path.as_str())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "model_index.json",
                "text_encoder/config.json",
                "unet/config.json",
                WEIGHTS,
                "vae/config.json"
            ]
        );
        // Page size 2 over 5 files and their folders: at least 3 pages.
        assert!(s.hub.log().count(Route::ApiTree) >= 3);

        // A regular file: relative redirect to the resolve cache, followed.
        let cfg = client
            .file_metadata(&s.repo, "main", "unet/config.json")
            .await
            .unwrap();
        assert_eq!(cfg.commit, commit);
        assert_eq!(cfg.size, 8);
        assert!(!cfg.is_lfs);
        let entry = tree.iter().find(|e| e.path == "unet/config.json").unwrap();
        assert_eq!(cfg.etag, entry.etag());
        assert_eq!(s.hub.log().count(Route::ResolveCache), 1);
        let mut bytes = Vec::new();
        client
            .download(&cfg.location, 0.., &mut bytes)
            .await
            .unwrap();
        assert_eq!(bytes, br#"{"a": 1}"#);

        // An LFS file: an absolute redirect to the CDN port, read and not followed.
        s.hub.log().clear();
        let w = client
            .file_metadata(&s.repo, "main", WEIGHTS)
            .await
            .unwrap();
        assert!(w.is_lfs);
        assert_eq!(w.size, WEIGHTS_LEN as u64);
        let entry = tree.iter().find(|e| e.path == WEIGHTS).unwrap();
        assert_eq!(w.etag, entry.etag());
        assert_eq!(entry.lfs.as_ref().unwrap().sha256, w.etag);
        assert!(
            w.location.as_str().starts_with(&s.hub.cdn_url()),
            "{}",
            w.location
        );
        assert_eq!(s.hub.log().count(Route::Cdn), 0);

        let mut bytes = Vec::new();
        let out = client.download(&w.location, 0.., &mut bytes).await.unwrap();
        assert!(bytes == random_bytes(7, WEIGHTS_LEN));
        assert_eq!(out.total, Some(WEIGHTS_LEN as u64));

        // The token reached the Hub, never the CDN.
        let log = s.hub.log().entries();
        let resolve = log.iter().find(|e| e.route == Route::Resolve).unwrap();
        assert_eq!(resolve.authorization.as_deref(), Some("Bearer secret"));
        let cdn: Vec<_> = log.iter().filter(|e| e.route == Route::Cdn).collect();
        assert_eq!(cdn.len(), 1);
        assert!(cdn.iter().all(|e| e.authorization.is_none()));

        let info = client.repo_info(&s.repo, "main").await.unwrap();
        assert_eq!(info.sha, commit);
        assert_eq!(info.siblings.len(), 5);
    })
    .await;
}

#[tokio::test]
async fn errors_from_the_server() {
    guard(async {
        let s = setup().await;
        let anon = builder(&s.hub.url()).build().unwrap();
        let gated = Repo::model("org/gated").unwrap();
        let err = anon.file_metadata(&gated, "main", "config.json").await.unwrap_err();
        assert!(matches!(err, Error::GatedRepo { authenticated: false, .. }), "{err:?}");
        assert_eq!(
            err.hint().unwrap(),
            format!(
                "accept the conditions at {}/org/gated and set HF_TOKEN (or pass --token) with a token of that account",
                s.hub.url()
            )
        );
        // With the right token the gated file resolves.
        client(&s.hub)
            .file_metadata(&gated, "main", "config.json")
            .await
            .unwrap();

        let missing = Repo::model("org/missing").unwrap();
        let err = anon.file_metadata(&missing, "main", "x").await.unwrap_err();
        assert!(matches!(err, Error::RepoNotFound { authenticated: false, .. }), "{err:?}");

        let wrong = builder(&s.hub.url())
            .token(Some(Token::new("hf_not_the_right_one")))
            .build()
            .unwrap();
        let err = wrong.repo_info(&s.repo, "main").await.unwrap_err();
        assert!(matches!(err, Error::InvalidToken { .. }), "{err:?}");

        let c = client(&s.hub);
        let err = c.file_metadata(&s.repo, "v9", "unet/config.json").await.unwrap_err();
        assert_eq!(err.to_string(), "revision \"v9\" was not found in repository org/name");
        let err = c.file_metadata(&s.repo, "main", "nope.bin").await.unwrap_err();
        let Error::EntryNotFound { commit, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(commit.as_deref(), Some(s.hub.commit("org/name").unwrap().as_str()));
    })
    .await;
}

#[tokio::test]
async fn injected_faults_are_survived() {
    guard(async {
        let s = setup().await;
        let rec = Recorder::default();
        let client = builder(&s.hub.url())
            .token(Some(Token::new("secret")))
            .read_idle_timeout(Duration::from_millis(300))
            .on_retry(rec.observer())
            .build()
            .unwrap();

        s.hub
            .faults()
            .push(Fault::status(503).on(Route::Resolve).times(2));
        s.hub.faults().push(Fault::rate_limit(5).on(Route::Resolve));
        let w = client
            .file_metadata(&s.repo, "main", WEIGHTS)
            .await
            .unwrap();
        assert_eq!(s.hub.log().count(Route::Resolve), 4);
        let waits: Vec<_> = rec
            .events()
            .iter()
            .map(|e| (e.reason.clone(), e.wait))
            .collect();
        assert_eq!(waits[2], (RetryReason::Status(429), Duration::from_secs(5)));

        // A cut body, then a stall, then a server that ignores Range: the bytes still match.
        s.hub.log().clear();
        s.hub
            .faults()
            .push(Fault::cut_after(100_000).on(Route::Cdn));
        s.hub
            .faults()
            .push(Fault::stall_after(50_000, None).on(Route::Cdn));
        s.hub.faults().push(Fault::ignore_range().on(Route::Cdn));
        let mut bytes = Vec::new();
        let out = client.download(&w.location, 0.., &mut bytes).await.unwrap();
        assert!(bytes == random_bytes(7, WEIGHTS_LEN));
        assert!(out.restarted);
        assert_eq!(out.resumes, 2);
        let cdn: Vec<_> = s
            .hub
            .log()
            .entries()
            .into_iter()
            .filter(|e| e.route == Route::Cdn)
            .collect();
        let ranges: Vec<Option<&str>> = cdn.iter().map(|e| e.range.as_deref()).collect();
        assert_eq!(ranges, [None, Some("bytes=100000-"), Some("bytes=150000-")]);
        let faults: Vec<Option<&str>> = cdn.iter().map(|e| e.fault.as_deref()).collect();
        assert_eq!(
            faults,
            [Some("cut_after"), Some("stall_after"), Some("ignore_range")]
        );
    })
    .await;
}

#[tokio::test]
async fn trickle_from_the_server_is_a_stall() {
    guard(async {
        let s = setup().await;
        let client = builder(&s.hub.url())
            .min_rate(20_000, Duration::from_millis(500))
            .retry(RetryPolicy::never())
            .build()
            .unwrap();
        s.hub.faults().push(Fault::trickle(1000).on(Route::Cdn));
        let w = client
            .file_metadata(&s.repo, "main", WEIGHTS)
            .await
            .unwrap();
        let mut bytes = Vec::new();
        let err = client
            .download(&w.location, 0.., &mut bytes)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Stalled { bytes: 20_000, .. }),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn offline_never_reaches_the_server() {
    let s = setup().await;
    let client = builder(&s.hub.url()).offline(true).build().unwrap();
    assert!(matches!(
        client.file_metadata(&s.repo, "main", WEIGHTS).await,
        Err(Error::Offline { .. })
    ));
    assert!(matches!(
        client.list_tree(&s.repo, "main", None, true).await,
        Err(Error::Offline { .. })
    ));
    let mut sink = Vec::new();
    let url = Url::parse(&format!("{}/repos/x", s.hub.cdn_url())).unwrap();
    assert!(client.download(&url, 0.., &mut sink).await.is_err());
    assert_eq!(s.hub.log().entries().len(), 0);
}
