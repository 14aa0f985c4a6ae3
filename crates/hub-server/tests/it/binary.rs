//! The `hub-server` binary.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::*;

#[tokio::test]
async fn binary_prints_its_address_first_and_serves() {
    let root = tempfile::tempdir().unwrap();
    standard_repo(root.path());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub-server"))
        .args([
            "--root",
            root.path().to_str().unwrap(),
            "--page-size",
            "2",
            "--token",
            "t",
            "--cdn-rate",
            "40MB",
            "--cdn-latency-ms",
            "3",
            "--cdn-faults",
            "cut=0.25,stall=0.10:40s,trickle=0.05:1300",
            "--fault-seed",
            "7",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect("first line")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let second = lines.next_line().await.unwrap().unwrap();
    assert!(second.starts_with("cdn on http://localhost:"), "{second}");
    let r = get(&format!("{url}/api/models/org/name/tree/main")).await;
    assert_eq!(r.status, 200);
    assert!(r.header("link").is_some(), "page size 2 was applied");
    let r = send(
        "HEAD",
        &format!("{url}/org/name/resolve/main/config.json"),
        &[("authorization", "Bearer x")],
        None,
    )
    .await;
    assert_eq!(r.status, 401, "token t was applied");
    let link = get(&format!("{url}/_control/link")).await.json();
    assert_eq!(link["rate"], 40_000_000);
    assert_eq!(link["latency_ms"], 3);
    assert_eq!(
        link["faults"],
        "cut=0.25,stall=0.1:40000ms,trickle=0.05:1300"
    );
    assert_eq!(link["seed"], 7);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn binary_rejects_bad_arguments() {
    for args in [
        &["--root"][..],
        &["--bogus"],
        &[],
        &["--root", "/tmp", "--page-size", "0"],
        &["--root", "/tmp", "--addr", "nope"],
        &["--root", "/tmp", "--cdn-rate", "fast"],
        &["--root", "/tmp", "--cdn-latency-ms", "-1"],
        &["--root", "/tmp", "--cdn-faults", "cut=2"],
        &["--root", "/tmp", "--fault-seed", "x"],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub-server"))
            .args(args)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage: hub-server"),
            "{args:?}"
        );
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub-server"))
        .args(["--root", "/definitely/not/here"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
}
