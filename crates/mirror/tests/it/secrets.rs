//! No secret in any output: every error (message, causes, hint, Debug), every Debug of our
//! types, and every log line of every crate at TRACE level, over a run that succeeds and runs
//! that fail, with a secret key and a session token set.

use std::time::Duration;

use bytes::Bytes;
use pipefetch_mirror::{Credentials, Mirror, MirrorEnv, Secret, Sha256Hex};

use crate::errors::rendered;
use crate::{PART, builder, bytes, capture_logs, captured_logs, file, garage, guard};

#[tokio::test]
async fn no_secret_appears_in_errors_debug_or_logs() {
    capture_logs();
    let Some(garage) = garage("no_secret_appears_in_errors_debug_or_logs").await else {
        return;
    };
    guard(async {
        let real_secret = garage.key().secret.clone();
        let wrong_secret = "SECRETwrongSECRETwrongSECRETwrongSECRETwrong";
        let session_token = "TOKENsessionTOKENsessionTOKENsessionTOKEN";
        let mut outputs: Vec<String> = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        let big = bytes(PART as usize + 1000, 8);
        let (big_path, big_sha) = file(dir.path(), "big", &big);

        // A run that succeeds, configured from the environment as the CLI will be.
        let vars = [
            ("AWS_ENDPOINT_URL", garage.endpoint().to_string()),
            ("AWS_REGION", garage.region().to_string()),
            ("AWS_ACCESS_KEY_ID", garage.key().id.clone()),
            ("AWS_SECRET_ACCESS_KEY", real_secret.clone()),
            ("PIPEFETCH_MIRROR", format!("s3://{}/s", garage.bucket())),
        ];
        let env = MirrorEnv::from_vars(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
        });
        let location = env.mirror_location().unwrap().unwrap();
        let good = Mirror::from_env(location.clone(), &env).unwrap();
        good.probe().await.unwrap();
        good.upload_blob(&big_path, &big_sha, big.len() as u64, &())
            .await
            .unwrap();
        good.put_lock("p", Bytes::from_static(b"{}")).await.unwrap();
        good.get_lock("p").await.unwrap();
        let url = good
            .presign_blob(&big_sha, Duration::from_secs(60))
            .await
            .unwrap();
        outputs.extend([
            format!("{env:?}"),
            format!("{good:?}"),
            format!("{url} {url:?}"),
            format!("{:?}", env.credentials().unwrap()),
            format!("{:?}", builder(&garage, "s")),
        ]);

        // Runs that fail: a wrong secret with a session token, for every operation.
        let mut creds = Credentials::new(&garage.key().id, wrong_secret);
        creds.session_token = Some(Secret::new(session_token));
        let bad = builder(&garage, "s")
            .credentials(creds.clone())
            .build()
            .unwrap();
        outputs.push(format!("{bad:?} {creds:?}"));
        let sha = Sha256Hex::of(b"x");
        let errors = [
            bad.probe().await.err(),
            bad.blob_size(&big_sha).await.err(),
            bad.upload_blob(&big_path, &big_sha, big.len() as u64, &())
                .await
                .err(),
            bad.get_lock("p").await.err(),
            bad.put_lock("p", Bytes::from_static(b"{}")).await.err(),
            bad.get_lock_version("p", &sha).await.err(),
        ];
        for err in errors {
            let err = err.expect("every operation with a wrong secret fails");
            outputs.push(rendered(&err));
        }
        // A presigned URL made with a session token carries it in its query: shown, it must not.
        let url = bad
            .presign_blob(&big_sha, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(url.expose().as_str().contains(session_token));
        outputs.push(format!("{url} {url:?}"));

        outputs.push(captured_logs());
        let logs = captured_logs();
        for target in ["pipefetch_mirror", "object_store", "reqwest", "hyper_util"] {
            assert!(
                logs.contains(target),
                "no log line of {target} was captured"
            );
        }
        for out in &outputs {
            for secret in [real_secret.as_str(), wrong_secret, session_token] {
                assert!(
                    !out.contains(secret),
                    "a secret appears in an output:\n{out}"
                );
            }
        }
    })
    .await;
}
