//! `pipefetch mirror push|presign` against a real Garage (an S3-compatible store) and the shared
//! pipeline world on hub-server: what a user sees, and no secret in any of it.

use std::path::Path;
use std::process::Output;

use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture::world;
use pipefetch_test_garage::{Garage, garage_for_test};

use crate::{Env, pipefetch, text};

/// A session token, as temporary credentials carry (Garage ignores it; AWS would check it).
const SESSION_TOKEN: &str = "FwoGZXIvYXdzSESSIONTOKENsecret0123456789";

struct Mirrored {
    env: Env,
    garage: Garage,
    spec: String,
    /// The AWS variables and PIPEFETCH_MIRROR.
    vars: Vec<(&'static str, String)>,
}

async fn mirrored(test: &str) -> Option<Mirrored> {
    let bin = garage_for_test(test)?;
    let garage = tokio::task::spawn_blocking(move || Garage::start(&bin))
        .await
        .expect("join")
        .expect("Garage starts");
    let root = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("tempdir");
    let shared = world::build(root.path(), home.path()).expect("fixture");
    let hub = HubServer::builder(root.path())
        .start()
        .await
        .expect("hub-server");
    let spec = home.path().join("mixed.yaml");
    std::fs::write(&spec, world::mixed_spec(&hub.url(), &shared.local_unet)).expect("spec");
    let mut vars = garage.aws_env();
    vars.push(("AWS_SESSION_TOKEN", SESSION_TOKEN.to_string()));
    vars.push((
        "PIPEFETCH_MIRROR",
        format!("s3://{}/fleet", garage.bucket()),
    ));
    Some(Mirrored {
        env: Env {
            hub,
            _root: root,
            home,
        },
        garage,
        spec: spec.display().to_string(),
        vars,
    })
}

impl Mirrored {
    async fn run(&self, args: &[&str], overrides: &[(&str, &str)]) -> Output {
        let mut vars: Vec<(&str, &str)> = self.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.extend_from_slice(overrides);
        pipefetch(&self.env, args, &vars).await
    }
}

/// The raw value of the query parameter `name` of a URL.
fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name))
        .map(|(_, v)| v)
}

#[tokio::test(flavor = "multi_thread")]
async fn push_and_presign_print_the_keys_and_no_secret_anywhere() {
    let Some(m) = mirrored("push_and_presign_print_the_keys_and_no_secret_anywhere").await else {
        return;
    };
    let secret = m.garage.key().secret.clone();
    // Every output of every run: stdout, stderr (with -vv logs), and the files written.
    let mut outputs: Vec<(String, String)> = Vec::new();

    let out = m
        .run(
            &["mirror", "push", &m.spec, "-vv", "--progress", "json"],
            &[],
        )
        .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let key = stdout.lines().last().expect("the lock's key");
    let prefix = format!("s3://{}/fleet/pipelines/mixed/", m.garage.bucket());
    assert!(
        key.starts_with(&prefix) && key.ends_with(".lock"),
        "{stdout}"
    );
    assert!(stderr.contains("0 already in the mirror"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "lock written to s3://{}/fleet/pipelines/mixed.lock",
            m.garage.bucket()
        )),
        "{stderr}"
    );
    // Runs of progress events, each from plan to done: locking (the files whose sha256 is
    // not known before their bytes are), the pull, and last the upload, one file per blob.
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let plans = kinds.iter().filter(|k| **k == "plan").count();
    assert!(plans >= 2, "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "done").count(),
        plans,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"done"));
    let upload = &events[events
        .iter()
        .rposition(|e| e["event"] == "plan")
        .expect("plan")..];
    assert_eq!(upload[0]["cached_files"], 0);
    let started = upload
        .iter()
        .filter(|e| e["event"] == "file_started")
        .count();
    assert_eq!(upload[0]["files"], started, "{upload:?}");
    assert!(
        upload
            .iter()
            .filter(|e| e["event"] == "file_started")
            .all(|e| e["repo"] == format!("s3://{}/fleet", m.garage.bucket())),
        "{upload:?}"
    );
    // -vv logs came from the S3 client and its HTTP stack.
    assert!(stderr.contains("DEBUG"), "{stderr}");
    outputs.push(("push stdout".into(), stdout.clone()));
    outputs.push(("push stderr".into(), stderr.clone()));

    // Again: nothing uploaded, the same key.
    let out = m.run(&["mirror", "push", &m.spec, "-vv"], &[]).await;
    let (stdout2, stderr2) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr2}");
    assert_eq!(stdout2.lines().last(), Some(key));
    assert!(stderr2.contains(" 0 uploaded (0 B)"), "{stderr2}");
    assert!(stderr2.contains("lock unchanged at"), "{stderr2}");
    outputs.push(("second push stdout".into(), stdout2));
    outputs.push(("second push stderr".into(), stderr2));

    // The spec's lockfile, pushed as it is, to the mirror named on the command line: the same
    // lock, already there.
    let out = m.run(&["lock", &m.spec], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let explicit = format!("s3://{}/fleet", m.garage.bucket());
    let out = m
        .run(
            &["mirror", "push", "--locked", &m.spec, &explicit],
            &[("PIPEFETCH_MIRROR", "")],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().last(), Some(key));
    assert!(
        text(&out.stderr).contains(" 0 uploaded"),
        "{}",
        text(&out.stderr)
    );
    outputs.push(("locked push stderr".into(), text(&out.stderr)));
    // Without a mirror, a clear error.
    let out = m
        .run(&["mirror", "push", &m.spec], &[("PIPEFETCH_MIRROR", "")])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("PIPEFETCH_MIRROR"),
        "{}",
        text(&out.stderr)
    );

    // A presigned lock, to a file and to stdout.
    let file = m.env.home.path().join("signed.lock");
    let file_arg = file.display().to_string();
    let out = m
        .run(
            &[
                "mirror",
                "presign",
                "mixed",
                "-o",
                &file_arg,
                "--expires",
                "2h",
                "-vv",
            ],
            &[],
        )
        .await;
    let (stdout3, stderr3) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr3}");
    assert_eq!(stdout3.trim(), file_arg);
    assert!(
        stderr3.contains("treat the lock as a credential"),
        "{stderr3}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("lock").permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "a presigned lock is readable by its owner only"
        );
    }
    let signed_text = std::fs::read_to_string(&file).expect("lock");
    outputs.push(("presign stdout".into(), stdout3));
    outputs.push(("presign stderr".into(), stderr3));
    let out = m
        .run(&["mirror", "presign", &m.spec, "--expires", "15m"], &[])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let signed_stdout = text(&out.stdout);
    outputs.push(("presign stderr (stdout run)".into(), text(&out.stderr)));
    // The lock by its hash, as printed by the push.
    let sha = key
        .trim_end_matches(".lock")
        .rsplit('/')
        .next()
        .expect("sha");
    let out = m
        .run(&["mirror", "presign", "mixed", "--lock-sha256", sha], &[])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let by_hash: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a lock");
    let current: serde_json::Value = serde_json::from_str(&signed_stdout).expect("a lock");
    assert_eq!(by_hash["spec_sha256"], current["spec_sha256"]);
    outputs.push(("presign by hash stderr".into(), text(&out.stderr)));

    // Runs that fail: a wrong secret, a missing pipeline.
    let wrong = "WRONGsecretWRONGsecretWRONGsecretWRONGsecret";
    for args in [
        vec!["mirror", "push", m.spec.as_str(), "-vv"],
        vec!["mirror", "presign", "mixed", "-vv"],
    ] {
        let out = m.run(&args, &[("AWS_SECRET_ACCESS_KEY", wrong)]).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("error: ") && stderr.contains("hint: "),
            "{stderr}"
        );
        assert!(stderr.contains(m.garage.bucket()), "{stderr}");
        assert!(!stderr.contains(wrong), "{stderr}");
        outputs.push((format!("{args:?} stdout"), text(&out.stdout)));
        outputs.push((format!("{args:?} stderr"), stderr));
    }
    let out = m.run(&["mirror", "presign", "nothing-here"], &[]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("has no lock for pipeline `nothing-here`"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: push the pipeline first"), "{stderr}");
    outputs.push(("missing presign stderr".into(), stderr));

    // A presigned lock holds a URL per file, and nothing else differs from the mirror's lock.
    for signed in [&signed_text, &signed_stdout] {
        let mut lock: serde_json::Value = serde_json::from_str(signed).expect("a lock");
        let files = lock["files"].as_array_mut().expect("files");
        assert!(!files.is_empty());
        for f in files.iter_mut() {
            let url = f["mirror_url"].as_str().expect("a mirror_url").to_string();
            // The only secret a presigned URL carries is the session token, in its own
            // parameter; the secret key never.
            assert!(!url.contains(&secret), "{url}");
            assert_eq!(
                query_param(&url, "X-Amz-Security-Token"),
                Some(SESSION_TOKEN)
            );
            let without = url.replace(SESSION_TOKEN, "");
            assert!(!without.contains("SESSIONTOKEN"), "{url}");
            assert!(query_param(&url, "X-Amz-Signature").is_some(), "{url}");
            f.as_object_mut().expect("object").remove("mirror_url");
        }
        outputs.push(("a presigned lock without its URLs".into(), lock.to_string()));
    }

    // No output holds the secret key or the session token, and none a signature.
    for (what, output) in &outputs {
        for needle in [
            secret.as_str(),
            SESSION_TOKEN,
            "X-Amz-Signature=",
            "X-Amz-Security-Token=",
        ] {
            assert!(
                !output.contains(needle),
                "{what} shows `{needle}`:\n{output}"
            );
        }
    }
    // Nor does anything pipefetch wrote in its home.
    for entry in walk(m.env.home.path()) {
        if entry == file {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&entry) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(&secret) && !text.contains(SESSION_TOKEN),
                "{} holds a secret",
                entry.display()
            );
        }
    }
}

/// Every file under `dir` (symlinks not followed).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}
