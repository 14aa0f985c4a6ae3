//! Errors a user can act on: refused credentials, a missing bucket, an unreachable endpoint,
//! missing or malformed settings. Each names the bucket and endpoint and carries a hint.

use std::net::TcpListener;

use pipefetch_mirror::{Credentials, Error, Mirror, MirrorEnv, Sha256Hex};

use crate::{builder, garage, guard};

/// The error, its causes and its hint, as the CLI will print them.
pub fn rendered(err: &Error) -> String {
    let mut out = format!("error: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        out.push_str(&format!("\ncaused by: {s}"));
        source = s.source();
    }
    if let Some(hint) = err.hint() {
        out.push_str(&format!("\nhint: {hint}"));
    }
    out.push_str(&format!("\n{err:?}"));
    out
}

#[tokio::test]
async fn refused_credentials_are_named_without_the_secret() {
    let Some(garage) = garage("refused_credentials_are_named_without_the_secret").await else {
        return;
    };
    guard(async {
        let wrong_secret = "0000000000000000000000000000000000000000000000000000000000000000";
        let cases = [
            // A known key with the wrong secret.
            Credentials::new(&garage.key().id, wrong_secret),
            // A key the store does not know.
            Credentials::new("GK0000000000000000deadbeef", wrong_secret),
        ];
        for creds in cases {
            let mirror = builder(&garage, "x")
                .credentials(creds.clone())
                .build()
                .unwrap();
            for err in [
                mirror.probe().await.unwrap_err(),
                mirror.blob_size(&Sha256Hex::of(b"x")).await.unwrap_err(),
            ] {
                let text = rendered(&err);
                let Error::AccessDenied {
                    request, key_id, ..
                } = &err
                else {
                    panic!("{text}");
                };
                assert_eq!(request.bucket, garage.bucket());
                assert_eq!(request.endpoint, garage.endpoint());
                assert_eq!(key_id, &creds.masked_key_id());
                assert!(text.contains(garage.bucket()) && text.contains(garage.endpoint()));
                assert!(text.contains("hint: "), "{text}");
                assert!(!text.contains(wrong_secret), "{text}");
                assert!(!text.contains(&garage.key().secret), "{text}");
                // Our message masks the key id (an identifier, not a secret: the store's own
                // message in the causes may repeat it, as Garage's "No such key: GK…" does).
                assert!(!err.to_string().contains(&creds.access_key_id), "{text}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_missing_bucket_is_named() {
    let Some(garage) = garage("a_missing_bucket_is_named").await else {
        return;
    };
    guard(async {
        let location = "s3://no-such-bucket/p".parse().unwrap();
        let mirror = Mirror::builder(location)
            .endpoint(Some(garage.endpoint().to_string()))
            .region(garage.region())
            .credentials(Credentials::new(&garage.key().id, &garage.key().secret))
            .retry_delays(false)
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (path, sha) = crate::file(dir.path(), "f", b"hello");
        let errors = [
            mirror.probe().await.unwrap_err(),
            mirror.get_lock("sdxl").await.unwrap_err(),
            mirror.upload_blob(&path, &sha, 5, &()).await.unwrap_err(),
        ];
        for err in errors {
            let text = rendered(&err);
            assert!(
                matches!(&err, Error::BucketNotFound { bucket, .. } if bucket == "no-such-bucket"),
                "{text}"
            );
            assert!(text.contains(garage.endpoint()), "{text}");
            assert!(err.hint().unwrap().contains("no-such-bucket"), "{text}");
        }
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named() {
    guard(async {
        // A port that was free a moment ago: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mirror = Mirror::builder("s3://models/p".parse().unwrap())
            .endpoint(Some(endpoint.clone()))
            .credentials(Credentials::new("GKid", "secret-value"))
            .max_retries(0)
            .build()
            .unwrap();
        let err = mirror.probe().await.unwrap_err();
        let text = rendered(&err);
        assert!(matches!(err, Error::Unreachable { .. }), "{text}");
        assert!(text.contains(&endpoint), "{text}");
        assert!(err.hint().unwrap().contains("AWS_ENDPOINT_URL"), "{text}");
        assert!(!text.contains("secret-value"), "{text}");
    })
    .await;
}

#[test]
fn missing_credentials_and_bad_endpoints_are_refused_before_any_request() {
    let location = || "s3://models/p".parse().unwrap();
    let env = MirrorEnv::from_vars(|_| None);
    let err = Mirror::from_env(location(), &env).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingCredentials {
                missing: "AWS_ACCESS_KEY_ID"
            }
        ),
        "{err:?}"
    );
    assert!(err.hint().unwrap().contains("AWS_SECRET_ACCESS_KEY"));

    for endpoint in [
        "http://storage.example.com:9000",
        "ftp://127.0.0.1",
        "https://user:pw@r2.example.com",
        "https://r2.example.com/?x=1",
        "not a url",
    ] {
        let err = Mirror::builder(location())
            .endpoint(Some(endpoint.to_string()))
            .credentials(Credentials::new("id", "secret"))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEndpoint { .. }),
            "{endpoint}: {err:?}"
        );
        assert!(err.hint().is_some());
    }
    // https anywhere, http on loopback only.
    for endpoint in [
        "https://acct.r2.cloudflarestorage.com",
        "http://localhost:3900",
    ] {
        Mirror::builder(location())
            .endpoint(Some(endpoint.to_string()))
            .credentials(Credentials::new("id", "secret"))
            .build()
            .unwrap();
    }
}
