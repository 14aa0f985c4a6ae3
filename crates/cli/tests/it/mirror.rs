//! `pipefetch mirror push|presign` and `pipefetch pull --mirror…` against a real Garage (an
//! S3-compatible store) and the shared pipeline world on hub-server: what a user sees, and no
//! secret in any of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture::world;
use pipefetch_test_garage::{Garage, garage_for_test};

use crate::{pipefetch_at, text};

/// A session token, as temporary credentials carry (Garage ignores it; AWS would check it).
const SESSION_TOKEN: &str = "FwoGZXIvYXdzSESSIONTOKENsecret0123456789";

/// The bytes of a poisoned blob, repeated to its size.
const POISON: &[u8] = b"not the bytes you locked ";

/// The world's pipeline pushed from one machine (`home`), with the mirror on Garage.
struct Mirrored {
    /// hub-server, until [`Mirrored::stop_hub`].
    hub: Option<HubServer>,
    /// hub-server's URL, dead once it is stopped.
    endpoint: String,
    _root: tempfile::TempDir,
    /// The pushing machine's `HF_HOME`, which also holds the spec and the local UNet folder.
    home: tempfile::TempDir,
    garage: Garage,
    spec: String,
    /// The AWS variables (with a session token) and PIPEFETCH_MIRROR.
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
        endpoint: hub.url(),
        hub: Some(hub),
        _root: root,
        home,
        garage,
        spec: spec.display().to_string(),
        vars,
    })
}

impl Mirrored {
    /// `pipefetch ARGS` on the pushing machine, with the AWS variables, then `overrides`.
    async fn run(&self, args: &[&str], overrides: &[(&str, &str)]) -> Output {
        self.run_in(self.home.path(), args, overrides).await
    }

    /// `pipefetch ARGS` on the machine whose `HF_HOME` is `home`, with the AWS variables, then
    /// `overrides`.
    async fn run_in(&self, home: &Path, args: &[&str], overrides: &[(&str, &str)]) -> Output {
        let mut vars: Vec<(&str, &str)> = self.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.extend_from_slice(overrides);
        pipefetch_at(&self.endpoint, home, args, &vars).await
    }

    fn hub(&self) -> &HubServer {
        self.hub.as_ref().expect("hub-server is running")
    }

    /// Stops hub-server: from now on any request to the Hub, or to a URL source on it, fails.
    async fn stop_hub(&mut self) -> Vec<String> {
        let hub = self.hub.take().expect("hub-server is running");
        let log = hub
            .log()
            .entries()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        hub.shutdown().await;
        log
    }

    /// The pushing machine's local folders move out of reach, as on another machine.
    fn hide_local_folders(&self) -> tempfile::TempDir {
        let away = tempfile::tempdir().expect("tempdir");
        let unet = self.home.path().join("my-unet");
        std::fs::rename(&unet, away.path().join("my-unet")).expect("move the local UNet away");
        away
    }

    /// The sha256 and size of `target` in the spec's lock (written beside the spec by
    /// `pipefetch lock`).
    async fn locked(&self, target: &str) -> (String, usize) {
        let out = self.run(&["lock", &self.spec], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let lock: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.home.path().join("mixed.lock")).expect("lockfile"),
        )
        .expect("json");
        let file = lock["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["target"] == target)
            .expect("the file is locked");
        (
            file["sha256"].as_str().expect("sha256").to_string(),
            file["size"].as_u64().expect("size") as usize,
        )
    }

    /// The bucket, through an S3 client of its own (behind the mirror's back).
    fn bucket(&self) -> object_store::aws::AmazonS3 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.garage.endpoint())
            .with_allow_http(true)
            .with_region(self.garage.region())
            .with_bucket_name(self.garage.bucket())
            .with_access_key_id(&self.garage.key().id)
            .with_secret_access_key(&self.garage.key().secret)
            .with_virtual_hosted_style_request(false)
            .build()
            .expect("an S3 client")
    }

    /// Overwrites a blob in the bucket with other bytes of the same size: damage that only its
    /// hash reveals.
    async fn poison(&self, sha256: &str, size: usize) {
        use object_store::ObjectStoreExt as _;
        let key = format!("fleet/blobs/sha256/{sha256}");
        self.bucket()
            .put(
                &object_store::path::Path::from(key.as_str()),
                object_store::PutPayload::from(POISON.repeat(size)[..size].to_vec()),
            )
            .await
            .expect("overwrite the blob");
    }

    /// Deletes a blob from the bucket.
    async fn delete(&self, sha256: &str) {
        use object_store::ObjectStoreExt as _;
        let key = format!("fleet/blobs/sha256/{sha256}");
        self.bucket()
            .delete(&object_store::path::Path::from(key.as_str()))
            .await
            .expect("delete the blob");
    }
}

/// The JSON progress events among stderr's lines.
fn events(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The folder a pull printed last on stdout.
fn folder_of(out: &Output) -> PathBuf {
    let stdout = text(&out.stdout);
    PathBuf::from(stdout.lines().last().expect("a folder on stdout"))
}

/// Every file of an assembled folder (links followed) with its bytes; the manifest apart.
fn tree(folder: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry.file_name() != ".pipefetch.json" {
                let rel = path.strip_prefix(folder).expect("inside").to_string_lossy();
                out.insert(rel.into_owned(), std::fs::read(&path).expect("read"));
            }
        }
    }
    out
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
    let file = m.home.path().join("signed.lock");
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
    for entry in walk(m.home.path()) {
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

/// What no output may show: the secret key, the session token, and any part of a presigned URL
/// that grants access.
fn assert_no_secret(what: &str, output: &str, secret: &str) {
    for needle in [
        secret,
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

/// Every file under `dir` but `except`, as text, for [`assert_no_secret`].
fn files_as_text(dir: &Path, except: &[&Path]) -> Vec<(String, String)> {
    walk(dir)
        .into_iter()
        .filter(|p| !except.contains(&p.as_path()))
        .filter_map(|p| {
            let bytes = std::fs::read(&p).ok()?;
            Some((
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        })
        .collect()
}

/// Issue 9, done when: a spec mixing Hub, URL and local sources is pushed; with hub-server gone
/// and the local folders out of reach, a fresh machine pulls it with the mirror only, `check`
/// says available (with no mirror at all), and a machine with no credentials pulls it from a
/// presigned lock. Every run sets a secret key and a session token and logs at `-vv` with JSON
/// progress: neither, nor any signature, shows in any output or any file written, but in the
/// presigned lock's `mirror_url`s.
#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_machine_pulls_from_the_mirror_alone_and_no_secret_shows() {
    let Some(mut m) =
        mirrored("a_fresh_machine_pulls_from_the_mirror_alone_and_no_secret_shows").await
    else {
        return;
    };
    let secret = m.garage.key().secret.clone();
    let loud = ["-vv", "--progress", "json"];
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, out: &Output| {
        outputs.push((format!("{what} stdout"), text(&out.stdout)));
        outputs.push((format!("{what} stderr"), text(&out.stderr)));
    };

    let out = m
        .run(&[&["mirror", "push", &m.spec][..], &loud].concat(), &[])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    keep("push", &out);
    let signed = m.home.path().join("signed.lock");
    let signed_arg = signed.display().to_string();
    let out = m
        .run(
            &[
                &["mirror", "presign", &m.spec, "-o", &signed_arg][..],
                &loud,
            ]
            .concat(),
            &[],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    keep("presign", &out);
    let pushed = tree(&m.home.path().join("pipelines/mixed"));
    assert!(pushed.contains_key("unet/diffusion_pytorch_model.safetensors"));
    assert!(pushed.contains_key("tokenizer/vocab.json"));

    let hub_log = m.stop_hub().await;
    let _away = m.hide_local_folders();

    // A fresh machine, the mirror only: every file from the bucket.
    let a = tempfile::tempdir().expect("tempdir");
    let out = m
        .run_in(
            a.path(),
            &[&["pull", &m.spec, "--mirror-only"][..], &loud].concat(),
            &[],
        )
        .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let folder = folder_of(&out);
    assert_eq!(folder, a.path().join("pipelines/mixed"));
    assert_eq!(tree(&folder), pushed);
    let pulled = events(&stderr);
    assert_eq!(
        pulled.last().map(|e| e["event"].clone()),
        Some("done".into())
    );
    let started: Vec<&serde_json::Value> = pulled
        .iter()
        .filter(|e| e["event"] == "file_started")
        .collect();
    assert!(!started.is_empty());
    let mirror = format!("s3://{}/fleet", m.garage.bucket());
    assert!(
        started.iter().all(|e| e["repo"] == mirror.as_str()),
        "{started:#?}"
    );
    assert!(!stderr.contains("WARN"), "{stderr}");
    keep("pull --mirror-only", &out);

    // `check` needs nothing from the mirror: not its variables, not the Hub.
    let out = m
        .run_in(a.path(), &[&["check", &m.spec][..], &loud].concat(), &[])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("mixed: available"),
        "{}",
        text(&out.stdout)
    );
    keep("check", &out);
    let out = pipefetch_at(&m.endpoint, a.path(), &["check", &m.spec], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // A machine without credentials: the presigned lock alone (no AWS variable, no
    // PIPEFETCH_MIRROR).
    let b = tempfile::tempdir().expect("tempdir");
    let locked = [
        &["pull", "--locked", "--lockfile", &signed_arg, &m.spec][..],
        &loud,
    ]
    .concat();
    let out = pipefetch_at(&m.endpoint, b.path(), &locked, &[]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(tree(&folder_of(&out)), pushed);
    let garage_origin = m.garage.endpoint().to_string();
    assert!(
        events(&stderr)
            .iter()
            .filter(|e| e["event"] == "file_started")
            .all(|e| e["repo"] == garage_origin.as_str()),
        "{stderr}"
    );
    keep("pull of a presigned lock", &out);
    let out = pipefetch_at(&m.endpoint, b.path(), &["check", &m.spec, "-vv"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    keep("check after the presigned pull", &out);

    // Nothing shows a secret: not an output, not hub-server's log, not a file either machine
    // wrote (locks kept, the folders' manifests, the cache), but the presigned lock itself.
    outputs.push(("hub-server's request log".into(), hub_log.join("\n")));
    outputs.extend(files_as_text(m.home.path(), &[signed.as_path()]));
    outputs.extend(files_as_text(a.path(), &[]));
    outputs.extend(files_as_text(b.path(), &[]));
    assert!(
        outputs
            .iter()
            .any(|(what, _)| what.ends_with(".pipefetch.json")),
        "the folders' manifests are read"
    );
    for (what, output) in &outputs {
        assert_no_secret(what, output, &secret);
    }
}

/// Issue 9: a blob altered in the bucket is caught. With only the mirror, the pull fails naming
/// the file, with a hint, and keeps nothing of it; with the fallback, the file comes from the Hub
/// (a warning says so) and every other file from the mirror.
#[tokio::test(flavor = "multi_thread")]
async fn a_poisoned_blob_fails_a_mirror_only_pull_naming_the_file() {
    let Some(m) = mirrored("a_poisoned_blob_fails_a_mirror_only_pull_naming_the_file").await else {
        return;
    };
    let out = m.run(&["mirror", "push", &m.spec], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let target = "vae/diffusion_pytorch_model.safetensors";
    let (sha, size) = m.locked(target).await;
    m.poison(&sha, size).await;

    let strict = tempfile::tempdir().expect("tempdir");
    let out = m
        .run_in(strict.path(), &["pull", &m.spec, "--mirror-only"], &[])
        .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(&format!("`{target}`")), "{stderr}");
    assert!(
        stderr.contains(&format!("s3://{}/fleet", m.garage.bucket())),
        "{stderr}"
    );
    assert!(
        stderr.contains("failed verification: sha256 is"),
        "{stderr}"
    );
    // A push does not replace a blob of the right size: the hint says to delete it first.
    let key = format!("s3://{}/fleet/blobs/sha256/{sha}", m.garage.bucket());
    assert!(stderr.contains(&format!("hint: the mirror holds other bytes of the right size, which a push does not replace: delete {key}, then run `pipefetch mirror push` again")), "{stderr}");
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert!(
        walk(strict.path())
            .iter()
            .all(|p| std::fs::read(p).map_or(true, |b| !b.starts_with(POISON))),
        "the poisoned bytes were kept"
    );

    // With the fallback (PIPEFETCH_MIRROR alone turns the mirror on): the Hub serves that file
    // and nothing else.
    let home = tempfile::tempdir().expect("tempdir");
    m.hub().log().clear();
    let out = m.run_in(home.path(), &["pull", &m.spec], &[]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains(target),
        "{stderr}"
    );
    assert_eq!(
        tree(&folder_of(&out)),
        tree(&m.home.path().join("pipelines/mixed"))
    );
    let from_hub: Vec<String> = m
        .hub()
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.method == "GET")
        .map(|e| e.path)
        .collect();
    assert!(!from_hub.is_empty());
    assert!(
        from_hub
            .iter()
            .all(|p| p.ends_with("diffusion_pytorch_model.safetensors") || p.contains(&sha)),
        "only the poisoned file comes from the Hub: {from_hub:#?}"
    );

    // `--no-mirror` ignores PIPEFETCH_MIRROR: everything from the origins.
    let plain = tempfile::tempdir().expect("tempdir");
    m.hub().log().clear();
    let out = m
        .run_in(plain.path(), &["pull", &m.spec, "--no-mirror"], &[])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("WARN"), "{}", text(&out.stderr));
    assert!(m.hub().log().entries().len() > from_hub.len());

    // As the hint says: a push alone leaves the damage; delete the blob, push, and the mirror
    // serves every file again.
    let out = m.run(&["mirror", "push", &m.spec], &[]).await;
    assert!(
        text(&out.stderr).contains(" 0 uploaded"),
        "{}",
        text(&out.stderr)
    );
    m.delete(&sha).await;
    let out = m.run(&["mirror", "push", &m.spec], &[]).await;
    assert!(
        text(&out.stderr).contains(" 1 uploaded"),
        "{}",
        text(&out.stderr)
    );
    let repaired = tempfile::tempdir().expect("tempdir");
    let out = m
        .run_in(repaired.path(), &["pull", &m.spec, "--mirror-only"], &[])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
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
