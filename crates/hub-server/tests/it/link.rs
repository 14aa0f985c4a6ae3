//! The CDN link: the per-connection rate cap, the added latency, random seeded faults, and the
//! control route that sets them. No assertion here depends on the machine being fast: the
//! pacing is checked through the server's own counters of what it waited for, plus lower
//! bounds on elapsed time that no scheduler can break.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes};
use pipefetch_hub_server::{FaultAction, FaultMix, HubServer, LoggedRequest, Route};

use crate::*;

const WEIGHTS: &str = "w.safetensors";
const LEN: usize = 400_000;

/// A repo with one LFS file of `LEN` bytes, and the server over it built by `configure`.
async fn link_server(
    configure: impl FnOnce(
        pipefetch_hub_server::HubServerBuilder,
    ) -> pipefetch_hub_server::HubServerBuilder,
) -> (tempfile::TempDir, HubServer, String) {
    let root = tempfile::tempdir().unwrap();
    RepoBuilder::new(root.path(), "models", "org/link")
        .random_file(WEIGHTS, 9, LEN as u64)
        .build()
        .unwrap();
    let hub = configure(HubServer::builder(root.path()))
        .start()
        .await
        .unwrap();
    let r = head(&format!("{}/org/link/resolve/main/{WEIGHTS}", hub.url())).await;
    let cdn = r.header("location").expect("LFS redirect").to_owned();
    (root, hub, cdn)
}

fn cdn_entries(hub: &HubServer) -> Vec<LoggedRequest> {
    hub.log()
        .entries()
        .into_iter()
        .filter(|e| e.route == Route::Cdn && e.method == "GET")
        .collect()
}

/// GETs `url` with a `Range`, on a fresh connection.
async fn get_range(url: &str, start: usize, end: usize) -> Reply {
    send(
        "GET",
        url,
        &[("range", &format!("bytes={start}-{end}"))],
        None,
    )
    .await
}

#[tokio::test]
async fn the_rate_cap_paces_a_connection() {
    const RATE: u64 = 400_000;
    let (_root, hub, cdn) = link_server(|b| b.cdn_rate(RATE)).await;
    let started = Instant::now();
    let r = get(&cdn).await;
    let elapsed = started.elapsed();
    assert_eq!(r.body, random_bytes(9, LEN));
    let stats = hub.link_stats();
    assert!(stats.bytes_written > LEN as u64, "{stats:?}");
    // Writes are at most a hundredth of a second's worth, a hundred of them, and the server
    // itself waited before most (the socket would have taken them all at once). How many
    // and how long depends on scheduling, so the bound is loose: a server that did not pace
    // waits none.
    assert!(stats.pauses >= 10, "{stats:?}");
    // LEN / RATE = 1 s, less one slice of credit. A bound the other way round could flake on
    // a loaded machine; this one cannot.
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert_eq!(cdn_entries(&hub)[0].sent, LEN as u64);
}

#[tokio::test]
async fn the_cap_is_per_connection_and_concurrency_is_counted() {
    let (_root, hub, cdn) = link_server(|b| b.cdn_rate(1_000_000)).await;
    let half = LEN / 2;
    let (a, b) = tokio::join!(get_range(&cdn, 0, half - 1), get_range(&cdn, half, LEN - 1));
    let content = random_bytes(9, LEN);
    assert_eq!(a.body, content[..half]);
    assert_eq!(b.body, content[half..]);
    let stats = hub.link_stats();
    assert_eq!(stats.connections, 2, "{stats:?}");
    assert_eq!(stats.peak_open, 2, "{stats:?}");
    assert_eq!(stats.peak_bodies, 2, "{stats:?}");
    // Both connections were paced.
    assert!(stats.pauses >= 10, "{stats:?}");
    let entries = cdn_entries(&hub);
    assert_ne!(entries[0].connection, entries[1].connection);
    assert_eq!(entries.iter().map(|e| e.sent).sum::<u64>(), LEN as u64);
    assert_eq!(hub.log().sent(Route::Cdn), LEN as u64);
}

#[tokio::test]
async fn latency_delays_each_connection_and_each_response() {
    let (_root, hub, cdn) = link_server(|b| b.cdn_latency(Duration::from_millis(60))).await;
    let uri: http::Uri = cdn.parse().unwrap();
    let authority = uri.authority().unwrap().clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let started = Instant::now();
    for round in 1..=2u64 {
        let req = http::Request::get(uri.path_and_query().unwrap().as_str())
            .header("host", authority.as_str())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), LEN);
        // One wait for the new connection, then one per response on it.
        assert_eq!(hub.link_stats().latency_waits, 1 + round);
    }
    assert!(started.elapsed() >= Duration::from_millis(180));
    let entries = cdn_entries(&hub);
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].connection, entries[1].connection,
        "kept alive, one connection"
    );
}

#[tokio::test]
async fn mixed_faults_are_seeded_logged_and_cut_where_logged() {
    let mix = FaultMix::parse("cut=0.5").unwrap().seed(7);
    let (_root, hub, cdn) = link_server(|b| b.cdn_faults(mix.clone())).await;
    let content = random_bytes(9, LEN);
    let ranges: Vec<(usize, usize)> = (0..16).map(|i| (i * 1000, i * 1000 + 9999)).collect();
    let mut cut_at = Vec::new();
    for &(start, end) in &ranges {
        let r = get_range(&cdn, start, end).await;
        let entry = cdn_entries(&hub).pop().unwrap();
        match entry.fault_action {
            Some(FaultAction::CutAfter { bytes }) => {
                assert_eq!(entry.fault.as_deref(), Some("cut_after"));
                assert_eq!(entry.fault_source.as_deref(), Some("mix"));
                assert!(r.body_error.is_some());
                assert_eq!(r.body, content[start..start + bytes as usize]);
                assert_eq!(entry.sent, bytes);
                cut_at.push(Some(bytes));
            }
            None => {
                assert_eq!(r.body, content[start..=end]);
                assert_eq!(entry.sent, 10_000);
                cut_at.push(None);
            }
            other => panic!("unexpected fault {other:?}"),
        }
    }
    let cuts = cut_at.iter().filter(|c| c.is_some()).count();
    assert!((2..=14).contains(&cuts), "{cut_at:?}");

    // The same seed over the same requests, in reverse order: the same faults at the same bytes.
    hub.set_cdn_faults(Some(mix));
    let mut again = Vec::new();
    for &(start, end) in ranges.iter().rev() {
        get_range(&cdn, start, end).await;
        again.push(match cdn_entries(&hub).pop().unwrap().fault_action {
            Some(FaultAction::CutAfter { bytes }) => Some(bytes),
            _ => None,
        });
    }
    again.reverse();
    assert_eq!(again, cut_at);

    // Another seed draws otherwise.
    hub.set_cdn_faults(Some(FaultMix::parse("cut=0.5").unwrap().seed(8)));
    let mut other = Vec::new();
    for &(start, end) in &ranges {
        get_range(&cdn, start, end).await;
        other.push(cdn_entries(&hub).pop().unwrap().fault_action.is_some());
    }
    assert_ne!(
        other,
        cut_at.iter().map(Option::is_some).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_retried_request_draws_again() {
    // With a 50 % chance per body, twelve draws of the same request all alike has odds 1/2048;
    // the seed is fixed, so this either always passes or never does.
    let mix = FaultMix::parse("cut=0.5").unwrap().seed(3);
    let (_root, hub, cdn) = link_server(|b| b.cdn_faults(mix)).await;
    for _ in 0..12 {
        get_range(&cdn, 0, 999).await;
    }
    let cut: Vec<bool> = cdn_entries(&hub)
        .iter()
        .map(|e| e.fault.is_some())
        .collect();
    assert!(cut.contains(&true) && cut.contains(&false), "{cut:?}");
}

#[tokio::test]
async fn stalls_and_trickles_from_the_mix_still_deliver_exact_bytes() {
    let (_root, hub, cdn) =
        link_server(|b| b.cdn_faults(FaultMix::parse("stall=1:50ms").unwrap().seed(1))).await;
    let r = get(&cdn).await;
    assert_eq!(r.body, random_bytes(9, LEN));
    let entry = cdn_entries(&hub).pop().unwrap();
    assert!(matches!(
        entry.fault_action,
        Some(FaultAction::StallAfter {
            millis: Some(50),
            ..
        })
    ));

    hub.set_cdn_faults(Some(FaultMix::parse("trickle=100%:20000").unwrap()));
    let r = get_range(&cdn, 100, 2099).await;
    assert_eq!(r.body, random_bytes(9, LEN)[100..2100]);
    assert_eq!(
        cdn_entries(&hub).pop().unwrap().fault_action,
        Some(FaultAction::Trickle {
            bytes_per_second: 20_000
        })
    );
}

#[tokio::test]
async fn queued_faults_come_before_the_mix() {
    let (_root, hub, cdn) = link_server(|b| b.cdn_faults(FaultMix::parse("cut=1").unwrap())).await;
    hub.faults().push(pipefetch_hub_server::Fault::flip_byte(0));
    let r = get_range(&cdn, 0, 9).await;
    let entry = cdn_entries(&hub).pop().unwrap();
    assert_eq!(entry.fault.as_deref(), Some("flip_byte"));
    assert_eq!(entry.fault_source.as_deref(), Some("queue"));
    assert_eq!(r.body.len(), 10);
    // A HEAD draws nothing; the next GET is cut by the mix.
    assert_eq!(head(&cdn).await.status, 200);
    let r = get(&cdn).await;
    assert!(r.body_error.is_some());
    assert_eq!(
        cdn_entries(&hub).pop().unwrap().fault_source.as_deref(),
        Some("mix")
    );
}

#[tokio::test]
async fn every_nth_connection_trickles() {
    let (_root, hub, cdn) = link_server(|b| b).await;
    hub.set_cdn_faults(Some(FaultMix::parse("trickle=1/3:100k").unwrap()));
    for _ in 0..6 {
        // Each request on a fresh connection, one after another: accept order is request order.
        let r = get_range(&cdn, 0, 999).await;
        assert_eq!(r.body, random_bytes(9, LEN)[..1000]);
    }
    let trickled: Vec<bool> = cdn_entries(&hub)
        .iter()
        .map(|e| e.fault.as_deref() == Some("trickle"))
        .collect();
    assert_eq!(trickled, [false, false, true, false, false, true]);
}

#[tokio::test]
async fn the_control_route_sets_and_reports_the_link() {
    let (_root, hub, cdn) = link_server(|b| b).await;
    let control = format!("{}/_control/link", hub.url());
    let post = |body: &'static str| {
        let control = control.clone();
        async move { send("POST", &control, &[], Some(body.as_bytes())).await }
    };
    let r = post(r#"{"rate":"2M","latency_ms":5,"faults":"cut=1","seed":3}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let link = get(&control).await.json();
    assert_eq!(link["rate"], 2_000_000);
    assert_eq!(link["latency_ms"], 5);
    assert_eq!(link["faults"], "cut=1");
    assert_eq!(link["seed"], 3);
    let r = get(&cdn).await;
    assert!(r.body_error.is_some(), "cut by the mix");
    let link = get(&control).await.json();
    assert_eq!(link["stats"]["connections"], 1);
    assert!(link["stats"]["latency_waits"].as_u64().unwrap() >= 2);

    // A bad body changes nothing.
    for bad in [
        r#"{"rate":"fast","latency_ms":9}"#,
        r#"{"faults":"boom=1"}"#,
        r#"{"rates":1}"#,
        "{nope",
    ] {
        let r = send("POST", &control, &[], Some(bad.as_bytes())).await;
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(get(&control).await.json()["latency_ms"], 5);

    let r = post(r#"{"rate":null,"faults":null,"latency_ms":0}"#).await;
    assert_eq!(r.status, 200);
    let link = r.json();
    assert_eq!(link["rate"], serde_json::Value::Null);
    assert_eq!(link["faults"], serde_json::Value::Null);
    let r = get(&cdn).await;
    assert_eq!(r.body, random_bytes(9, LEN));

    // The log over HTTP carries the new fields.
    let log = get(&format!("{}/_control/log", hub.url())).await.json();
    let cdn_gets: Vec<&serde_json::Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == "cdn" && e["method"] == "GET")
        .collect();
    assert_eq!(cdn_gets[0]["fault"], "cut_after");
    assert_eq!(cdn_gets[0]["fault_source"], "mix");
    assert_eq!(cdn_gets[0]["fault_action"]["kind"], "cut_after");
    assert_eq!(
        cdn_gets[0]["sent"], cdn_gets[0]["fault_action"]["bytes"],
        "sent up to the cut"
    );
    assert_eq!(cdn_gets[1]["sent"], LEN as u64);

    // Reset zeroes the counters.
    send("POST", &format!("{}/_control/reset", hub.url()), &[], None).await;
    assert_eq!(get(&control).await.json()["stats"]["connections"], 0);
}
