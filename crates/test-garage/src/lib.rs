//! A single-node [Garage](https://garagehq.deuxfleurs.fr) (an S3-compatible object store) on
//! `127.0.0.1`, started and stopped by pipefetch's integration tests and by `cargo xtask`.
//!
//! ```no_run
//! use pipefetch_test_garage::{Garage, garage_for_test};
//!
//! // `None` (with a loud message) when Garage is not installed; a panic under `CI`.
//! let Some(bin) = garage_for_test("my_test") else { return };
//! let garage = Garage::start(&bin).unwrap();
//! println!("{} {} {}", garage.endpoint(), garage.region(), garage.bucket());
//! // S3 requests Garage received, from its own log:
//! let puts = garage.requests().unwrap().iter().filter(|r| r.method == "PUT").count();
//! # let _ = puts;
//! // Dropping `garage` kills the server and removes its folder.
//! ```
//!
//! # Design decisions
//! - **A crate of its own, std only.** Both the tests of `pipefetch-mirror` (and later the CLI's)
//!   and `xtask` (bench, demo) need it. It is not a module of `pipefetch-hub-server`: that crate
//!   is a Hub-compatible server and knows nothing of S3, and a cargo feature there would tie two
//!   unrelated jobs together. It is synchronous (`std::process`) because xtask is, and it is
//!   `publish = false`: crates that publish name it as a path-only dev-dependency.
//! - **One server per [`Garage`]**, killed on drop. A process-wide shared server would outlive
//!   the test binary (statics are never dropped) and leave orphans behind.
//! - **Readiness is polled, never slept for**: `garage status` until the daemon answers, then
//!   the admin API's `/health` until the layout is live. Each poll is bounded by a deadline and
//!   stops early, with Garage's log, when the process died.
//! - **The request log is Garage's own**: the server logs every S3 request (`METHOD /bucket/key?query`)
//!   at `info`; [`Garage::requests`] parses that log, so tests count what the server really
//!   received rather than what the client believes it sent.
#![deny(missing_docs)]

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Garage version our tooling installs and our tests are written against.
pub const GARAGE_VERSION: &str = "2.5.0";

/// The variable that names the `garage` binary, first in [`find_garage`]'s search.
pub const GARAGE_BIN_VAR: &str = "GARAGE_BIN";

/// The region the server is configured with (clients must sign for it).
pub const REGION: &str = "garage";

/// How long start-up may take before it is an error (the first start creates the databases).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Finds the `garage` binary: `$GARAGE_BIN`, else `garage` on `PATH`, else `$CARGO_HOME/bin`
/// (`~/.cargo/bin`), where `cargo xtask` installs it.
pub fn find_garage() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(GARAGE_BIN_VAR).filter(|v| !v.is_empty()) {
        // An explicit choice that does not exist is not silently replaced by another binary.
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let exe = format!("garage{}", std::env::consts::EXE_SUFFIX);
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(&exe));
    let in_cargo_home = cargo_home().map(|home| home.join("bin").join(&exe));
    on_path.chain(in_cargo_home).find(|p| p.is_file())
}

/// `$CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// The `garage` binary for a test, or `None` after a loud message on stderr when it is missing.
///
/// # Panics
/// When Garage is missing and `CI` is set: CI must run these tests (`cargo xtask ci` installs
/// Garage first), so a missing binary there is a failure, not a skip.
pub fn garage_for_test(test: &str) -> Option<PathBuf> {
    if let Some(bin) = find_garage() {
        return Some(bin);
    }
    let why = format!(
        "Garage (an S3-compatible store) was not found: ${GARAGE_BIN_VAR}, PATH and \
         $CARGO_HOME/bin were searched. Install it with `cargo xtask garage` (or `cargo install \
         garage --version {GARAGE_VERSION} --locked`) or set {GARAGE_BIN_VAR}."
    );
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test}: {why} Under CI this is a failure.");
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED {test}: {why}\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    None
}

/// An S3 access key. `Debug` does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// The access key id (`GK…`).
    pub id: String,
    /// The secret access key.
    pub secret: String,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One S3 request as Garage logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `PUT`, `HEAD`, `POST`, `DELETE`.
    pub method: String,
    /// The path, `/bucket/key` (path-style), still percent-encoded.
    pub path: String,
    /// The query string without `?` (empty when there was none).
    pub query: String,
}

impl Request {
    /// Whether the request stores bytes: `PutObject`, `UploadPart`, or the `POST`s that create
    /// and complete a multipart upload.
    pub fn is_write(&self) -> bool {
        self.method == "PUT"
            || (self.method == "POST"
                && (self.query.contains("uploads") || self.query.contains("uploadId")))
    }
}

/// A running single-node Garage with one bucket and one key allowed to read and write it.
/// Dropping it kills the server and deletes its data.
pub struct Garage {
    child: Child,
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    endpoint: String,
    bucket: String,
    key: Key,
    // Last, so that the folder is removed after the process is gone (see `Drop`).
    dir: tempfile::TempDir,
}

impl fmt::Debug for Garage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Garage")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Garage {
    /// Starts `bin server` on free loopback ports in a new temp folder, lays out the single node,
    /// creates a key and the bucket `pipefetch-test` with read and write for that key, and
    /// returns once S3 requests are served.
    pub fn start(bin: &Path) -> io::Result<Garage> {
        // Free ports are found by binding port 0 and releasing it, so another process can take
        // one before Garage binds it; a start that fails is retried on fresh ports.
        let mut last = None;
        for _ in 0..3 {
            match Garage::start_once(bin) {
                Ok(garage) => return Ok(garage),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("Garage did not start")))
    }

    fn start_once(bin: &Path) -> io::Result<Garage> {
        let dir = tempfile::Builder::new()
            .prefix("pipefetch-garage-")
            .tempdir()?;
        let [rpc, s3, admin] = free_ports::<3>()?;
        let config = dir.path().join("garage.toml");
        std::fs::write(&config, config_toml(dir.path(), rpc, s3, admin))?;
        let log = dir.path().join("garage.log");
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .arg("server")
            // Every S3 request is logged at info by garage_api_common; nothing else is needed.
            .env("RUST_LOG", "garage=info,netapp=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", bin.display())))?;
        let mut garage = Garage {
            child,
            bin: bin.to_path_buf(),
            config,
            log,
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "pipefetch-test".to_string(),
            key: Key {
                id: String::new(),
                secret: String::new(),
            },
            dir,
        };
        garage.set_up(admin)?;
        Ok(garage)
    }

    fn set_up(&mut self, admin_port: u16) -> io::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        self.poll(deadline, "the daemon to answer `garage status`", |g| {
            Ok(g.garage(&["status"]).ok())
        })?;
        // `node id` reads the key the daemon wrote and prints `<64 hex>@<addr>`.
        let node = self.garage(&["node", "id", "-q"])?;
        let node = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        self.garage(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        self.garage(&["layout", "apply", "--version", "1"])?;
        self.poll(deadline, "the admin API's /health to answer 200", |_| {
            Ok(http_status(admin_port, "/health")
                .ok()
                .filter(|s| *s == 200))
        })?;
        self.key = self.create_key("pipefetch-test")?;
        let (bucket, key_id) = (self.bucket.clone(), self.key.id.clone());
        self.create_bucket(&bucket)?;
        self.allow(&bucket, &key_id)?;
        Ok(())
    }

    /// Calls `check` until it gives a value, the deadline passes, or the server exits.
    fn poll<T>(
        &mut self,
        deadline: Instant,
        what: &str,
        mut check: impl FnMut(&Garage) -> io::Result<Option<T>>,
    ) -> io::Result<T> {
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(value) = check(self)? {
                return Ok(value);
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "Garage exited ({status}) while waiting for {what}; its log:\n{}",
                    self.log_text()
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "Garage was not ready after {START_DEADLINE:?} waiting for {what}; its log:\n{}",
                    self.log_text()
                )));
            }
            // A short, growing pause between polls: readiness, not a guessed duration, ends it.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Runs `garage -c CONFIG ARGS` and returns its stdout; fails with its stderr.
    pub fn garage(&self, args: &[&str]) -> io::Result<String> {
        let out = self.command().args(args).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`garage {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A `garage -c CONFIG` command for this server, to add arguments to.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1");
        cmd
    }

    /// Creates an access key (`garage key create NAME`) and returns it.
    pub fn create_key(&self, name: &str) -> io::Result<Key> {
        let out = self.garage(&["key", "create", name])?;
        let field = |label: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .map(|v| v.trim_start_matches(':').trim().to_string())
                .filter(|v| !v.is_empty())
        };
        match (field("Key ID"), field("Secret key")) {
            (Some(id), Some(secret)) => Ok(Key { id, secret }),
            _ => Err(io::Error::other(
                "`garage key create` printed no `Key ID` and `Secret key` lines",
            )),
        }
    }

    /// Creates a bucket (`garage bucket create NAME`).
    pub fn create_bucket(&self, name: &str) -> io::Result<()> {
        self.garage(&["bucket", "create", name]).map(drop)
    }

    /// Lets a key read and write a bucket (`garage bucket allow --read --write`).
    pub fn allow(&self, bucket: &str, key_id: &str) -> io::Result<()> {
        self.garage(&[
            "bucket", "allow", "--read", "--write", "--key", key_id, bucket,
        ])
        .map(drop)
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT` (path-style addressing).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The region requests must be signed for.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The bucket created at start.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key allowed to read and write [`Garage::bucket`].
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The standard AWS variables that point a client at this server with its key.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", self.key.id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.key.secret.clone()),
        ]
    }

    /// The server's log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every S3 request the server has received so far, in order, from its log. Garage writes
    /// the line when a request arrives, so a request whose answer the client has seen is listed.
    pub fn requests(&self) -> io::Result<Vec<Request>> {
        Ok(parse_requests(&std::fs::read_to_string(&self.log)?))
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses Garage's S3 access lines: `… generic_server: ADDR [(key GK…)] METHOD /path?query`.
fn parse_requests(log: &str) -> Vec<Request> {
    const METHODS: [&str; 6] = ["GET", "PUT", "HEAD", "POST", "DELETE", "OPTIONS"];
    log.lines()
        .filter_map(|line| {
            let line = strip_ansi(line);
            let (_, rest) = line.split_once("generic_server: ")?;
            let mut words = rest.split_whitespace();
            let method = words.find(|w| METHODS.contains(w))?.to_string();
            let uri = words.next()?;
            let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
            Some(Request {
                method,
                path: path.to_string(),
                query: query.to_string(),
            })
        })
        .collect()
}

/// Removes terminal colour sequences (`ESC [ … m`), in case a build of Garage colours its log.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn config_toml(dir: &Path, rpc: u16, s3: u16, admin: u16) -> String {
    let quoted = |p: PathBuf| {
        let s = p.display().to_string();
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    };
    let rpc_secret: String = (0..32)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect();
    format!(
        r#"metadata_dir = {meta}
data_dir = {data}
db_engine = "lmdb"
# The default map is 1 TiB of address space; a test store needs far less.
lmdb_map_size = "1G"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3}"
s3_region = "{REGION}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
        meta = quoted(dir.join("meta")),
        data = quoted(dir.join("data")),
    )
}

/// `N` distinct free ports on 127.0.0.1 (held together while chosen, so they differ).
fn free_ports<const N: usize>() -> io::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l.local_addr()?.port();
    }
    Ok(ports)
}

/// The status code of `GET PATH` on 127.0.0.1:PORT (HTTP/1.0, so the server closes).
fn http_status(port: u16, path: &str) -> io::Result<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let got = stream.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {line:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_access_lines() {
        let log = "2026-11-30T10:00:00Z  INFO garage_api_common::generic_server: S3 API server listening on http://127.0.0.1:1\n\
                   2026-11-30T10:00:01Z  INFO garage_api_common::generic_server: 127.0.0.1:5000 (key GK12) PUT /b/p/blobs/sha256/ab\n\
                   \u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m garage_api_common::generic_server: 127.0.0.1:5001 POST /b/k?uploads\n\
                   2026-11-30T10:00:02Z  INFO garage_api_common::generic_server: 127.0.0.1:5002 (key GK12) HEAD /b/k\n";
        let reqs = parse_requests(log);
        assert_eq!(
            reqs,
            vec![
                Request {
                    method: "PUT".into(),
                    path: "/b/p/blobs/sha256/ab".into(),
                    query: String::new()
                },
                Request {
                    method: "POST".into(),
                    path: "/b/k".into(),
                    query: "uploads".into()
                },
                Request {
                    method: "HEAD".into(),
                    path: "/b/k".into(),
                    query: String::new()
                },
            ]
        );
        assert!(reqs[0].is_write() && reqs[1].is_write() && !reqs[2].is_write());
    }

    #[test]
    fn key_debug_hides_the_secret() {
        let key = Key {
            id: "GKabc".into(),
            secret: "s3cr3t".into(),
        };
        assert!(!format!("{key:?}").contains("s3cr3t"));
    }
}
