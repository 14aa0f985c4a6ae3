//! URL sources against real servers: hub-server's resolve URLs stand in for civitai.com (a plain URL
//! that redirects to storage on another origin), and a raw TCP server plays civitai's 307 with
//! `Content-Disposition`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipefetch_fetcher::Error;
use pipefetch_fetcher::url_source::{
    UrlCache, UrlEntry, UrlRequest, auth_for, expects_weights, fetch_url,
};
use pipefetch_hub_client::{Auth, HubClient, RetryPolicy, Token, Url};
use pipefetch_hub_server::faults::Fault;
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes};
use pipefetch_hub_server::{HubServer, Route};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TOKEN: &str = "hf_url_token";

const HTML: &[u8] = b"<!DOCTYPE html>\n<html><head><title>Log in</title></head><body>Please log in to download this model.</body></html>\n";
const JSON: &[u8] =
    br#"{"error": "Unauthorized", "message": "The creator of this asset requires you to be logged in to download it"}"#;

/// A file in safetensors framing: an 8-byte header length, a JSON header, then `len` bytes in all.
fn fake_safetensors(seed: u64, len: usize) -> Vec<u8> {
    let mut header = br#"{"__metadata__":{"format":"pt"}}"#.to_vec();
    header.resize(64, b' ');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&random_bytes(seed, len - out.len()));
    out
}

fn long_page() -> Vec<u8> {
    let mut page = b"<html><body>".to_vec();
    while page.len() < 2_000_000 {
        page.extend_from_slice(b"<p>This model is only available to logged-in users.</p>\n");
    }
    page
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

struct Env {
    hub: HubServer,
    _root: tempfile::TempDir,
    dir: tempfile::TempDir,
    cache: UrlCache,
    model: Vec<u8>,
    big: Vec<u8>,
}

impl Env {
    async fn new() -> Env {
        let root = tempfile::tempdir().expect("tempdir");
        let model = fake_safetensors(11, 300_000);
        let big = fake_safetensors(12, 3_000_000);
        RepoBuilder::new(root.path(), "models", "acme/urls")
            .file("model.safetensors", model.clone())
            .file("big.safetensors", big.clone())
            .file("page.safetensors", HTML.to_vec())
            // A long page: refused from its first bytes, before the rest is read.
            .file("long.safetensors", long_page())
            // A non-LFS name: served directly (after a relative 307) as text.
            .file("error.json", JSON.to_vec())
            .build()
            .expect("fixture");
        let hub = HubServer::builder(root.path())
            .token(TOKEN)
            .start()
            .await
            .expect("hub-server");
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = UrlCache::new(dir.path().join("pipefetch").join("url-cache-v1"));
        Env {
            hub,
            _root: root,
            dir,
            cache,
            model,
            big,
        }
    }

    /// A plain URL that redirects (302) to the CDN listener on another origin.
    fn url(&self, file: &str) -> Url {
        Url::parse(&format!("{}/acme/urls/resolve/main/{file}", self.hub.url())).expect("url")
    }

    fn client(&self) -> HubClient {
        HubClient::builder()
            .endpoint(self.hub.url())
            .retry(RetryPolicy::no_delay())
            .read_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("client")
    }

    fn request(&self, file: &str, name: &str) -> UrlRequest {
        UrlRequest {
            url: self.url(file),
            name: name.to_string(),
            sha256: None,
            auth: None,
        }
    }

    async fn fetch(&self, client: &HubClient, req: &UrlRequest) -> Result<UrlEntry, Error> {
        tokio::time::timeout(
            Duration::from_secs(20),
            fetch_url(client, &self.cache, req, &|_, _| {}),
        )
        .await
        .expect("fetch_url hung")
    }

    /// Every file below the cache folder, by `/` path.
    fn files(&self) -> BTreeSet<String> {
        list(self.cache.root())
    }
}

fn list(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out
}

fn key(url: &Url) -> String {
    sha256(url.as_str().as_bytes())
}

#[tokio::test]
async fn downloads_verifies_and_reuses_the_cache_without_a_request() {
    let env = Env::new().await;
    let client = env.client();
    let req = env.request("big.safetensors", "model.safetensors");
    let seen = Mutex::new(Vec::new());
    let on_bytes = |done: u64, total: u64| seen.lock().expect("seen").push((done, total));
    let entry = tokio::time::timeout(
        Duration::from_secs(20),
        fetch_url(&client, &env.cache, &req, &on_bytes),
    )
    .await
    .expect("hung")
    .expect("fetch");

    assert_eq!(std::fs::read(&entry.blob).expect("blob"), env.big);
    assert_eq!(entry.sha256, sha256(&env.big));
    assert_eq!(entry.size, 3_000_000);
    assert_eq!(entry.url, req.url.as_str());
    assert_eq!(
        seen.lock().expect("seen").last().copied(),
        Some((3_000_000, 3_000_000))
    );
    let k = key(&req.url);
    assert_eq!(
        env.files(),
        BTreeSet::from([
            format!("blobs/{}", entry.sha256),
            format!("entries/{k}.json")
        ])
    );
    // Nothing was written into a Hub cache layout: the folder holds only the URL cache.
    assert_eq!(
        list(env.dir.path()),
        env.files()
            .into_iter()
            .map(|f| format!("pipefetch/url-cache-v1/{f}"))
            .collect()
    );
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.cache.root().join(format!("entries/{k}.json"))).expect("entry"),
    )
    .expect("json");
    assert_eq!(json["version"], 1);
    assert_eq!(json["sha256"], entry.sha256.as_str());
    assert_eq!(json["size"], 3_000_000);

    // The same URL again: the cache answers, not the network.
    env.hub.log().clear();
    let again = env.fetch(&client, &req).await.expect("cached");
    assert_eq!(again, entry);
    assert_eq!(env.hub.log().entries(), Vec::new());
    assert_eq!(
        env.cache.lookup(req.url.as_str()).expect("lookup"),
        Some(entry.clone())
    );
    assert!(env.cache.verify(&entry).expect("verify"));

    // A flipped byte in the blob: lookup (stat only) still finds it, verify does not.
    let mut bytes = env.big.clone();
    bytes[1000] ^= 0xff;
    std::fs::write(&entry.blob, &bytes).expect("corrupt");
    assert!(!env.cache.verify(&entry).expect("verify"));
    // A truncated blob is not an entry at all.
    std::fs::write(&entry.blob, &bytes[..10]).expect("truncate");
    assert_eq!(env.cache.lookup(req.url.as_str()).expect("lookup"), None);
}

#[tokio::test]
async fn the_token_goes_to_the_first_origin_and_not_to_the_storage_host() {
    let env = Env::new().await;
    let mut req = env.request("model.safetensors", "model.safetensors");
    req.auth = Some(Auth::for_url(&req.url, Token::new(TOKEN)));
    let entry = env.fetch(&env.client(), &req).await.expect("fetch");
    assert_eq!(std::fs::read(&entry.blob).expect("blob"), env.model);

    let log = env.hub.log().entries();
    let first: Vec<_> = log.iter().filter(|e| e.route == Route::Resolve).collect();
    let cdn: Vec<_> = log.iter().filter(|e| e.route == Route::Cdn).collect();
    assert_eq!(first.len(), 1, "{log:?}");
    assert_eq!(first[0].status, 302);
    assert_eq!(
        first[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(cdn.len(), 1, "{log:?}");
    assert_eq!(cdn[0].authorization, None);
}

#[tokio::test]
async fn an_html_page_where_weights_are_expected_is_refused_and_not_saved() {
    let env = Env::new().await;
    let req = env.request("page.safetensors", "x.safetensors");
    let err = env.fetch(&env.client(), &req).await.expect_err("html");
    assert!(matches!(err, Error::NotWeights { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: expected the weights file `x.safetensors`, but the server returned an HTML page; nothing was saved",
            req.url
        )
    );
    assert_eq!(
        err.hint().as_deref(),
        Some(
            "the URL returned an HTML page (a login or error page?): open it in a browser, and use a direct download link"
        )
    );
    assert_eq!(env.files(), BTreeSet::new());
    assert_eq!(env.cache.lookup(req.url.as_str()).expect("lookup"), None);

    let long = env.request("long.safetensors", "x.safetensors");
    let most = std::sync::atomic::AtomicU64::new(0);
    let on_bytes = |done: u64, _| {
        most.fetch_max(done, std::sync::atomic::Ordering::Relaxed);
    };
    let err = fetch_url(&env.client(), &env.cache, &long, &on_bytes)
        .await
        .expect_err("html");
    // Refused from its first bytes: the rest of the 2 MB page was never taken in.
    assert!(most.into_inner() < 1_000_000);
    assert!(
        err.to_string()
            .ends_with("but the server returned an HTML page; nothing was saved"),
        "{err}"
    );
    assert_eq!(env.files(), BTreeSet::new());

    // The same bytes under a name that is not weights are just a file.
    let page = env.request("page.safetensors", "login.html");
    let entry = env.fetch(&env.client(), &page).await.expect("page");
    assert_eq!(std::fs::read(&entry.blob).expect("blob"), HTML);
}

#[tokio::test]
async fn a_json_error_body_where_weights_are_expected_is_refused_and_not_saved() {
    let env = Env::new().await;
    let req = env.request("error.json", "x.safetensors");
    let err = env.fetch(&env.client(), &req).await.expect_err("json");
    assert!(matches!(err, Error::NotWeights { .. }), "{err:?}");
    assert!(
        err.to_string()
            .ends_with("but the server returned a JSON document; nothing was saved"),
        "{err}"
    );
    assert!(err.to_string().contains(req.url.as_str()), "{err}");
    assert_eq!(env.files(), BTreeSet::new());
}

#[tokio::test]
async fn a_pin_mismatch_is_refused_and_a_pin_change_fetches_again() {
    let env = Env::new().await;
    let client = env.client();
    let mut req = env.request("model.safetensors", "model.safetensors");
    req.sha256 = Some("0".repeat(64));
    let err = env.fetch(&client, &req).await.expect_err("pin");
    assert!(matches!(err, Error::PinMismatch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the download's sha256 is {}, but the spec pins {}; the download was discarded",
            req.url,
            sha256(&env.model),
            "0".repeat(64)
        )
    );
    assert_eq!(env.files(), BTreeSet::new());

    // The right pin (in upper case) is accepted.
    req.sha256 = Some(sha256(&env.model).to_ascii_uppercase());
    let entry = env.fetch(&client, &req).await.expect("pinned");
    assert_eq!(entry.sha256, sha256(&env.model));

    // A cached entry that does not match a new pin is fetched again (and refused again).
    env.hub.log().clear();
    req.sha256 = Some("1".repeat(64));
    let err = env.fetch(&client, &req).await.expect_err("pin");
    assert!(matches!(err, Error::PinMismatch { .. }), "{err:?}");
    assert_eq!(env.hub.log().count(Route::Cdn), 1);
    // The earlier, verified entry is untouched.
    assert_eq!(
        env.cache.lookup(req.url.as_str()).expect("lookup"),
        Some(entry)
    );

    req.sha256 = Some("not hex".into());
    let err = env.fetch(&client, &req).await.expect_err("bad pin");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn a_stalled_transfer_leaves_a_partial_that_the_next_fetch_resumes() {
    let env = Env::new().await;
    env.hub
        .faults()
        .push(Fault::stall_after(1_000_000, None).on(Route::Cdn).times(1));
    let impatient = HubClient::builder()
        .endpoint(env.hub.url())
        .retry(RetryPolicy::never())
        .read_idle_timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let req = env.request("big.safetensors", "model.safetensors");
    let err = env.fetch(&impatient, &req).await.expect_err("stalled");
    assert!(matches!(err, Error::UrlTransfer { .. }), "{err:?}");
    assert_eq!(
        err.hint().as_deref(),
        Some("rerun: the download resumes from the bytes already on disk")
    );
    assert_eq!(env.cache.partial_bytes(req.url.as_str()), 1_000_000);
    let k = key(&req.url);
    let files = env.files();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with(&format!("partial/{k}.")) && f.contains(".incomplete")),
        "{files:?}"
    );
    assert_eq!(env.cache.lookup(req.url.as_str()).expect("lookup"), None);

    env.hub.log().clear();
    let entry = env.fetch(&env.client(), &req).await.expect("resumed");
    assert_eq!(std::fs::read(&entry.blob).expect("blob"), env.big);
    let cdn = crate::support::cdn_requests(&env.hub);
    assert_eq!(cdn.len(), 1, "{cdn:?}");
    assert_eq!(cdn[0].status, 206);
    assert_eq!(cdn[0].range.as_deref(), Some("bytes=1000000-"));
    assert_eq!(env.cache.partial_bytes(req.url.as_str()), 0);
    assert_eq!(
        env.files(),
        BTreeSet::from([
            format!("blobs/{}", entry.sha256),
            format!("entries/{k}.json")
        ])
    );
}

#[tokio::test]
async fn a_resume_the_server_ignores_starts_again_from_zero() {
    let env = Env::new().await;
    env.hub
        .faults()
        .push(Fault::stall_after(500_000, None).on(Route::Cdn).times(1));
    let impatient = HubClient::builder()
        .endpoint(env.hub.url())
        .retry(RetryPolicy::never())
        .read_idle_timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let req = env.request("big.safetensors", "model.safetensors");
    env.fetch(&impatient, &req).await.expect_err("stalled");
    assert_eq!(env.cache.partial_bytes(req.url.as_str()), 500_000);

    env.hub
        .faults()
        .push(Fault::ignore_range().on(Route::Cdn).times(1));
    let entry = env.fetch(&env.client(), &req).await.expect("restarted");
    assert_eq!(std::fs::read(&entry.blob).expect("blob"), env.big);
    assert_eq!(entry.sha256, sha256(&env.big));
}

#[tokio::test]
async fn a_cut_mid_body_is_resumed_within_the_same_fetch() {
    let env = Env::new().await;
    env.hub
        .faults()
        .push(Fault::cut_after(700_000).on(Route::Cdn).times(1));
    let req = env.request("big.safetensors", "model.safetensors");
    let entry = env.fetch(&env.client(), &req).await.expect("fetch");
    assert_eq!(std::fs::read(&entry.blob).expect("blob"), env.big);
    let ranges: Vec<_> = env
        .hub
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.route == Route::Cdn)
        .map(|e| e.range)
        .collect();
    assert_eq!(ranges, vec![None, Some("bytes=700000-".to_string())]);
}

#[tokio::test]
async fn a_partial_of_a_file_that_changed_is_not_resumed() {
    let env = Env::new().await;
    env.hub
        .faults()
        .push(Fault::stall_after(1_000_000, None).on(Route::Cdn).times(1));
    let impatient = HubClient::builder()
        .endpoint(env.hub.url())
        .retry(RetryPolicy::never())
        .read_idle_timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let req = env.request("big.safetensors", "model.safetensors");
    env.fetch(&impatient, &req).await.expect_err("stalled");
    assert_eq!(env.cache.partial_bytes(req.url.as_str()), 1_000_000);

    // The file behind the URL changes (a new upload): other size, other ETag.
    let changed = fake_safetensors(13, 2_500_000);
    RepoBuilder::new(env.hub.root(), "models", "acme/urls")
        .file("big.safetensors", changed.clone())
        .build()
        .expect("fixture");
    env.hub.log().clear();
    let entry = env.fetch(&env.client(), &req).await.expect("fetch");
    assert_eq!(std::fs::read(&entry.blob).expect("blob"), changed);
    let ranges: Vec<_> = env
        .hub
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.route == Route::Cdn)
        .map(|e| e.range)
        .collect();
    // The resume was asked for, its answer did not match, and the file came again from zero.
    assert_eq!(
        ranges,
        vec![Some("bytes=1000000-".to_string()), None],
        "{:?}",
        env.hub.log().entries()
    );
}

#[test]
fn auth_for_sends_the_civitai_token_to_civitai_over_https_only() {
    let token = Token::new("civitai_secret_key");
    let cases = [
        ("https://civitai.com/api/download/models/12345", true),
        ("https://www.civitai.com/api/download/models/12345", true),
        ("https://CIVITAI.com./api/download/models/1", true),
        ("https://evil-civitai.com/api/download/models/12345", false),
        ("https://civitai.com.evil.example/x", false),
        ("http://civitai.com/api/download/models/12345", false),
        (
            "https://huggingface.co/a/b/resolve/main/c.safetensors",
            false,
        ),
    ];
    for (url, sent) in cases {
        let url = Url::parse(url).expect("url");
        let auth = auth_for(&url, Some(&token));
        assert_eq!(auth.is_some(), sent, "{url}");
        if let Some(auth) = auth {
            assert!(auth.applies_to(&url));
            assert_eq!(auth.token().expose(), "civitai_secret_key");
            // Bound to the origin: the storage host a download redirects to never gets it.
            let storage = Url::parse("https://civitai-delivery-worker-prod.5ac0637cfd0766c97916cefa3764fbdf.r2.cloudflarestorage.com/model/1?X-Amz-Signature=x").expect("url");
            assert!(!auth.applies_to(&storage));
        }
        assert!(auth_for(&url, None).is_none());
        // The token is never put into the URL.
        assert!(!url.as_str().contains("token"));
    }
    // Debug output never shows the secret.
    let auth = auth_for(
        &Url::parse("https://civitai.com/x").expect("url"),
        Some(&token),
    );
    assert!(!format!("{auth:?}").contains("civitai_secret_key"));
}

#[test]
fn expects_weights_by_extension() {
    let cases = [
        ("model.safetensors", true),
        ("unet/diffusion_pytorch_model.fp16.safetensors", true),
        ("MODEL.SAFETENSORS", true),
        ("pytorch_model.bin", true),
        ("v1-5-pruned.ckpt", true),
        ("lora.pt", true),
        ("lora.pth", true),
        ("flux1-dev-Q4_K_S.gguf", true),
        ("model.onnx", true),
        ("config.json", false),
        ("model_index.json", false),
        ("tokenizer/vocab.txt", false),
        ("README.md", false),
        ("safetensors", false),
        (".bin", false),
        ("", false),
    ];
    for (name, want) in cases {
        assert_eq!(expects_weights(name), want, "{name:?}");
    }
}

/// A raw HTTP/1.1 listener: every connection gets `response(request head)`; heads are recorded.
async fn raw_server(
    response: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> (u16, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let reply = response(&head);
            seen.lock().expect("heads").push(head);
            let _ = conn.write_all(&reply).await;
            let _ = conn.shutdown().await;
        }
    });
    (port, heads, task)
}

fn reply(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn a_civitai_style_307_records_the_content_disposition_name() {
    let body = fake_safetensors(21, 50_000);
    let served = body.clone();
    let (storage, storage_heads, storage_task) = raw_server(move |_| {
        reply(
            "200 OK",
            &[
                (
                    "Content-Disposition",
                    r#"attachment; filename="real name.safetensors""#.to_string(),
                ),
                ("Content-Type", "application/octet-stream".to_string()),
                ("ETag", "\"abc123\"".to_string()),
            ],
            &served,
        )
    })
    .await;
    let (api, api_heads, api_task) = raw_server(move |_| {
        reply(
            "307 Temporary Redirect",
            &[(
                "Location",
                format!("http://localhost:{storage}/model/21/file.safetensors?X-Amz-Signature=s1"),
            )],
            b"",
        )
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = UrlCache::new(dir.path());
    let url = Url::parse(&format!(
        "http://127.0.0.1:{api}/api/download/models/21?type=Model&token=pasted"
    ))
    .expect("url");
    let client = HubClient::builder()
        .retry(RetryPolicy::no_delay())
        .read_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let req = UrlRequest {
        auth: Some(Auth::for_url(&url, Token::new("civitai_key"))),
        url,
        name: "model.safetensors".into(),
        sha256: Some(sha256(&body)),
    };
    let entry = tokio::time::timeout(
        Duration::from_secs(20),
        fetch_url(&client, &cache, &req, &|_, _| {}),
    )
    .await
    .expect("hung")
    .expect("fetch");
    assert_eq!(entry.filename.as_deref(), Some("real name.safetensors"));
    assert_eq!(
        entry.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(entry.etag.as_deref(), Some("\"abc123\""));
    assert_eq!(std::fs::read(&entry.blob).expect("blob"), body);
    // A key pasted into the URL names nothing on disk.
    assert_eq!(
        entry.url,
        format!("http://127.0.0.1:{api}/api/download/models/21?type=Model")
    );
    assert!(list(dir.path()).iter().all(|f| !f.contains("pasted")));
    let entries = std::fs::read_dir(dir.path().join("entries")).expect("entries");
    for e in entries.flatten() {
        let text = std::fs::read_to_string(e.path()).expect("read");
        assert!(
            !text.contains("pasted") && !text.contains("civitai_key"),
            "{text}"
        );
    }
    let api_heads = api_heads.lock().expect("heads").clone();
    let storage_heads = storage_heads.lock().expect("heads").clone();
    assert_eq!(api_heads.len(), 1);
    assert!(
        api_heads[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer civitai_key"),
        "{}",
        api_heads[0]
    );
    assert_eq!(storage_heads.len(), 1);
    assert!(
        !storage_heads[0]
            .to_ascii_lowercase()
            .contains("authorization"),
        "{}",
        storage_heads[0]
    );
    api_task.abort();
    storage_task.abort();
}

#[tokio::test]
async fn a_text_html_answer_is_refused_before_its_body() {
    let body = fake_safetensors(22, 50_000);
    let (port, _, task) = raw_server(move |_| {
        reply(
            "200 OK",
            &[("Content-Type", "text/html; charset=utf-8".to_string())],
            &body,
        )
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = UrlCache::new(dir.path());
    let client = HubClient::builder()
        .retry(RetryPolicy::no_delay())
        .build()
        .expect("client");
    let req = UrlRequest {
        url: Url::parse(&format!("http://127.0.0.1:{port}/m.safetensors")).expect("url"),
        name: "m.safetensors".into(),
        sha256: None,
        auth: None,
    };
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        fetch_url(&client, &cache, &req, &|_, _| {}),
    )
    .await
    .expect("hung")
    .expect_err("html");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: expected the weights file `m.safetensors`, but the server returned an HTML page (Content-Type: text/html); nothing was saved",
            req.url
        )
    );
    assert_eq!(list(dir.path()), BTreeSet::new());
    task.abort();
}

#[tokio::test]
async fn a_partial_that_does_not_match_its_checkpoint_is_not_resumed() {
    let env = Env::new().await;
    env.hub
        .faults()
        .push(Fault::stall_after(1_000_000, None).on(Route::Cdn).times(1));
    let impatient = HubClient::builder()
        .endpoint(env.hub.url())
        .retry(RetryPolicy::never())
        .read_idle_timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let req = env.request("big.safetensors", "model.safetensors");
    env.fetch(&impatient, &req).await.expect_err("stalled");
    // A byte torn by a crash (or a disk error) inside the checkpointed prefix.
    let partial = env
        .files()
        .into_iter()
        .find(|f| f.ends_with(".incomplete"))
        .expect("partial");
    let path = env.cache.root().join(partial);
    let mut bytes = std::fs::read(&path).expect("read");
    assert_eq!(bytes.len(), 1_000_000);
    bytes[4242] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");

    env.hub.log().clear();
    let entry = env.fetch(&env.client(), &req).await.expect("fetch");
    assert_eq!(std::fs::read(&entry.blob).expect("blob"), env.big);
    let ranges: Vec<_> = env
        .hub
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.route == Route::Cdn)
        .map(|e| e.range)
        .collect();
    assert_eq!(ranges, vec![None]);
}
