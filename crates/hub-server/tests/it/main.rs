//! Integration tests: a real server on 127.0.0.1:0, spoken to with a plain hyper client.

mod api;
mod auth;
mod binary;
mod faults;
mod fixture;
mod link;
mod resolve;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture::RepoBuilder;
use sha1::Digest;

/// A response, with the body read to the end (or to the point where reading failed).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub body_error: Option<String>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Sends one request on a fresh connection; never hangs longer than 10 s.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
    tokio::time::timeout(
        Duration::from_secs(10),
        send_inner(method, url, headers, body),
    )
    .await
    .expect("request timed out")
}

async fn send_inner(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let uri: http::Uri = url.parse().expect("valid URL");
    let authority = uri.authority().expect("absolute URL").clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", authority.as_str());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response head");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    let mut body_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    bytes.extend_from_slice(d);
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    Reply {
        status,
        headers,
        body: bytes,
        body_error,
    }
}

pub async fn get(url: &str) -> Reply {
    send("GET", url, &[], None).await
}

pub async fn head(url: &str) -> Reply {
    send("HEAD", url, &[], None).await
}

pub fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

pub const CONFIG: &[u8] = b"{\"hello\": \"world\"}\n";
pub const SPECIAL: &str = "sub dir/file name #1 \u{e9}.txt";

/// The standard test repo: a config, a special-name file, a subfolder file, LFS weights.
pub fn standard_repo(root: &Path) {
    RepoBuilder::new(root, "models", "org/name")
        .file("config.json", CONFIG.to_vec())
        .file(SPECIAL, b"special".to_vec())
        .file("unet/config.json", b"{\"unet\": true}".to_vec())
        .random_file("unet/diffusion_pytorch_model.safetensors", 1, 5000)
        .random_file("vae/diffusion_pytorch_model.bin", 2, 300)
        .file(".gitattributes", b"*.bin filter=lfs\n".to_vec())
        .build()
        .unwrap();
}

pub async fn standard_server() -> (tempfile::TempDir, HubServer) {
    let root = tempfile::tempdir().unwrap();
    standard_repo(root.path());
    let hub = HubServer::builder(root.path()).start().await.unwrap();
    (root, hub)
}
