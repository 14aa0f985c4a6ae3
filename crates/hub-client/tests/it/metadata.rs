//! The metadata HEAD, repo info and tree listing against scripted servers.

use pipefetch_hub_client::{EntryKind, Error, Repo, Token};

use crate::raw_server::{RawServer, Step, head, reply};
use crate::{builder, guard};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[tokio::test]
async fn relative_redirect_is_followed_with_query_and_token() {
    guard(async {
        let server = RawServer::start(|n, _| {
            let h = if n == 0 {
                head(
                    "307 Temporary Redirect",
                    &[
                        (
                            "location",
                            "/api/resolve-cache/models/org/name/c1/a%20b.json?x=1&etag=%22e%22",
                        ),
                        ("x-repo-commit", COMMIT),
                        ("content-length", "13"),
                    ],
                )
            } else {
                head(
                    "200 OK",
                    &[
                        ("x-repo-commit", COMMIT),
                        ("etag", "\"abc123\""),
                        ("content-length", "4242"),
                    ],
                )
            };
            vec![Step::Write(h)]
        })
        .await;
        let client = builder(&server.url())
            .token(Some(Token::new("hf_test_token_value")))
            .build()
            .unwrap();
        let repo = Repo::model("org/name").unwrap();
        let meta = client
            .file_metadata(&repo, "refs/pr/1", "a b.json")
            .await
            .unwrap();
        assert_eq!(meta.commit, COMMIT);
        assert_eq!(meta.etag, "abc123");
        assert_eq!(meta.size, 4242);
        assert!(!meta.is_lfs);
        assert_eq!(
            meta.location.as_str(),
            format!(
                "{}/api/resolve-cache/models/org/name/c1/a%20b.json?x=1&etag=%22e%22",
                server.url()
            )
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].method, "HEAD");
        assert_eq!(seen[0].target, "/org/name/resolve/refs%2Fpr%2F1/a%20b.json");
        assert_eq!(
            seen[1].target,
            "/api/resolve-cache/models/org/name/c1/a%20b.json?x=1&etag=%22e%22"
        );
        for s in &seen {
            assert_eq!(s.header("accept-encoding"), Some("identity"));
            assert_eq!(
                s.header("authorization"),
                Some("Bearer hf_test_token_value")
            );
        }
    })
    .await;
}

#[tokio::test]
async fn absolute_redirect_is_read_not_followed() {
    guard(async {
        let server = RawServer::start(|_, _| {
            vec![Step::Write(head(
                "302 Found",
                &[
                    ("location", "http://127.0.0.1:9/repos/sha?sig=1"),
                    ("x-repo-commit", COMMIT),
                    ("x-linked-etag", "\"5e2a\""),
                    ("etag", "\"gitsha\""),
                    ("x-linked-size", "123456789"),
                    ("x-xet-hash", "ff00"),
                    ("content-length", "913"),
                ],
            ))]
        })
        .await;
        let client = builder(&server.url()).build().unwrap();
        let meta = client
            .file_metadata(
                &Repo::model("org/name").unwrap(),
                "main",
                "unet/w.safetensors",
            )
            .await
            .unwrap();
        assert_eq!(meta.etag, "5e2a");
        assert_eq!(meta.size, 123456789);
        assert!(meta.is_lfs);
        assert_eq!(meta.xet_hash.as_deref(), Some("ff00"));
        assert_eq!(meta.location.as_str(), "http://127.0.0.1:9/repos/sha?sig=1");
        assert_eq!(
            server.seen().len(),
            1,
            "the absolute redirect must not be followed"
        );
    })
    .await;
}

#[tokio::test]
async fn size_never_comes_from_a_redirect_content_length() {
    guard(async {
        let server = RawServer::start(|_, _| {
            vec![Step::Write(head(
                "302 Found",
                &[
                    ("location", "http://127.0.0.1:9/repos/sha"),
                    ("x-repo-commit", COMMIT),
                    ("x-linked-etag", "\"5e2a\""),
                    ("content-length", "913"),
                ],
            ))]
        })
        .await;
        let client = builder(&server.url()).build().unwrap();
        let err = client
            .file_metadata(&Repo::model("org/name").unwrap(), "main", "w.bin")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "unexpected answer from {}/org/name/resolve/main/w.bin: the answer has no \
                 X-Linked-Size or Content-Length; not a Hugging Face Hub endpoint? a proxy or firewall?",
                server.url()
            )
        );
        assert!(err.hint().unwrap().contains("HF_ENDPOINT"));
    })
    .await;
}

#[tokio::test]
async fn etag_normalisation_from_real_headers() {
    for (raw, want) in [("W/\"abc\"", "abc"), ("\"abc\"", "abc"), ("abc", "abc")] {
        let raw = raw.to_string();
        let server = RawServer::start(move |_, _| {
            vec![Step::Write(head(
                "200 OK",
                &[
                    ("x-repo-commit", COMMIT),
                    ("etag", &raw),
                    ("content-length", "7"),
                ],
            ))]
        })
        .await;
        let client = builder(&server.url()).build().unwrap();
        let meta = guard(client.file_metadata(&Repo::model("o/n").unwrap(), COMMIT, "f"))
            .await
            .unwrap();
        assert_eq!(meta.etag, want);
        assert_eq!(meta.size, 7);
    }
}

#[tokio::test]
async fn missing_commit_is_a_protocol_error() {
    let server = RawServer::start(|_, _| {
        vec![Step::Write(head(
            "200 OK",
            &[("etag", "\"e\""), ("content-length", "7")],
        ))]
    })
    .await;
    let client = builder(&server.url()).build().unwrap();
    let err = guard(client.file_metadata(&Repo::model("o/n").unwrap(), "main", "f"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().ends_with(
            "the answer has no X-Repo-Commit header; not a Hugging Face Hub endpoint? a proxy or firewall?"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn tree_follows_every_page() {
    guard(async {
        let server = RawServer::start(|n, req| {
            let base = req.header("host").unwrap().to_string();
            let entry = |p: &str| {
                format!(
                    r#"{{"type":"file","oid":"{p}oid","size":3,"path":"{p}"}}"#
                )
            };
            match n {
                0 => {
                    assert_eq!(req.target, "/api/models/org/name/tree/main/unet?recursive=true");
                    let link = format!("<http://{base}/api/models/org/name/tree/main?cursor=2>; rel=\"next\"");
                    let body = format!("[{},{}]", entry("a"), entry("b"));
                    reply("200 OK", &[("link", &link)], body.as_bytes())
                }
                1 => {
                    assert_eq!(req.target, "/api/models/org/name/tree/main?cursor=2");
                    let body = format!(
                        r#"[{},{{"type":"directory","oid":"t","size":0,"path":"d"}}]"#,
                        entry("c")
                    );
                    reply(
                        "200 OK",
                        &[("link", "</api/models/org/name/tree/main?cursor=3>; rel=\"next\"")],
                        body.as_bytes(),
                    )
                }
                _ => {
                    let body = r#"[{"type":"file","oid":"g","size":10,"path":"w.bin","lfs":{"oid":"sha256hex","size":999,"pointerSize":130},"xetHash":"xh"}]"#;
                    reply("200 OK", &[], body.as_bytes())
                }
            }
        })
        .await;
        let client = builder(&server.url()).build().unwrap();
        let entries = client
            .list_tree(&Repo::model("org/name").unwrap(), "main", Some("unet"), true)
            .await
            .unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "b", "c", "d", "w.bin"]);
        assert_eq!(entries[3].kind, EntryKind::Directory);
        assert_eq!(entries[0].etag(), "aoid");
        let w = &entries[4];
        assert_eq!(w.etag(), "sha256hex");
        assert_eq!(w.size, 999);
        assert_eq!(w.oid, "g");
        assert_eq!(w.xet_hash.as_deref(), Some("xh"));
        assert_eq!(server.seen().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn oversized_json_is_refused() {
    let server = RawServer::start(|_, _| {
        let mut head = head(
            "200 OK",
            &[(
                "content-length",
                &(pipefetch_hub_client::MAX_JSON_BYTES + 10).to_string(),
            )],
        );
        head.extend(std::iter::repeat_n(
            b' ',
            pipefetch_hub_client::MAX_JSON_BYTES + 10,
        ));
        vec![Step::Write(head)]
    })
    .await;
    let client = builder(&server.url()).build().unwrap();
    let err = guard(client.repo_info(&Repo::model("o/n").unwrap(), "main"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("reply larger than 16777216 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn repo_info_fields() {
    let server = RawServer::start(|_, req| {
        assert_eq!(req.target, "/api/datasets/org/data/revision/v1.0");
        let body = format!(
            r#"{{"id":"org/data","sha":"{COMMIT}","private":true,"gated":"manual","siblings":[{{"rfilename":"a.json"}},{{"rfilename":"b/c.bin"}}]}}"#
        );
        reply("200 OK", &[("content-type", "application/json")], body.as_bytes())
    })
    .await;
    let client = builder(&server.url()).build().unwrap();
    let info = guard(client.repo_info(&Repo::dataset("org/data").unwrap(), "v1.0"))
        .await
        .unwrap();
    assert_eq!(info.sha, COMMIT);
    assert_eq!(info.siblings, ["a.json", "b/c.bin"]);
    assert_eq!(info.gated.as_deref(), Some("manual"));
    assert!(info.private);
}

#[tokio::test]
async fn offline_sends_nothing() {
    let server = RawServer::start(|_, _| reply("200 OK", &[], b"")).await;
    let client = builder(&server.url()).offline(true).build().unwrap();
    let repo = Repo::model("o/n").unwrap();
    let err = client.file_metadata(&repo, "main", "f").await.unwrap_err();
    assert!(matches!(err, Error::Offline { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "offline mode is enabled (HF_HUB_OFFLINE): not requesting {}/o/n/resolve/main/f",
            server.url()
        )
    );
    assert!(matches!(
        client.repo_info(&repo, "main").await,
        Err(Error::Offline { .. })
    ));
    let url = pipefetch_hub_client::Url::parse(&server.url()).unwrap();
    let mut sink = Vec::new();
    assert!(matches!(
        client.download(&url, 0.., &mut sink).await,
        Err(Error::Offline { .. })
    ));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(server.seen().len(), 0);
}

#[tokio::test]
async fn a_silent_server_times_out_the_metadata_request() {
    let server =
        RawServer::start(|_, _| vec![Step::Sleep(std::time::Duration::from_secs(30))]).await;
    let client = builder(&server.url())
        .metadata_timeout(std::time::Duration::from_millis(300))
        .retry(pipefetch_hub_client::RetryPolicy::never())
        .build()
        .unwrap();
    let err = guard(client.file_metadata(&Repo::model("o/n").unwrap(), "main", "f"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "timed out after 300 ms waiting for response headers from {}/o/n/resolve/main/f",
            server.url()
        )
    );
    assert!(err.is_network() && err.is_retryable());
}
