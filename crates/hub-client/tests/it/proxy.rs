//! HTTP proxies: the Hub and its CDN reached through a forwarding proxy, `NO_PROXY`, `CONNECT`
//! tunnels for https with the proxy's credentials, and the errors a broken proxy gives.

use std::sync::{Arc, Mutex};

use pipefetch_hub_client::{Error, HfEnv, ProxyVars, RetryPolicy, Token, resolve_url};
use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{builder, guard};

/// What the proxy saw first on a connection: its request line and `Proxy-Authorization`.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    proxy_auth: Option<String>,
    authorization: Option<String>,
}

/// How the test proxy behaves.
#[derive(Clone)]
enum Mode {
    /// `CONNECT host:port` opens a tunnel; an absolute-form request is forwarded to its host as is.
    Forward,
    /// Every request is answered 407.
    Refuse,
    /// Requests are read, never answered.
    Silent,
    /// Every tunnel goes to this address, whatever `CONNECT` asked for.
    TunnelTo(String),
}

/// A minimal HTTP proxy (see [`Mode`]); each connection's first request is logged.
struct TestProxy {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestProxy {
    async fn start(mode: Mode) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, Arc::clone(&log), mode.clone()));
            }
        });
        TestProxy { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(mut conn: TcpStream, log: Arc<Mutex<Vec<Seen>>>, mode: Mode) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let line = text.lines().next().unwrap_or_default().to_string();
    let header = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    log.lock().unwrap().push(Seen {
        line: line.clone(),
        proxy_auth: header("proxy-authorization"),
        authorization: header("authorization"),
    });
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if matches!(mode, Mode::Silent) {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        return;
    }
    if matches!(mode, Mode::Refuse) {
        let _ = conn
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    }
    if method == "CONNECT" {
        let target = match &mode {
            Mode::TunnelTo(addr) => addr.as_str(),
            _ => target,
        };
        let Ok(mut upstream) = TcpStream::connect(target).await else {
            return;
        };
        let _ = conn
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await;
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
        return;
    }
    // Absolute form: http://host:port/path. hyper's server takes absolute-form requests as they are.
    let Some(authority) = target
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
    else {
        let _ = conn
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(authority.replace("localhost", "127.0.0.1")).await
    else {
        let _ = conn
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let _ = upstream.write_all(&head).await;
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
}

async fn hub() -> (tempfile::TempDir, HubServer) {
    let root = tempfile::tempdir().unwrap();
    RepoBuilder::new(root.path(), "models", "org/name")
        .file("config.json", br#"{"a": 1}"#.to_vec())
        .random_file("model.safetensors", 3, 200_000)
        .build()
        .unwrap();
    let hub = HubServer::builder(root.path())
        .token("secret")
        .start()
        .await
        .unwrap();
    (root, hub)
}

/// The hub's weights file: a resolve request, then its redirect to the CDN.
async fn download_weights(client: &pipefetch_hub_client::HubClient) -> Vec<u8> {
    let repo = pipefetch_hub_client::Repo::model("org/name").unwrap();
    let url = resolve_url(client.endpoint(), &repo, "main", "model.safetensors").unwrap();
    let mut bytes = Vec::new();
    client.download(&url, 0.., &mut bytes).await.unwrap();
    bytes
}

/// The last attempt's error when retries ran out, else the error itself.
fn final_error(err: &Error) -> &Error {
    match err {
        Error::RetriesExhausted { last, .. } => last,
        other => other,
    }
}

fn vars(http: &str, no: Option<&str>) -> ProxyVars {
    ProxyVars {
        http: Some(http.to_string()),
        no: no.map(str::to_string),
        ..ProxyVars::default()
    }
}

#[tokio::test]
async fn the_hub_and_its_cdn_are_reached_through_the_proxy_with_its_credentials() {
    guard(async {
        let (_root, hub) = hub().await;
        let proxy = TestProxy::start(Mode::Forward).await;
        let with_credentials = proxy.url.replace("http://", "http://user:p%40ss@");
        let client = builder(&hub.url())
            .token(Some(Token::new("secret")))
            .proxy(vars(&with_credentials, None))
            .build()
            .unwrap();
        assert_eq!(download_weights(&client).await, random_bytes(3, 200_000));

        let seen = proxy.seen();
        let lines: Vec<&str> = seen.iter().map(|s| s.line.as_str()).collect();
        // The resolve request in absolute form, then the CDN (another host name) as well.
        assert!(
            lines[0].starts_with(&format!(
                "GET {}/org/name/resolve/main/model.safetensors ",
                hub.url()
            )),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("GET http://localhost:")),
            "the CDN request did not go through the proxy: {lines:?}"
        );
        // "user:p@ss", percent-decoded, in Basic form; the Hub token goes to the Hub only.
        assert!(
            seen.iter()
                .all(|s| s.proxy_auth.as_deref() == Some("Basic dXNlcjpwQHNz")),
            "{seen:?}"
        );
        assert_eq!(seen[0].authorization.as_deref(), Some("Bearer secret"));
        assert!(
            seen[1..].iter().all(|s| s.authorization.is_none()),
            "{seen:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn no_proxy_hosts_are_reached_directly() {
    guard(async {
        let (_root, hub) = hub().await;
        let proxy = TestProxy::start(Mode::Forward).await;
        let client = builder(&hub.url())
            .proxy(vars(&proxy.url, Some("127.0.0.1")))
            .build()
            .unwrap();
        assert_eq!(download_weights(&client).await, random_bytes(3, 200_000));
        let seen = proxy.seen();
        // 127.0.0.1 (the Hub) is bypassed; localhost (the CDN) is not listed, so it is proxied.
        assert!(
            seen.iter().all(|s| s.line.contains("http://localhost:")),
            "{seen:?}"
        );
        assert!(!seen.is_empty());
    })
    .await;
}

/// Listens once and keeps the first bytes a client sends (a TLS ClientHello, here).
async fn first_bytes_recorder() -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap_or(0);
        buf.truncate(n);
        buf
    });
    (addr, task)
}

fn https_client(proxy: &str) -> pipefetch_hub_client::HubClient {
    builder("https://hub.example")
        .token(Some(Token::new("secret")))
        .retry(RetryPolicy::no_delay())
        .connect_timeout(std::time::Duration::from_millis(300))
        .proxy(ProxyVars {
            https: Some(proxy.replace("http://", "http://me:pw@")),
            ..ProxyVars::default()
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel_with_tls_to_the_origin() {
    guard(async {
        let (origin, hello) = first_bytes_recorder().await;
        let proxy = TestProxy::start(Mode::TunnelTo(origin)).await;
        let client = https_client(&proxy.url);
        let repo = pipefetch_hub_client::Repo::model("org/name").unwrap();
        // The "origin" only records the handshake, so the request fails after it.
        let _ = client.repo_info(&repo, "main").await;
        let seen = proxy.seen();
        assert!(
            seen[0].line.starts_with("CONNECT hub.example:443 "),
            "{seen:?}"
        );
        assert_eq!(seen[0].proxy_auth.as_deref(), Some("Basic bWU6cHc="));
        assert!(seen.iter().all(|s| s.authorization.is_none()), "{seen:?}");
        // Inside the tunnel: a TLS handshake (record type 22) naming the origin, not an HTTP
        // request in clear.
        let hello = hello.await.unwrap();
        assert_eq!(
            hello.first(),
            Some(&0x16),
            "{:?}",
            String::from_utf8_lossy(&hello)
        );
        assert!(hello.windows(11).any(|w| w == b"hub.example"));
        assert!(!hello.windows(6).any(|w| w == b"secret"));
    })
    .await;
}

#[tokio::test]
async fn a_connect_refused_for_credentials_is_named_and_not_retried() {
    guard(async {
        let proxy = TestProxy::start(Mode::Refuse).await;
        let client = https_client(&proxy.url);
        let repo = pipefetch_hub_client::Repo::model("org/name").unwrap();
        let err = client.repo_info(&repo, "main").await.unwrap_err();
        assert_eq!(proxy.seen().len(), 1, "retried: {:?}", proxy.seen());
        assert!(
            matches!(&err, Error::ProxyRejected { proxy: p, status: 407, .. } if *p == proxy.url),
            "{err:?}"
        );
        assert!(!format!("{err} {err:?}").contains("pw"), "{err:?}");
        assert!(err.hint().unwrap().contains("NO_PROXY"));
    })
    .await;
}

#[tokio::test]
async fn a_silent_proxy_is_named_when_the_connect_times_out() {
    guard(async {
        let proxy = TestProxy::start(Mode::Silent).await;
        let client = builder("https://hub.example")
            .retry(RetryPolicy::never())
            .connect_timeout(std::time::Duration::from_millis(300))
            .proxy(ProxyVars {
                https: Some(proxy.url.clone()),
                ..ProxyVars::default()
            })
            .build()
            .unwrap();
        let repo = pipefetch_hub_client::Repo::model("org/name").unwrap();
        let err = client.repo_info(&repo, "main").await.unwrap_err();
        let last = final_error(&err);
        assert!(
            matches!(last, Error::Connect { proxy: Some(p), .. } if *p == proxy.url),
            "{err:?}"
        );
        let chain = std::iter::successors(Some(last as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(" / ");
        assert!(
            chain.contains("no answer to CONNECT within 300ms"),
            "{chain}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_dead_proxy_is_a_connect_error_naming_it() {
    guard(async {
        let (_root, hub) = hub().await;
        // A port nothing listens on.
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_url = format!("http://{}", dead.local_addr().unwrap());
        drop(dead);
        let client = builder(&hub.url())
            .retry(RetryPolicy::never())
            .proxy(vars(&dead_url, None))
            .build()
            .unwrap();
        let repo = pipefetch_hub_client::Repo::model("org/name").unwrap();
        let err = client.repo_info(&repo, "main").await.unwrap_err();
        let last = final_error(&err);
        assert!(
            matches!(last, Error::Connect { proxy: Some(p), .. } if *p == dead_url),
            "{err:?}"
        );
    })
    .await;
}

#[test]
fn the_environment_is_read_like_python_reads_it() {
    let env = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HfEnv::from_vars(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    };
    let e = env(&[
        ("HTTPS_PROXY", "http://upper:1"),
        ("https_proxy", "http://lower:1"),
        ("HTTP_PROXY", "http://h:2"),
        ("NO_PROXY", "localhost,.internal"),
    ]);
    assert_eq!(
        e.proxy.https.as_deref(),
        Some("http://lower:1"),
        "lower case wins"
    );
    assert_eq!(e.proxy.http.as_deref(), Some("http://h:2"));
    assert_eq!(e.proxy.no.as_deref(), Some("localhost,.internal"));
    // httpoxy: under CGI, HTTP_PROXY may come from a request header and is ignored.
    let cgi = env(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "http://evil:1")]);
    assert_eq!(cgi.proxy.http, None);
    let cgi = env(&[("REQUEST_METHOD", "GET"), ("http_proxy", "http://mine:1")]);
    assert_eq!(cgi.proxy.http.as_deref(), Some("http://mine:1"));
    // Set but empty, the lower-case spelling turns the proxy off, as in Python.
    let off = env(&[("https_proxy", ""), ("HTTPS_PROXY", "http://upper:1")]);
    assert_eq!(off.proxy.https, None);
    // A socks ALL_PROXY beside http proxies for both schemes is never used, so it is no error.
    let apps = env(&[
        ("http_proxy", "http://p:7890"),
        ("https_proxy", "http://p:7890"),
        ("all_proxy", "socks5://p:7891"),
    ]);
    assert!(
        pipefetch_hub_client::HubClient::builder_from_env(&apps)
            .build()
            .is_ok()
    );
    // And the environment's Debug never shows a proxy password.
    let secret = env(&[("HTTPS_PROXY", "http://u:hunter2@p:1")]);
    let shown = format!("{secret:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("http://p:1"),
        "{shown}"
    );
    // A proxy we cannot use is an error when the client is built, not a silent direct connection.
    let socks = env(&[("ALL_PROXY", "socks5h://p:1080")]);
    let err = pipefetch_hub_client::HubClient::builder_from_env(&socks)
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("ALL_PROXY=socks5h://p:1080: socks5h:// proxies are not supported"),
        "{err}"
    );
}

#[tokio::test]
async fn a_proxy_refusing_plain_http_is_named_and_not_retried() {
    guard(async {
        let (_root, hub) = hub().await;
        let proxy = TestProxy::start(Mode::Refuse).await;
        let client = builder(&hub.url())
            .proxy(vars(
                &proxy.url.replace("http://", "http://me:wrong@"),
                None,
            ))
            .build()
            .unwrap();
        let repo = pipefetch_hub_client::Repo::model("org/name").unwrap();
        let err = client.repo_info(&repo, "main").await.unwrap_err();
        assert!(
            matches!(&err, Error::ProxyRejected { proxy: p, status: 407, .. } if *p == proxy.url),
            "{err:?}"
        );
        assert!(!err.to_string().contains("wrong"), "{err}");
        assert!(
            err.hint()
                .unwrap()
                .contains("http://user:password@host:port")
        );
        // Credentials the proxy refused are not worth a retry.
        assert_eq!(proxy.seen().len(), 1, "{:?}", proxy.seen());
    })
    .await;
}
