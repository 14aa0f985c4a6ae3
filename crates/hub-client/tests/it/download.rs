//! Streaming downloads: resume, Range handling, stalls, trickles, redirects and tokens.

use std::time::Duration;

use pipefetch_hub_client::{Auth, ByteRange, Error, RetryPolicy, RetryReason, Token, Url};

use crate::raw_server::{RawServer, Step, head, reply};
use crate::{Recorder, builder, guard, pattern};

fn range_start(range: Option<&str>) -> Option<usize> {
    range?
        .strip_prefix("bytes=")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// A server for `body` that honours `Range: bytes=N-` and cuts the first answer after `cut` bytes.
fn cutting_server(
    body: Vec<u8>,
    cut: usize,
) -> impl Fn(usize, &crate::raw_server::Seen) -> Vec<Step> {
    move |n, req| {
        let start = range_start(req.header("range")).unwrap_or(0);
        let len = body.len();
        let mut h = if start > 0 {
            head(
                "206 Partial Content",
                &[
                    ("content-length", &(len - start).to_string()),
                    ("content-range", &format!("bytes {start}-{}/{len}", len - 1)),
                ],
            )
        } else {
            head("200 OK", &[("content-length", &len.to_string())])
        };
        if n == 0 {
            h.extend_from_slice(&body[start..cut]);
            vec![Step::Write(h), Step::Close]
        } else {
            h.extend_from_slice(&body[start..]);
            vec![Step::Write(h)]
        }
    }
}

#[tokio::test]
async fn resumes_after_a_cut_body() {
    guard(async {
        let body = pattern(300_000);
        let server = RawServer::start(cutting_server(body.clone(), 100_000)).await;
        let rec = Recorder::default();
        let client = builder(&server.url())
            .on_retry(rec.observer())
            .build()
            .unwrap();
        let url = Url::parse(&format!("{}/blob", server.url())).unwrap();
        let mut sink = Vec::new();
        let out = client.download(&url, 0.., &mut sink).await.unwrap();
        assert!(sink == body, "bytes differ");
        assert_eq!(out.end, 300_000);
        assert_eq!(out.total, Some(300_000));
        assert_eq!(out.resumes, 1);
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].header("range"), None);
        assert_eq!(seen[0].header("accept-encoding"), Some("identity"));
        assert_eq!(seen[1].header("range"), Some("bytes=100000-"));
        let events = rec.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].resume_from, Some(100_000));
        assert_eq!(events[0].attempt, 1);
        assert_eq!(events[0].reason, RetryReason::BodyCut);
        // Bytes had arrived: the resume does not wait.
        assert_eq!(events[0].wait, std::time::Duration::ZERO);
    })
    .await;
}

#[tokio::test]
async fn server_ignoring_range_restarts_the_sink() {
    guard(async {
        let body = pattern(50_000);
        let b = body.clone();
        // The first answer is cut; the resumed request gets a 200 with the whole body.
        let server = RawServer::start(move |n, _| {
            let mut h = head("200 OK", &[("content-length", &b.len().to_string())]);
            if n == 0 {
                h.extend_from_slice(&b[..20_000]);
                vec![Step::Write(h), Step::Close]
            } else {
                h.extend_from_slice(&b);
                vec![Step::Write(h)]
            }
        })
        .await;
        let client = builder(&server.url()).build().unwrap();
        let url = Url::parse(&format!("{}/blob", server.url())).unwrap();
        let mut sink = Vec::new();
        let out = client.download(&url, 0.., &mut sink).await.unwrap();
        assert!(sink == body);
        assert!(out.restarted);
        assert_eq!(server.seen()[1].header("range"), Some("bytes=20000-"));
    })
    .await;
}

#[tokio::test]
async fn ranged_download_of_a_server_ignoring_range_skips_the_prefix() {
    guard(async {
        let body = pattern(10_000);
        let b = body.clone();
        let server = RawServer::start(move |_, _| reply("200 OK", &[], &b)).await;
        let client = builder(&server.url()).build().unwrap();
        let url = Url::parse(&format!("{}/blob", server.url())).unwrap();
        // The caller already holds bytes 0..1000 and asks for 1000..4000.
        let mut sink = body[..1000].to_vec();
        let out = client
            .download(&url, 1000..4000u64, &mut sink)
            .await
            .unwrap();
        assert!(sink == body[..4000]);
        assert_eq!(out.end, 4000);
        assert!(out.restarted);
        assert_eq!(server.seen()[0].header("range"), Some("bytes=1000-3999"));
    })
    .await;
}

#[tokio::test]
async fn mismatched_content_range_is_an_error() {
    let server = RawServer::start(|_, _| {
        reply(
            "206 Partial Content",
            &[("content-range", "bytes 0-9/100")],
            b"0123456789",
        )
    })
    .await;
    let client = builder(&server.url()).build().unwrap();
    let url = Url::parse(&format!("{}/blob", server.url())).unwrap();
    let mut sink = vec![0u8; 50];
    let err = guard(client.download(
        &url,
        ByteRange {
            start: 50,
            end: None,
        },
        &mut sink,
    ))
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unexpected answer from {}/blob: asked for bytes 50- but the server sent Content-Range \"bytes 0-9/100\"",
            server.url()
        )
    );
    assert_eq!(server.seen().len(), 1, "a protocol error is not retried");
}

#[tokio::test]
async fn range_not_satisfiable_is_an_error_with_context() {
    let server = RawServer::start(|_, _| {
        reply(
            "416 Range Not Satisfiable",
            &[("content-range", "bytes */100")],
            b"",
        )
    })
    .await;
    let client = builder(&server.url()).build().unwrap();
    let url = Url::parse(&format!("{}/blob", server.url())).unwrap();
    let mut sink = vec![0u8; 200];
    let err = guard(client.download(&url, 200.., &mut sink))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "HTTP 416 from {}/blob: range starting at byte 200 not satisfiable (Content-Range: \"bytes */100\")",
            server.url()
        )
    );
}

#[tokio::test]
async fn idle_timeout_fires_and_the_download_resumes() {
    guard(async {
        let body = pattern(40_000);
        let b = body.clone();
        let server = RawServer::start(move |n, req| {
            let start = range_start(req.header("range")).unwrap_or(0);
            let len = b.len();
            let mut h = if start > 0 {
                head(
                    "206 Partial Content",
                    &[
                        ("content-length", &(len - start).to_string()),
                        ("content-range", &format!("bytes {start}-{}/{len}", len - 1)),
                    ],
                )
            } else {
                head("200 OK", &[("content-length", &len.to_string())])
            };
            if n == 0 {
                h.extend_from_slice(&b[..15_000]);
                // Then nothing, far longer than the idle timeout.
                vec![Step::Write(h), Step::Sleep(Duration::from_secs(30))]
            } else {
                h.extend_from_slice(&b[start..]);
                vec![Step::Write(h)]
            }
        })
        .await;
        let rec = Recorder::default();
        let client = builder(&server.url())
            .read_idle_timeout(Duration::from_millis(300))
            .on_retry(rec.observer())
            .build()
            .unwrap();
        let url = Url::parse(&format!("{}/blob", server.url())).unwrap();
        let mut sink = Vec::new();
        client.download(&url, 0.., &mut sink).await.unwrap();
        assert!(sink == body);
        assert_eq!(server.seen()[1].header("range"), Some("bytes=15000-"));
        let events = rec.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, RetryReason::Timeout);
        assert!(
            events[0]
                .error
                .starts_with("timed out after 300 ms waiting for body bytes")
        );
    })
    .await;
}

#[tokio::test]
async fn a_trickle_below_the_rate_floor_is_aborted() {
    guard(async {
        let server = RawServer::start(|_, _| {
            let mut steps = vec![Step::Write(head(
                "200 OK",
                &[("content-length", "1000000")],
            ))];
            // Ten bytes every 20 ms: the idle timer never fires, the rate floor must.
            for _ in 0..500 {
                steps.push(Step::Write(vec![b'x'; 10]));
                steps.push(Step::Sleep(Duration::from_millis(20)));
            }
            steps
        })
        .await;
        let client = builder(&server.url())
            .read_idle_timeout(Duration::from_secs(5))
            .min_rate(10_000, Duration::from_millis(400))
            .retry(RetryPolicy::never())
            .build()
            .unwrap();
        let url = Url::parse(&format!("{}/blob", server.url())).unwrap();
        let mut sink = Vec::new();
        let err = client.download(&url, 0.., &mut sink).await.unwrap_err();
        assert!(
            matches!(err, Error::Stalled { bytes: 10_000, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "download from {}/blob stalled: fewer than 10000 bytes arrived in 400ms",
                server.url()
            )
        );
        assert!(!sink.is_empty() && sink.len() < 10_000);
    })
    .await;
}

#[tokio::test]
async fn token_goes_to_its_origin_only() {
    guard(async {
        let body = pattern(5000);
        let b = body.clone();
        let cdn = RawServer::start(move |_, _| {
            reply(
                "200 OK",
                &[
                    ("content-type", "application/octet-stream"),
                    (
                        "content-disposition",
                        "attachment; filename=\"m.safetensors\"",
                    ),
                ],
                &b,
            )
        })
        .await;
        let cdn_url = format!("{}/storage/blob?sig=abc", cdn.url());
        let hub = RawServer::start(move |_, _| {
            reply("302 Found", &[("location", &cdn_url)], b"redirecting")
        })
        .await;
        let token = Token::new("hf_secret_value_xyz");
        let client = builder(&hub.url())
            .token(Some(token.clone()))
            .build()
            .unwrap();
        let url = Url::parse(&format!("{}/api/download/models/1", hub.url())).unwrap();
        let mut sink = Vec::new();
        let out = client.download(&url, 0.., &mut sink).await.unwrap();
        assert!(sink == body);
        assert_eq!(
            out.final_url.as_str(),
            format!("{}/storage/blob?sig=abc", cdn.url())
        );
        assert_eq!(
            out.info.content_disposition.as_deref(),
            Some("attachment; filename=\"m.safetensors\"")
        );
        assert_eq!(
            hub.seen()[0].header("authorization"),
            Some("Bearer hf_secret_value_xyz")
        );
        assert_eq!(cdn.seen()[0].header("authorization"), None);

        // A non-Hub URL with its own key: the key goes to that origin only, and the Hub token
        // is never sent there.
        let key = Auth::for_url(&url, Token::new("civitai-key"));
        let mut sink = Vec::new();
        client
            .download_url(&url, Some(&key), 0.., &mut sink)
            .await
            .unwrap();
        assert_eq!(
            hub.seen()[1].header("authorization"),
            Some("Bearer civitai-key")
        );
        assert_eq!(cdn.seen()[1].header("authorization"), None);

        // The Hub token is not sent to another port of the same host either.
        let other = Url::parse(&format!("{}/x", cdn.url())).unwrap();
        let mut sink = Vec::new();
        client.download(&other, 0.., &mut sink).await.unwrap();
        assert_eq!(cdn.seen()[2].header("authorization"), None);
        assert_eq!(cdn.seen().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn short_body_without_framing_error_is_detected() {
    // The server announces 1000 bytes, sends 400 and closes: the client resumes, and the second
    // answer completes the file.
    guard(async {
        let body = pattern(1000);
        let server = RawServer::start(cutting_server(body.clone(), 400)).await;
        let client = builder(&server.url())
            .retry(RetryPolicy::no_delay().with_max_attempts(2))
            .build()
            .unwrap();
        let url = Url::parse(&format!("{}/blob", server.url())).unwrap();
        let mut sink = Vec::new();
        client.download(&url, 0..1000u64, &mut sink).await.unwrap();
        assert!(sink == body);
        let seen = server.seen();
        assert_eq!(seen[0].header("range"), Some("bytes=0-999"));
        assert_eq!(seen[1].header("range"), Some("bytes=400-999"));
    })
    .await;
}

#[tokio::test]
async fn a_complete_partial_is_recognised_from_416() {
    let server = RawServer::start(|_, _| {
        reply(
            "416 Range Not Satisfiable",
            &[("content-range", "bytes */4")],
            b"",
        )
    })
    .await;
    let client = builder(&server.url()).build().unwrap();
    let url = Url::parse(&format!("{}/blob", server.url())).unwrap();
    let mut sink = b"abcd".to_vec();
    let out = guard(client.download(&url, 0.., &mut sink)).await.unwrap();
    assert_eq!(out.end, 4);
    assert_eq!(out.total, Some(4));
    assert_eq!(sink, b"abcd");
    assert_eq!(server.seen()[0].header("range"), Some("bytes=4-"));
}

#[tokio::test]
async fn redirect_bodies_are_drained_and_the_connection_reused() {
    guard(async {
        let body = pattern(1000);
        let b = body.clone();
        let server = RawServer::start(move |n, _| match n {
            // The body arrives after the head, so it is still unread when the redirect is seen.
            0 => vec![
                Step::Write(head(
                    "307 Temporary Redirect",
                    &[("location", "/real?x=1"), ("content-length", "30000")],
                )),
                Step::Sleep(Duration::from_millis(100)),
                Step::Write(vec![b'm'; 30_000]),
            ],
            _ => reply("200 OK", &[], &b),
        })
        .await;
        let client = builder(&server.url()).build().unwrap();
        let url = Url::parse(&format!("{}/start", server.url())).unwrap();
        let mut sink = Vec::new();
        let out = client.download(&url, 0.., &mut sink).await.unwrap();
        assert!(sink == body);
        assert_eq!(out.final_url.as_str(), format!("{}/real?x=1", server.url()));
        let seen = server.seen();
        assert_eq!(seen[1].target, "/real?x=1");
        assert_eq!(
            seen[1].conn, seen[0].conn,
            "the redirect's connection was not reused"
        );
    })
    .await;
}
