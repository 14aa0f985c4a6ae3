//! Retry behaviour: counts, server hints, the final error.

use std::time::Duration;

use pipefetch_hub_client::{Error, Repo, RetryPolicy, RetryReason};

use crate::raw_server::{RawServer, Step, head, reply};
use crate::{Recorder, builder, guard};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn ok_head() -> Vec<Step> {
    vec![Step::Write(head(
        "200 OK",
        &[
            ("x-repo-commit", COMMIT),
            ("etag", "\"e\""),
            ("content-length", "3"),
        ],
    ))]
}

#[tokio::test]
async fn three_503_then_success() {
    guard(async {
        let server = RawServer::start(|n, _| {
            if n < 3 {
                vec![Step::Write(head(
                    "503 Service Unavailable",
                    &[("content-length", "0")],
                ))]
            } else {
                ok_head()
            }
        })
        .await;
        let rec = Recorder::default();
        let client = builder(&server.url())
            .on_retry(rec.observer())
            .build()
            .unwrap();
        let meta = client
            .file_metadata(&Repo::model("o/n").unwrap(), "main", "f")
            .await
            .unwrap();
        assert_eq!(meta.etag, "e");
        assert_eq!(server.seen().len(), 4);
        let events = rec.events();
        let attempts: Vec<u32> = events.iter().map(|e| e.attempt).collect();
        assert_eq!(attempts, [1, 2, 3]);
        assert!(events.iter().all(|e| e.reason == RetryReason::Status(503)));
        // Default backoff (jitter ≤ 50 %): 1 s, 2 s, 4 s ceilings.
        for (e, ceiling) in events.iter().zip([1u64, 2, 4]) {
            let c = Duration::from_secs(ceiling);
            assert!(e.wait <= c && e.wait >= c / 2, "{:?}", e.wait);
        }
    })
    .await;
}

#[tokio::test]
async fn rate_limit_headers_set_the_wait() {
    guard(async {
        let server = RawServer::start(|n, _| match n {
            0 => vec![Step::Write(head(
                "429 Too Many Requests",
                &[("retry-after", "7"), ("content-length", "0")],
            ))],
            1 => vec![Step::Write(head(
                "429 Too Many Requests",
                &[
                    ("ratelimit", "\"resolvers\";r=0;t=11"),
                    ("content-length", "0"),
                ],
            ))],
            2 => vec![Step::Write(head(
                "503 Service Unavailable",
                &[("retry-after", "100000"), ("content-length", "0")],
            ))],
            _ => ok_head(),
        })
        .await;
        let rec = Recorder::default();
        let client = builder(&server.url())
            .on_retry(rec.observer())
            .build()
            .unwrap();
        client
            .file_metadata(&Repo::model("o/n").unwrap(), "main", "f")
            .await
            .unwrap();
        let waits: Vec<Duration> = rec.events().iter().map(|e| e.wait).collect();
        // The third hint is capped at the policy's max_server_wait (300 s).
        assert_eq!(
            waits,
            [
                Duration::from_secs(7),
                Duration::from_secs(11),
                Duration::from_secs(300)
            ]
        );
        assert_eq!(rec.events()[0].reason, RetryReason::Status(429));
    })
    .await;
}

#[tokio::test]
async fn exhausted_retries_say_how_many_attempts() {
    guard(async {
        let server = RawServer::start(|_, _| {
            reply(
                "429 Too Many Requests",
                &[("retry-after", "3"), ("content-type", "application/json")],
                br#"{"error":"slow down"}"#,
            )
        })
        .await;
        let client = builder(&server.url())
            .retry(RetryPolicy::no_delay().with_max_attempts(3))
            .build()
            .unwrap();
        let err = client
            .repo_info(&Repo::model("o/n").unwrap(), "main")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "gave up after 3 attempts");
        let Error::RetriesExhausted { attempts, last } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*attempts, 3);
        assert_eq!(
            last.to_string(),
            format!(
                "rate limited by {}/api/models/o/n/revision/main (HTTP 429), retry after 3 s",
                server.url()
            )
        );
        assert_eq!(
            err.hint().as_deref(),
            Some("wait and retry; a token (HF_TOKEN) raises the Hub's rate limits")
        );
        assert_eq!(server.seen().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let rec = Recorder::default();
    let client = builder(&format!("http://127.0.0.1:{port}"))
        .retry(RetryPolicy::no_delay().with_max_attempts(2))
        .on_retry(rec.observer())
        .build()
        .unwrap();
    let err = guard(client.file_metadata(&Repo::model("o/n").unwrap(), "main", "f"))
        .await
        .unwrap_err();
    let Error::RetriesExhausted { attempts: 2, last } = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(**last, Error::Connect { .. }), "{last:?}");
    assert!(err.is_network());
    assert_eq!(rec.events()[0].reason, RetryReason::Connection);
}

#[tokio::test]
async fn a_404_is_not_retried() {
    let server =
        RawServer::start(|_, _| reply("404 Not Found", &[("x-request-id", "req-1")], b"nope"))
            .await;
    let client = builder(&server.url()).build().unwrap();
    let url = pipefetch_hub_client::Url::parse(&format!("{}/x", server.url())).unwrap();
    let mut sink = Vec::new();
    let err = guard(client.download(&url, 0.., &mut sink))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("HTTP 404 from {}/x: nope (request id req-1)", server.url())
    );
    assert_eq!(server.seen().len(), 1);
}
