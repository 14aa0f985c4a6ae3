//! Builder validation, environment wiring and the per-host connection budget.

use std::time::Duration;

use pipefetch_hub_client::{Error, HfEnv, HubClient, Repo, RetryPolicy, Url};

use crate::raw_server::{RawServer, Step, head, reply};
use crate::{builder, guard};

#[test]
fn build_validates_once() {
    let cases: Vec<(pipefetch_hub_client::HubClientBuilder, &str)> = vec![
        (
            HubClient::builder().endpoint("ftp://example.com"),
            "invalid HTTP client configuration: the endpoint ftp://example.com/ must be an http or https URL with a host",
        ),
        (
            HubClient::builder().endpoint("not a url"),
            "invalid URL \"not a url\": relative URL without a base",
        ),
        (
            HubClient::builder().endpoint("https://hub.example/?x=1"),
            "invalid HTTP client configuration: the endpoint https://hub.example/?x=1 must not have a query or fragment",
        ),
        (
            HubClient::builder().read_idle_timeout(Duration::ZERO),
            "invalid HTTP client configuration: read_idle_timeout must be greater than zero",
        ),
        (
            HubClient::builder().retry(RetryPolicy::default().with_max_attempts(0)),
            "invalid HTTP client configuration: retry.max_attempts must be at least 1",
        ),
        (
            HubClient::builder().min_rate(1, Duration::ZERO),
            "invalid HTTP client configuration: the min_rate window must be greater than zero",
        ),
        (
            HubClient::builder().max_connections_per_host(0),
            "invalid HTTP client configuration: max_connections_per_host must be at least 1",
        ),
        (
            HubClient::builder().token(Some(pipefetch_hub_client::Token::new("bad\nvalue"))),
            "invalid HTTP client configuration: the token contains characters not allowed in a header",
        ),
    ];
    for (b, want) in cases {
        let err = b.build().unwrap_err();
        assert_eq!(err.to_string(), want);
    }
    let c = HubClient::builder()
        .endpoint("http://127.0.0.1:8080/")
        .build()
        .unwrap();
    assert_eq!(c.endpoint().as_str(), "http://127.0.0.1:8080/");
}

#[tokio::test]
async fn environment_configures_the_client() {
    let server = RawServer::start(|_, _| reply("200 OK", &[], b"")).await;
    let url = server.url();
    let env = HfEnv::from_vars(|k| match k {
        "HF_ENDPOINT" => Some(format!("{url}/")),
        "HF_TOKEN" => Some("hf_from_the_env_abc".into()),
        "HF_HUB_OFFLINE" => Some("yes".into()),
        _ => None,
    });
    let client = HubClient::from_env(&env).unwrap();
    assert!(client.is_offline());
    assert_eq!(client.endpoint().as_str(), format!("{url}/"));
    assert_eq!(
        format!("{client:?}"),
        format!(
            "HubClient {{ endpoint: \"{url}/\", token: Some(Token(hf_***abc, from $HF_TOKEN)), offline: true, .. }}"
        )
    );
    let err = client
        .file_metadata(&Repo::model("o/n").unwrap(), "main", "f")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Offline { .. }));
    assert!(err.is_network());
    assert_eq!(server.seen().len(), 0);

    // The implicit token can be switched off.
    let env = HfEnv::from_vars(|k| match k {
        "HF_TOKEN" => Some("hf_from_the_env_abc".into()),
        "HF_HUB_DISABLE_IMPLICIT_TOKEN" => Some("1".into()),
        _ => None,
    });
    assert!(HubClient::from_env(&env).unwrap().auth().is_none());
}

#[tokio::test]
async fn the_connection_budget_is_held_while_a_body_streams() {
    guard(async {
        let server = RawServer::start(|n, _| {
            if n == 0 {
                // A body that arrives slowly, so the first stream is still open.
                let mut h = head("200 OK", &[("content-length", "10")]);
                h.extend_from_slice(b"01234");
                vec![
                    Step::Write(h),
                    Step::Sleep(Duration::from_secs(1)),
                    Step::Write(b"56789".to_vec()),
                ]
            } else {
                reply("200 OK", &[], b"second")
            }
        })
        .await;
        let client = builder(&server.url())
            .max_connections_per_host(1)
            .build()
            .unwrap();
        let url = Url::parse(&format!("{}/a", server.url())).unwrap();
        let (mut stream, head) = client.get_stream(&url, None, None).await.unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(&stream.next_chunk().await.unwrap().unwrap()[..], b"01234");

        let c2 = client.clone();
        let url2 = Url::parse(&format!("{}/b", server.url())).unwrap();
        let second = tokio::spawn(async move {
            let mut sink = Vec::new();
            c2.download(&url2, 0.., &mut sink).await.map(|_| sink)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            server.seen().len(),
            1,
            "the second request must wait for the slot"
        );

        let mut rest = Vec::new();
        while let Some(chunk) = stream.next_chunk().await.unwrap() {
            rest.extend_from_slice(&chunk);
        }
        assert_eq!(rest, b"56789");
        drop(stream);
        assert_eq!(second.await.unwrap().unwrap(), b"second");
        assert_eq!(server.seen().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn derived_clients_share_the_pool_but_not_the_policy() {
    guard(async {
        let server = RawServer::start(|n, _| {
            if n == 0 {
                vec![Step::Write(head(
                    "503 Service Unavailable",
                    &[("content-length", "0")],
                ))]
            } else {
                reply("200 OK", &[], b"ok")
            }
        })
        .await;
        let client = builder(&server.url()).build().unwrap();
        let rec = crate::Recorder::default();
        let quick = client
            .with_retry(RetryPolicy::never())
            .with_retry_observer(rec.observer());
        let url = Url::parse(&format!("{}/x", server.url())).unwrap();
        let mut sink = Vec::new();
        let err = quick.download(&url, 0.., &mut sink).await.unwrap_err();
        assert!(matches!(err, Error::Http { status: 503, .. }), "{err:?}");
        assert!(rec.events().is_empty());
        client.download(&url, 0.., &mut sink).await.unwrap();
        assert_eq!(sink, b"ok");
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].conn, seen[1].conn, "the pool is shared");
    })
    .await;
}
