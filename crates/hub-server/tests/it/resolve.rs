//! Resolve, resolve-cache and CDN routes.

use pipefetch_hub_server::Route;
use pipefetch_hub_server::fixture::random_bytes;

use crate::*;

#[tokio::test]
async fn regular_file_on_main_redirects_relative_then_serves() {
    let (_root, hub) = standard_server().await;
    let commit = hub.commit("org/name").unwrap();
    let r = head(&format!("{}/org/name/resolve/main/config.json", hub.url())).await;
    assert_eq!(r.status, 307);
    let sha1 = git_blob_sha1(CONFIG);
    assert_eq!(
        r.header("location").unwrap(),
        format!("/api/resolve-cache/models/org/name/{commit}/config.json?etag=%22{sha1}%22")
    );
    assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
    assert_eq!(r.header("etag"), Some(format!("\"{sha1}\"").as_str()));
    assert!(
        r.header("ratelimit")
            .unwrap()
            .starts_with("\"resolvers\";r=")
    );
    assert!(r.header("x-request-id").is_some());

    let target = format!("{}{}", hub.url(), r.header("location").unwrap());
    let h = head(&target).await;
    assert_eq!(h.status, 200);
    assert_eq!(
        h.header("content-length"),
        Some(CONFIG.len().to_string().as_str())
    );
    assert_eq!(h.header("etag"), Some(format!("\"{sha1}\"").as_str()));
    assert_eq!(h.header("x-repo-commit"), Some(commit.as_str()));
    assert!(h.body.is_empty());
    let g = get(&target).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, CONFIG);
    assert_eq!(hub.log().count(Route::Resolve), 1);
    assert_eq!(hub.log().count(Route::ResolveCache), 2);
}

#[tokio::test]
async fn regular_file_on_commit_is_served_directly() {
    let (_root, hub) = standard_server().await;
    let commit = hub.commit("org/name").unwrap();
    let r = get(&format!(
        "{}/org/name/resolve/{commit}/unet/config.json",
        hub.url()
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"unet\": true}");
    assert_eq!(
        r.header("etag").unwrap(),
        format!("\"{}\"", git_blob_sha1(b"{\"unet\": true}"))
    );
    assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
}

#[tokio::test]
async fn special_characters_in_paths() {
    let (_root, hub) = standard_server().await;
    let commit = hub.commit("org/name").unwrap();
    let encoded = "sub%20dir/file%20name%20%231%20%C3%A9.txt";
    let r = head(&format!("{}/org/name/resolve/main/{encoded}", hub.url())).await;
    assert_eq!(r.status, 307);
    let location = r.header("location").unwrap().to_owned();
    assert!(
        location.starts_with(&format!(
            "/api/resolve-cache/models/org/name/{commit}/{encoded}?"
        )),
        "{location}"
    );
    let g = get(&format!("{}{location}", hub.url())).await;
    assert_eq!(g.body, b"special");
    let g = get(&format!(
        "{}/org/name/resolve/{commit}/{encoded}",
        hub.url()
    ))
    .await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, b"special");
    let _ = SPECIAL;
}

#[tokio::test]
async fn lfs_file_redirects_to_cdn_with_linked_headers() {
    let (_root, hub) = standard_server().await;
    let commit = hub.commit("org/name").unwrap();
    let content = random_bytes(1, 5000);
    let sha = sha256(&content);
    for rev in ["main", commit.as_str()] {
        let url = format!(
            "{}/org/name/resolve/{rev}/unet/diffusion_pytorch_model.safetensors",
            hub.url()
        );
        for method in ["HEAD", "GET"] {
            let r = send(method, &url, &[], None).await;
            assert_eq!(r.status, 302);
            assert_eq!(
                r.header("x-linked-etag"),
                Some(format!("\"{sha}\"").as_str())
            );
            assert_eq!(r.header("x-linked-size"), Some("5000"));
            assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
            assert_ne!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));
            let len: usize = r.header("content-length").unwrap().parse().unwrap();
            assert_ne!(len, 5000, "the redirect's own length is not the file size");
            if method == "GET" {
                assert_eq!(r.body.len(), len);
            }
            let location = r.header("location").unwrap();
            assert!(
                location.starts_with(&format!("{}/repos/{sha}?", hub.cdn_url())),
                "{location}"
            );
        }
    }
    let r = head(&format!(
        "{}/org/name/resolve/main/unet/diffusion_pytorch_model.safetensors",
        hub.url()
    ))
    .await;
    let cdn = r.header("location").unwrap().to_owned();
    let g = get(&cdn).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, content);
    assert_eq!(g.header("accept-ranges"), Some("bytes"));
    let h = head(&cdn).await;
    assert_eq!(h.header("content-length"), Some("5000"));
    assert!(h.body.is_empty());
    assert_eq!(hub.log().count(Route::Cdn), 2);
}

#[tokio::test]
async fn cdn_ranges() {
    let (_root, hub) = standard_server().await;
    let content = random_bytes(1, 5000);
    let r = head(&format!(
        "{}/org/name/resolve/main/unet/diffusion_pytorch_model.safetensors",
        hub.url()
    ))
    .await;
    let cdn = r.header("location").unwrap().to_owned();
    let cases: &[(&str, usize, usize)] = &[
        ("bytes=10-19", 10, 19),
        ("bytes=4990-", 4990, 4999),
        ("bytes=-7", 4993, 4999),
        ("bytes=0-99999", 0, 4999),
    ];
    for (range, a, b) in cases {
        let g = send("GET", &cdn, &[("range", range)], None).await;
        assert_eq!(g.status, 206, "{range}");
        assert_eq!(g.body, &content[*a..=*b], "{range}");
        assert_eq!(
            g.header("content-range").unwrap(),
            format!("bytes {a}-{b}/5000")
        );
    }
    let g = send("GET", &cdn, &[("range", "bytes=5000-")], None).await;
    assert_eq!(g.status, 416);
    assert_eq!(g.header("content-range"), Some("bytes */5000"));
    let log = hub.log().entries();
    let last = log.last().unwrap();
    assert_eq!(last.route, Route::Cdn);
    assert_eq!(last.range.as_deref(), Some("bytes=5000-"));
    assert_eq!(last.status, 416);
}

#[tokio::test]
async fn cdn_rejects_tampered_links() {
    let (_root, hub) = standard_server().await;
    let r = head(&format!(
        "{}/org/name/resolve/main/unet/diffusion_pytorch_model.safetensors",
        hub.url()
    ))
    .await;
    let cdn = r.header("location").unwrap().to_owned();
    let tampered = cdn.replace("file=unet", "file=vae");
    assert_eq!(get(&tampered).await.status, 403);
    assert_eq!(
        get(&format!("{}/repos/abc", hub.cdn_url())).await.status,
        404
    );
}

#[tokio::test]
async fn errors_carry_hub_codes() {
    let (_root, hub) = standard_server().await;
    let commit = hub.commit("org/name").unwrap();
    let r = head(&format!("{}/org/name/resolve/main/nope.txt", hub.url())).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-error-code"), Some("EntryNotFound"));
    assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));

    let r = get(&format!("{}/org/name/resolve/v2/config.json", hub.url())).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-error-code"), Some("RevisionNotFound"));
    let r = get(&format!(
        "{}/org/name/resolve/refs%2Fpr%2F1/config.json",
        hub.url()
    ))
    .await;
    assert_eq!(r.header("x-error-code"), Some("RevisionNotFound"));

    // Anonymous: a missing repo looks like a private one (401).
    let r = get(&format!(
        "{}/org/missing/resolve/main/config.json",
        hub.url()
    ))
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
    assert_eq!(r.json()["error"], "Repository not found");
    let r = send(
        "GET",
        &format!("{}/org/missing/resolve/main/config.json", hub.url()),
        &[("authorization", "Bearer anything")],
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));

    let r = get(&format!("{}/org/name/resolve/main/%2E%2E/x", hub.url())).await;
    assert_eq!(r.status, 400);
    let r = get(&format!(
        "{}/org/name/resolve/main/unet/..%2F..%2Fx",
        hub.url()
    ))
    .await;
    assert_eq!(r.status, 400);
    let r = get(&format!("{}/nothing/here", hub.url())).await;
    assert_eq!(r.status, 404);
    assert_eq!(hub.log().count(Route::Other), 3);
}

#[tokio::test]
async fn datasets_are_served_under_their_prefix() {
    let root = tempfile::tempdir().unwrap();
    pipefetch_hub_server::fixture::RepoBuilder::new(root.path(), "datasets", "org/data")
        .file("train.csv", b"a,b\n1,2\n".to_vec())
        .random_file("data.parquet", 5, 100)
        .build()
        .unwrap();
    let hub = HubServer::builder(root.path()).start().await.unwrap();
    let commit = hub.commit_of("datasets", "org/data").unwrap();
    let r = head(&format!(
        "{}/datasets/org/data/resolve/main/train.csv",
        hub.url()
    ))
    .await;
    assert_eq!(r.status, 307);
    assert!(r.header("location").unwrap().starts_with(&format!(
        "/api/resolve-cache/datasets/org/data/{commit}/train.csv"
    )));
    let g = get(&format!("{}{}", hub.url(), r.header("location").unwrap())).await;
    assert_eq!(g.body, b"a,b\n1,2\n");
    let r = head(&format!(
        "{}/datasets/org/data/resolve/main/data.parquet",
        hub.url()
    ))
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        get(r.header("location").unwrap()).await.body,
        random_bytes(5, 100)
    );
    // The model namespace does not see it.
    assert_eq!(
        head(&format!("{}/org/data/resolve/main/train.csv", hub.url()))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn commit_follows_content() {
    let (root, hub) = standard_server().await;
    let before = hub.commit("org/name").unwrap();
    assert_eq!(before, hub.commit("org/name").unwrap());
    assert!(
        before
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    std::fs::write(root.path().join("models/org/name/new.txt"), b"x").unwrap();
    let after = hub.commit("org/name").unwrap();
    assert_ne!(before, after);
    // The old commit is no longer a revision.
    let r = head(&format!(
        "{}/org/name/resolve/{before}/config.json",
        hub.url()
    ))
    .await;
    assert_eq!(r.header("x-error-code"), Some("RevisionNotFound"));
    hub.shutdown().await;
}

#[tokio::test]
async fn if_none_match_answers_304() {
    let (_root, hub) = standard_server().await;
    let commit = hub.commit("org/name").unwrap();
    let sha1 = git_blob_sha1(CONFIG);
    let url = format!("{}/org/name/resolve/main/config.json", hub.url());
    let r = send(
        "HEAD",
        &url,
        &[("if-none-match", &format!("\"{sha1}\""))],
        None,
    )
    .await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(format!("\"{sha1}\"").as_str()));
    assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
    let r = send("HEAD", &url, &[("if-none-match", "\"0000\"")], None).await;
    assert_eq!(r.status, 307);
    let sha = sha256(&random_bytes(1, 5000));
    let url = format!(
        "{}/org/name/resolve/main/unet/diffusion_pytorch_model.safetensors",
        hub.url()
    );
    let r = send(
        "GET",
        &url,
        &[("if-none-match", &format!("W/\"{sha}\""))],
        None,
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn cdn_is_another_host_name() {
    let (_root, hub) = standard_server().await;
    // Clients compare host names, not ports, to decide what is cross-origin.
    assert!(hub.url().starts_with("http://127.0.0.1:"));
    assert!(hub.cdn_url().starts_with("http://localhost:"));
    let root = tempfile::tempdir().unwrap();
    standard_repo(root.path());
    let hub = HubServer::builder(root.path())
        .cdn_host("127.0.0.1")
        .start()
        .await
        .unwrap();
    assert!(hub.cdn_url().starts_with("http://127.0.0.1:"));
    let r = head(&format!(
        "{}/org/name/resolve/main/unet/diffusion_pytorch_model.safetensors",
        hub.url()
    ))
    .await;
    assert_eq!(
        get(r.header("location").unwrap()).await.body,
        random_bytes(1, 5000)
    );
}
