//! Tokens, gated repos, and the token never reaching the CDN.

use pipefetch_hub_server::fixture::RepoBuilder;
use pipefetch_hub_server::{HubServer, Route};

use crate::*;

async fn gated_server() -> (tempfile::TempDir, HubServer) {
    let root = tempfile::tempdir().unwrap();
    standard_repo(root.path());
    RepoBuilder::new(root.path(), "models", "org/gated")
        .file("config.json", CONFIG.to_vec())
        .random_file("model.safetensors", 3, 1000)
        .gated()
        .build()
        .unwrap();
    let hub = HubServer::builder(root.path())
        .token("secret")
        .start()
        .await
        .unwrap();
    (root, hub)
}

#[tokio::test]
async fn gated_repo_needs_the_token() {
    let (_root, hub) = gated_server().await;
    let url = format!("{}/org/gated/resolve/main/config.json", hub.url());
    let r = head(&url).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-error-code"), Some("GatedRepo"));
    let message = r.header("x-error-message").unwrap();
    assert!(
        message.contains(&format!("{}/org/gated", hub.url())),
        "{message}"
    );

    let r = send("HEAD", &url, &[("authorization", "Bearer wrong")], None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-error-code"), Some("GatedRepo"));
    assert!(
        r.header("x-error-message")
            .unwrap()
            .contains("accept the conditions")
    );

    let r = send("HEAD", &url, &[("authorization", "Bearer secret")], None).await;
    assert_eq!(r.status, 307);

    let info = send(
        "GET",
        &format!("{}/api/models/org/gated", hub.url()),
        &[("authorization", "Bearer secret")],
        None,
    )
    .await;
    let info = info.json();
    assert_eq!(info["gated"], "manual");
    let names: Vec<&str> = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rfilename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["config.json", "model.safetensors"],
        "the .gated marker is not a repo file"
    );
    assert_eq!(
        get(&format!("{}/api/models/org/gated/tree/main", hub.url()))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn wrong_token_on_public_repo_is_invalid_credentials() {
    let (_root, hub) = gated_server().await;
    let r = send(
        "HEAD",
        &format!("{}/org/name/resolve/main/config.json", hub.url()),
        &[("authorization", "Bearer wrong")],
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("x-error-message"),
        Some("Invalid credentials in Authorization header")
    );
    assert_eq!(r.header("x-error-code"), None);
    let r = send(
        "HEAD",
        &format!("{}/org/name/resolve/main/config.json", hub.url()),
        &[("authorization", "Bearer secret")],
        None,
    )
    .await;
    assert_eq!(r.status, 307);
    // A valid token on a missing repo: 404, not 401.
    let r = send(
        "GET",
        &format!("{}/api/models/org/none", hub.url()),
        &[("authorization", "Bearer secret")],
        None,
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn the_log_records_authorization_per_listener() {
    let (_root, hub) = gated_server().await;
    let auth = [("authorization", "Bearer secret")];
    let r = send(
        "HEAD",
        &format!("{}/org/gated/resolve/main/model.safetensors", hub.url()),
        &auth,
        None,
    )
    .await;
    assert_eq!(r.status, 302);
    // A well-behaved client drops the token on the cross-origin hop.
    let cdn = get(r.header("location").unwrap()).await;
    assert_eq!(cdn.status, 200);
    assert_eq!(
        cdn.body,
        pipefetch_hub_server::fixture::random_bytes(3, 1000)
    );
    let log = hub.log().entries();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].route, Route::Resolve);
    assert_eq!(log[0].authorization.as_deref(), Some("Bearer secret"));
    assert!(log[0].has_authorization());
    assert_eq!(log[1].route, Route::Cdn);
    assert!(!log[1].has_authorization());
    // The CDN neither needs nor checks a token; it only records one.
    let leaked = send(
        "GET",
        r.header("location").unwrap(),
        &[("authorization", "Bearer leaked")],
        None,
    )
    .await;
    assert_eq!(leaked.status, 200);
    assert_eq!(
        hub.log().entries()[2].authorization.as_deref(),
        Some("Bearer leaked")
    );
    hub.log().clear();
    assert!(hub.log().entries().is_empty());
}
