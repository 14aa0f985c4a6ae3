//! hf_hub_download equivalent: cache hits without requests, errors, auth.

use pipefetch_fetcher::{Error, FileRequest};
use pipefetch_hub_client::Repo;

use crate::support::{Setup, TOKEN};

fn file(path: &str) -> FileRequest {
    FileRequest::new(Repo::model("acme/tiny").expect("repo id"), path)
}

#[tokio::test]
async fn a_file_cached_at_a_commit_costs_no_request() {
    let s = Setup::new().await;
    let path = s
        .fetcher()
        .download_file(&file("unet/config.json"))
        .await
        .expect("cold");
    assert_eq!(path, s.snapshot_dir().join("unet/config.json"));
    assert_eq!(
        std::fs::read(&path).expect("read"),
        s.files["unet/config.json"]
    );
    // Relative symlink into blobs/, named by the git blob id.
    let target = std::fs::read_link(&path).expect("symlink");
    assert!(
        target.starts_with("../../../blobs/"),
        "{}",
        target.display()
    );

    s.hub.log().clear();
    let again = s
        .fetcher()
        .download_file(&file("unet/config.json").revision(s.commit()))
        .await
        .expect("warm");
    assert_eq!(again, path);
    assert_eq!(s.hub.log().entries(), vec![]);

    // On a branch: exactly one HEAD, no body.
    let again = s
        .fetcher()
        .download_file(&file("unet/config.json"))
        .await
        .expect("warm main");
    assert_eq!(again, path);
    let entries = s.hub.log().entries();
    assert!(entries.iter().all(|e| e.method == "HEAD"), "{entries:?}");
}

#[tokio::test]
async fn awkward_names_and_subfolders() {
    let s = Setup::new().await;
    let p = s
        .fetcher()
        .download_file(&file("docs/a file #1.txt"))
        .await
        .expect("space and hash");
    assert_eq!(
        std::fs::read(p).expect("read"),
        s.files["docs/a file #1.txt"]
    );
    let mut req = file("diffusion_pytorch_model.safetensors");
    req.subfolder = Some("vae".into());
    let p = s.fetcher().download_file(&req).await.expect("subfolder");
    assert_eq!(
        std::fs::read(p).expect("read"),
        s.files["vae/diffusion_pytorch_model.safetensors"]
    );
    let p = s
        .fetcher()
        .download_file(&file("empty.txt"))
        .await
        .expect("empty");
    assert_eq!(std::fs::read(p).expect("read"), Vec::<u8>::new());
}

#[tokio::test]
async fn missing_file_is_remembered_in_no_exist() {
    let s = Setup::new().await;
    let err = s
        .fetcher()
        .download_file(&file("nope.json"))
        .await
        .expect_err("missing");
    let text = pipefetch_fetcher::render_chain(&err);
    assert!(text.contains("nope.json"), "{text}");
    let marker = s
        .cache_dir()
        .join("models--acme--tiny/.no_exist")
        .join(s.commit())
        .join("nope.json");
    assert!(marker.is_file());
}

#[tokio::test]
async fn hostile_paths_are_refused_before_any_request() {
    let s = Setup::new().await;
    for bad in ["../escape", "/etc/passwd", "a//b", "a/../../b"] {
        let err = s.fetcher().download_file(&file(bad)).await.expect_err(bad);
        assert!(matches!(err, Error::Cache(_)), "{bad}: {err}");
    }
    assert_eq!(s.hub.log().entries(), vec![]);
}

#[tokio::test]
async fn gated_repo_errors_say_what_to_do_and_the_token_never_reaches_the_cdn() {
    let s = Setup::new().await;
    let req = FileRequest::new(Repo::model("acme/gated").expect("id"), "config.json");
    let err = s.fetcher().download_file(&req).await.expect_err("no token");
    let hint = err.hint().unwrap_or_default();
    assert!(hint.contains("acme/gated"), "{hint}");
    let with_token = s.fetcher_with(s.client(Some(TOKEN)), false);
    with_token.download_file(&req).await.expect("with token");

    let big = file("big.safetensors");
    with_token
        .download_file(&big)
        .await
        .expect("big with token");
    let cdn = crate::support::cdn_requests(&s.hub);
    assert!(!cdn.is_empty());
    assert!(cdn.iter().all(|e| e.authorization.is_none()), "{cdn:?}");
}

#[tokio::test]
async fn offline_download_answers_from_the_cache_only() {
    let s = Setup::new().await;
    s.fetcher()
        .download_file(&file("vae/config.json"))
        .await
        .expect("cold");
    s.hub.log().clear();
    let offline = s.fetcher_with(s.client(None), true);
    offline
        .download_file(&file("vae/config.json"))
        .await
        .expect("cached");
    let err = offline
        .download_file(&file("unet/config.json"))
        .await
        .expect_err("not cached");
    assert!(matches!(err, Error::NotCached { .. }), "{err}");
    assert_eq!(s.hub.log().entries(), vec![]);
}
