//! Fault injection, in-process and over the control routes.

use std::time::Duration;

use pipefetch_hub_server::fixture::random_bytes;
use pipefetch_hub_server::{Fault, Route};

use crate::*;

async fn cdn_url(hub: &pipefetch_hub_server::HubServer) -> String {
    let r = head(&format!(
        "{}/org/name/resolve/main/unet/diffusion_pytorch_model.safetensors",
        hub.url()
    ))
    .await;
    r.header("location").unwrap().to_owned()
}

#[tokio::test]
async fn status_faults_count_down() {
    let (_root, hub) = standard_server().await;
    hub.faults()
        .push(Fault::status(503).on(Route::Resolve).times(2));
    let url = format!("{}/org/name/resolve/main/config.json", hub.url());
    assert_eq!(head(&url).await.status, 503);
    // Other routes are not matched.
    assert_eq!(
        get(&format!("{}/api/models/org/name", hub.url()))
            .await
            .status,
        200
    );
    assert_eq!(head(&url).await.status, 503);
    assert_eq!(head(&url).await.status, 307);
    assert!(hub.faults().pending().is_empty());
    let faulted: Vec<_> = hub
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.fault.is_some())
        .collect();
    assert_eq!(faulted.len(), 2);
    assert_eq!(faulted[0].fault.as_deref(), Some("status"));
    assert_eq!(faulted[0].status, 503);
}

#[tokio::test]
async fn rate_limits() {
    let (_root, hub) = standard_server().await;
    hub.faults().push(Fault::retry_after(3));
    hub.faults()
        .push(Fault::rate_limit(7).path_contains("config.json"));
    let r = get(&format!("{}/api/models/org/name", hub.url())).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    // The path matcher skips this one.
    assert_eq!(
        get(&format!("{}/api/models/org/name", hub.url()))
            .await
            .status,
        200
    );
    let r = head(&format!("{}/org/name/resolve/main/config.json", hub.url())).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("ratelimit"), Some("\"resolvers\";r=0;t=7"));
}

#[tokio::test]
async fn cut_body_closes_the_connection_early() {
    let (_root, hub) = standard_server().await;
    let cdn = cdn_url(&hub).await;
    hub.faults().push(Fault::cut_after(1000).on(Route::Cdn));
    // A HEAD does not consume a body fault.
    assert_eq!(head(&cdn).await.status, 200);
    let r = get(&cdn).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5000"));
    assert_eq!(r.body, &random_bytes(1, 5000)[..1000]);
    assert!(
        r.body_error.is_some(),
        "the connection must end before Content-Length"
    );
    let r = get(&cdn).await;
    assert_eq!(r.body, random_bytes(1, 5000));
    assert!(r.body_error.is_none());
}

#[tokio::test]
async fn cut_on_a_range_counts_from_the_range_start() {
    let (_root, hub) = standard_server().await;
    let cdn = cdn_url(&hub).await;
    hub.faults().push(Fault::cut_after(10));
    let r = send("GET", &cdn, &[("range", "bytes=100-")], None).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &random_bytes(1, 5000)[100..110]);
    assert!(r.body_error.is_some());
}

#[tokio::test]
async fn stall_then_resume() {
    let (_root, hub) = standard_server().await;
    let cdn = cdn_url(&hub).await;
    hub.faults()
        .push(Fault::stall_after(100, Some(Duration::from_millis(50))));
    let r = get(&cdn).await;
    assert_eq!(r.body, random_bytes(1, 5000));
}

#[tokio::test]
async fn stall_forever_is_cut_by_shutdown() {
    let (_root, hub) = standard_server().await;
    let cdn = cdn_url(&hub).await;
    hub.faults().push(Fault::stall_after(100, None));
    let client = tokio::spawn(async move { get(&cdn).await });
    // Wait until the stalled request is in flight (its log entry is written with the headers).
    for _ in 0..200 {
        if hub.log().count(Route::Cdn) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hub.log().count(Route::Cdn), 1);
    hub.shutdown().await;
    let r = tokio::time::timeout(Duration::from_secs(5), client)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.body, &random_bytes(1, 5000)[..100]);
    assert!(r.body_error.is_some());
}

#[tokio::test]
async fn trickle_still_delivers_everything() {
    let root = tempfile::tempdir().unwrap();
    pipefetch_hub_server::fixture::RepoBuilder::new(root.path(), "models", "org/small")
        .random_file("w.safetensors", 4, 30)
        .build()
        .unwrap();
    let hub = pipefetch_hub_server::HubServer::builder(root.path())
        .start()
        .await
        .unwrap();
    let r = head(&format!(
        "{}/org/small/resolve/main/w.safetensors",
        hub.url()
    ))
    .await;
    hub.faults().push(Fault::trickle(100));
    let g = get(r.header("location").unwrap()).await;
    assert_eq!(g.body, random_bytes(4, 30));
    assert_eq!(
        hub.log().entries().last().unwrap().fault.as_deref(),
        Some("trickle")
    );
}

#[tokio::test]
async fn ignore_range_and_flip_byte() {
    let (_root, hub) = standard_server().await;
    let cdn = cdn_url(&hub).await;
    let content = random_bytes(1, 5000);
    hub.faults().push(Fault::ignore_range());
    let r = send("GET", &cdn, &[("range", "bytes=10-19")], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
    assert_eq!(r.header("content-range"), None);

    hub.faults().push(Fault::flip_byte(3));
    let r = send("GET", &cdn, &[("range", "bytes=10-19")], None).await;
    assert_eq!(r.status, 206);
    let mut expected = content[10..20].to_vec();
    expected[3] = !expected[3];
    assert_eq!(r.body, expected);
}

#[tokio::test]
async fn body_faults_on_the_hub_listener() {
    let (_root, hub) = standard_server().await;
    let commit = hub.commit("org/name").unwrap();
    hub.faults()
        .push(Fault::flip_byte(0).on(Route::ResolveCache));
    hub.faults().push(Fault::flip_byte(1).on(Route::Resolve));
    let r = get(&format!(
        "{}/org/name/resolve/{commit}/config.json",
        hub.url()
    ))
    .await;
    let mut expected = CONFIG.to_vec();
    expected[1] = !expected[1];
    assert_eq!(r.body, expected);
    let r = get(&format!(
        "{}/api/resolve-cache/models/org/name/{commit}/config.json",
        hub.url()
    ))
    .await;
    let mut expected = CONFIG.to_vec();
    expected[0] = !expected[0];
    assert_eq!(r.body, expected);
}

#[tokio::test]
async fn control_routes_over_http() {
    let (_root, hub) = standard_server().await;
    let faults = r#"[{"route":"api_repo","times":2,"action":{"kind":"status","status":500}},
                    {"path_contains":"config.json","method":"HEAD","action":{"kind":"retry_after","seconds":1}}]"#;
    let r = send(
        "POST",
        &format!("{}/_control/faults", hub.url()),
        &[("content-type", "application/json")],
        Some(faults.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["queued"], 2);
    let pending = get(&format!("{}/_control/faults", hub.url())).await.json();
    assert_eq!(pending.as_array().unwrap().len(), 2);
    assert_eq!(
        get(&format!("{}/api/models/org/name", hub.url()))
            .await
            .status,
        500
    );
    assert_eq!(
        head(&format!("{}/org/name/resolve/main/config.json", hub.url()))
            .await
            .status,
        429
    );

    let log = get(&format!("{}/_control/log", hub.url())).await.json();
    assert_eq!(log["counts"]["api_repo"], 1);
    assert_eq!(log["counts"]["resolve"], 1);
    assert_eq!(log["counts"]["control"], 2);
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries[2]["path"], "/api/models/org/name");
    assert_eq!(entries[2]["status"], 500);
    assert_eq!(entries[2]["fault"], "status");

    let single = r#"{"action":{"kind":"ignore_range"}}"#;
    let r = send(
        "POST",
        &format!("{}/_control/faults", hub.url()),
        &[],
        Some(single.as_bytes()),
    )
    .await;
    assert_eq!(r.json()["queued"], 1);
    let r = send(
        "POST",
        &format!("{}/_control/faults", hub.url()),
        &[],
        Some(b"{nope"),
    )
    .await;
    assert_eq!(r.status, 400);

    assert_eq!(
        send("POST", &format!("{}/_control/reset", hub.url()), &[], None)
            .await
            .status,
        200
    );
    assert!(hub.faults().pending().is_empty());
    // The reset itself is logged after the clear.
    assert_eq!(hub.log().entries().len(), 1);
    assert_eq!(
        get(&format!("{}/api/models/org/name", hub.url()))
            .await
            .status,
        200
    );
}
