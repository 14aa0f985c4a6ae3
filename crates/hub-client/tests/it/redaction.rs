//! A presigned URL's query (signature, session token) never appears in what the client shows:
//! errors (message, causes, `Debug`), retry events, or the `Debug` of what it returns.

use std::time::Duration;

use pipefetch_hub_client::{Error, Url};

use crate::raw_server::{RawServer, Step, head, reply};
use crate::{Recorder, builder, guard};

const SIGNATURE: &str = "SIGNATUREe3b0c44298fc1c149afbf4c8996fb924";
const SESSION_TOKEN: &str = "TOKENFwoGZXIvYXdzEJr";
const CREDENTIAL: &str = "AKIAEXAMPLEKEYID";

/// The query of a SigV4 presigned URL, with our marked secrets.
fn presigned_query() -> String {
    format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={CREDENTIAL}%2F20261130%2Fgarage%2Fs3%2Faws4_request\
         &X-Amz-Date=20261130T100000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host\
         &X-Amz-Security-Token={SESSION_TOKEN}&X-Amz-Signature={SIGNATURE}"
    )
}

/// Everything an error shows: its message and causes, its hint, its `Debug`.
fn shown(err: &Error) -> String {
    let mut out = format!("{err}");
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        out.push_str(&format!("\ncaused by: {c}"));
        cause = c.source();
    }
    if let Some(hint) = err.hint() {
        out.push_str(&format!("\nhint: {hint}"));
    }
    out.push_str(&format!("\n{err:?}"));
    out
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [SIGNATURE, SESSION_TOKEN, CREDENTIAL, "X-Amz-"] {
        assert!(
            !text.contains(secret),
            "{what}: `{secret}` is shown:\n{text}"
        );
    }
}

/// Answers by path: a refusal, an unavailable store, a redirect to a refused presigned URL, a
/// body cut short, a server that never answers, and a file that downloads.
async fn store() -> RawServer {
    RawServer::start(|_, seen| {
        let path = seen
            .target
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string();
        match path.as_str() {
            "/forbidden" => reply(
                "403 Forbidden",
                &[("content-type", "application/xml")],
                b"<Error><Code>AccessDenied</Code></Error>",
            ),
            "/unavailable" => reply("503 Service Unavailable", &[], b""),
            "/redirect" => {
                let to = format!("/forbidden?{}", presigned_query());
                reply("302 Found", &[("location", to.as_str())], b"")
            }
            "/cut" => vec![
                Step::Write(head("200 OK", &[("content-length", "1000")])),
                Step::Write(vec![7u8; 10]),
                Step::Close,
            ],
            "/silent" => vec![Step::Sleep(Duration::from_secs(5))],
            _ => reply("200 OK", &[("etag", "\"e\"")], b"hello"),
        }
    })
    .await
}

#[tokio::test]
async fn a_presigned_urls_query_never_appears_in_errors_or_debug() {
    guard(async {
        let server = store().await;
        let recorder = Recorder::default();
        let client = builder(&server.url())
            .read_idle_timeout(Duration::from_millis(300))
            .on_retry(recorder.observer())
            .build()
            .unwrap();
        let url = |path: &str| {
            Url::parse(&format!("{}{path}?{}", server.url(), presigned_query())).unwrap()
        };
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            drop(l);
            Url::parse(&format!(
                "http://127.0.0.1:{port}/blob?{}",
                presigned_query()
            ))
            .unwrap()
        };

        let mut errors = Vec::new();
        for target in [
            url("/forbidden"),
            url("/unavailable"),
            url("/redirect"),
            url("/cut"),
            url("/silent"),
            dead.clone(),
        ] {
            let mut body = Vec::new();
            let err = client
                .download_url(&target, None, 0.., &mut body)
                .await
                .unwrap_err();
            errors.push(err);
            let err = client.get_stream(&target, None, None).await.err();
            errors.extend(err);
        }
        assert!(errors.len() >= 6, "{errors:?}");
        for err in &errors {
            let text = shown(err);
            assert_no_secret("an error", &text);
            // The URL is still named, with the marker where its query was.
            assert!(text.contains("?<redacted>"), "{text}");
        }
        // Each kind of failure was met (so that every path above was exercised).
        let kinds: Vec<String> = errors
            .iter()
            .map(|e| match e {
                Error::RetriesExhausted { last, .. } => format!("{last:?}"),
                e => format!("{e:?}"),
            })
            .map(|d| {
                d.split([' ', '{', '('])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        for kind in ["Http", "Connect", "Timeout"] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} not met: {kinds:?}");
        }
        assert!(
            kinds.iter().any(|k| k == "BodyCut" || k == "Transport"),
            "{kinds:?}"
        );

        // Retry events: the error text and Debug are redacted; the URL field stays whole so that
        // an observer can match it against the URLs it asked for.
        let events = recorder.events();
        assert!(!events.is_empty());
        for event in &events {
            assert_no_secret("a retry event", &format!("{event:?} {}", event.error));
            assert!(event.url.contains(SIGNATURE));
        }

        // What a successful download returns shows no signature either.
        let mut body = Vec::new();
        let outcome = client
            .download_url(&url("/ok"), None, 0.., &mut body)
            .await
            .unwrap();
        assert_eq!(body, b"hello");
        assert_no_secret("DownloadOutcome", &format!("{outcome:?}"));
        let (_, head) = client.get_stream(&url("/ok"), None, None).await.unwrap();
        assert_no_secret("DownloadHead", &format!("{head:?}"));
    })
    .await;
}
