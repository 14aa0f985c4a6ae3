//! `hub-server --root DIR [--addr 127.0.0.1:0] [--cdn-addr 127.0.0.1:0] [--cdn-host HOST] [--token T] [--page-size N]
//!  [--cdn-rate 40M] [--cdn-latency-ms 20] [--cdn-faults cut=0.25,stall=0.1:40s,trickle=0.05:1300] [--fault-seed 7]`
//!
//! Prints `listening on http://HOST:PORT` as its first line, then `cdn on http://HOST:PORT`,
//! and serves until Ctrl-C or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pipefetch_hub_server::FaultMix;

const USAGE: &str = "usage: hub-server --root DIR [--addr 127.0.0.1:0] [--cdn-addr 127.0.0.1:0] [--cdn-host HOST] [--token TOKEN] [--page-size N]
                  [--cdn-rate BYTES_PER_SEC] [--cdn-latency-ms N] [--cdn-faults RULES] [--fault-seed N]

  --cdn-rate 40M        cap every CDN connection at 40 MB/s (k/M/G: powers of 1000, Ki/Mi/Gi: of 1024)
  --cdn-latency-ms 20   wait 20 ms before each new CDN connection's first request and each CDN response
  --cdn-faults RULES    random faults for CDN file bodies, e.g. cut=0.25,stall=0.1:40s,trickle=0.05:1300
                        (KIND=CHANCE[:PARAM]; CHANCE 0.25 or 25% per body, or 1/N: every N-th connection)
  --fault-seed N        the seed of those faults (default 0)";

struct Args {
    root: PathBuf,
    addr: SocketAddr,
    cdn_addr: SocketAddr,
    cdn_host: Option<String>,
    token: Option<String>,
    page_size: usize,
    cdn_rate: u64,
    cdn_latency: Duration,
    cdn_faults: Option<FaultMix>,
    fault_seed: u64,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut root = None;
    let mut parsed = Args {
        root: PathBuf::new(),
        addr: loopback,
        cdn_addr: loopback,
        cdn_host: None,
        token: None,
        page_size: pipefetch_hub_server::DEFAULT_PAGE_SIZE,
        cdn_rate: 0,
        cdn_latency: Duration::ZERO,
        cdn_faults: None,
        fault_seed: 0,
    };
    while let Some(flag) = args.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Err(String::new());
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--root" => root = Some(PathBuf::from(value()?)),
            "--addr" => {
                let v = value()?;
                parsed.addr = v.parse().map_err(|_| format!("invalid --addr {v:?}"))?;
            }
            "--cdn-addr" => {
                let v = value()?;
                parsed.cdn_addr = v.parse().map_err(|_| format!("invalid --cdn-addr {v:?}"))?;
            }
            "--cdn-host" => parsed.cdn_host = Some(value()?),
            "--token" => parsed.token = Some(value()?),
            "--page-size" => {
                let v = value()?;
                parsed.page_size = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(format!(
                            "invalid --page-size {v:?}: expected a positive integer"
                        ));
                    }
                };
            }
            "--cdn-rate" => {
                parsed.cdn_rate =
                    pipefetch_hub_server::link::parse_rate(&value()?).map_err(|e| e.to_string())?;
            }
            "--cdn-latency-ms" => {
                let v = value()?;
                let ms = v.parse::<u64>().map_err(|_| {
                    format!("invalid --cdn-latency-ms {v:?}: expected milliseconds")
                })?;
                parsed.cdn_latency = Duration::from_millis(ms);
            }
            "--cdn-faults" => {
                parsed.cdn_faults = Some(FaultMix::parse(&value()?).map_err(|e| e.to_string())?);
            }
            "--fault-seed" => {
                let v = value()?;
                parsed.fault_seed = v
                    .parse()
                    .map_err(|_| format!("invalid --fault-seed {v:?}: expected an integer"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    parsed.root = root.ok_or("--root is required")?;
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut builder = pipefetch_hub_server::HubServer::builder(args.root)
        .addr(args.addr)
        .cdn_addr(args.cdn_addr)
        .page_size(args.page_size)
        .cdn_rate(args.cdn_rate)
        .cdn_latency(args.cdn_latency);
    if let Some(mix) = args.cdn_faults {
        builder = builder.cdn_faults(mix.seed(args.fault_seed));
    }
    if let Some(host) = args.cdn_host {
        builder = builder.cdn_host(host);
    }
    if let Some(token) = args.token {
        builder = builder.token(token);
    }
    let server = match builder.start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("caused by: {cause}");
                source = cause.source();
            }
            return ExitCode::FAILURE;
        }
    };
    {
        // Parents read the first line to learn the port, so it must leave the buffer now.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.url());
        let _ = writeln!(out, "cdn on {}", server.cdn_url());
        let _ = out.flush();
    }
    wait_for_signal().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
