//! Integration tests: the mirror against a real Garage server (an S3-compatible store) on
//! 127.0.0.1, one server per test. Request counts come from Garage's own access log.
//!
//! Garage is found by `GARAGE_BIN`, else `PATH`, else `~/.cargo/bin` (`cargo xtask ci` installs
//! it there). Without it each test prints a loud SKIPPED banner and passes, except under `CI`,
//! where it fails.

mod blobs;
mod errors;
mod locks;
mod presign;
mod pull;
mod push;
mod secrets;
mod world;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pipefetch_mirror::{Credentials, Mirror, MirrorBuilder, MirrorLocation, Sha256Hex};
use pipefetch_test_garage::{Garage, Request, garage_for_test};

/// Parts of 5 MiB (S3's minimum) keep multipart files small.
pub const PART: u64 = 5 * 1024 * 1024;

/// Fails a test that runs longer than 120 s instead of hanging the suite.
pub async fn guard<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("test timed out")
}

/// A started Garage for `test`, or `None` when Garage is not installed (outside CI).
pub async fn garage(test: &str) -> Option<Garage> {
    let bin = garage_for_test(test)?;
    let garage = tokio::task::spawn_blocking(move || Garage::start(&bin))
        .await
        .expect("start task")
        .expect("Garage starts");
    Some(garage)
}

/// A builder for the mirror `s3://BUCKET/prefix` on `garage`, with its key, 5 MiB parts and
/// retries that do not wait.
pub fn builder(garage: &Garage, prefix: &str) -> MirrorBuilder {
    let location: MirrorLocation = format!("s3://{}/{prefix}", garage.bucket())
        .parse()
        .unwrap();
    Mirror::builder(location)
        .endpoint(Some(garage.endpoint().to_string()))
        .region(garage.region())
        .credentials(Credentials::new(&garage.key().id, &garage.key().secret))
        .part_size(PART)
        .max_retries(1)
        .retry_delays(false)
}

/// The mirror `s3://BUCKET/prefix` on `garage`.
pub fn mirror(garage: &Garage, prefix: &str) -> Mirror {
    builder(garage, prefix).build().expect("mirror builds")
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

/// Writes `content` to `dir/name` and returns its path and digest.
pub fn file(dir: &Path, name: &str, content: &[u8]) -> (PathBuf, Sha256Hex) {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    (path, Sha256Hex::of(content))
}

/// Downloads a whole blob with a presigned URL, as the engine will.
pub async fn download(mirror: &Mirror, sha: &Sha256Hex) -> Vec<u8> {
    let url = mirror
        .presign_blob(sha, Duration::from_secs(600))
        .await
        .unwrap();
    let client = pipefetch_hub_client::HubClient::builder().build().unwrap();
    let mut body = Vec::new();
    client
        .download_url(url.expose(), None, 0.., &mut body)
        .await
        .unwrap();
    body
}

/// Requests Garage logged from index `from` on.
pub fn requests_since(garage: &Garage, from: usize) -> Vec<Request> {
    garage.requests().unwrap().split_off(from)
}

/// The requests that store bytes (`PUT`, multipart `POST`s) among `requests`.
pub fn writes(requests: &[Request]) -> Vec<&Request> {
    requests.iter().filter(|r| r.is_write()).collect()
}

/// Everything logged through `tracing` (and `log`) by this test binary, at every level.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(
        &LOGS
            .get()
            .map(|l| l.lock().unwrap().clone())
            .unwrap_or_default(),
    )
    .into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// Installs (once) a subscriber that records every event of every crate at TRACE level.
pub fn capture_logs() {
    let buffer = LOGS.get_or_init(Default::default).clone();
    let writer = move || Writer(buffer.clone());
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(writer)
        .try_init();
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
