//! Blobs: upload (single and multipart), skip when present, interruption, verification.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pipefetch_mirror::{Error, Sha256Hex, Upload, UploadProgress};
use tokio::sync::Notify;

use crate::{PART, bytes, download, file, garage, guard, mirror, requests_since, writes};

/// Counts acknowledged bytes and wakes a waiter at each acknowledgement.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    acked: Notify,
}

impl UploadProgress for Progress {
    fn sent(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::SeqCst);
        self.acked.notify_one();
    }
}

#[tokio::test]
async fn multipart_round_trip_is_byte_exact() {
    let Some(garage) = garage("multipart_round_trip_is_byte_exact").await else {
        return;
    };
    guard(async {
        let mirror = mirror(&garage, "fleet/a");
        let dir = tempfile::tempdir().unwrap();
        // Two full parts and a short third one.
        let content = bytes(2 * PART as usize + 123_457, 1);
        let (path, sha) = file(dir.path(), "unet.safetensors", &content);
        let before = garage.requests().unwrap().len();
        let progress = Progress::default();

        let outcome = mirror
            .upload_blob(&path, &sha, content.len() as u64, &progress)
            .await
            .unwrap();

        assert_eq!(outcome, Upload::Multipart { parts: 3 });
        assert_eq!(progress.sent.load(Ordering::SeqCst), content.len() as u64);
        let key = format!("/{}/fleet/a/blobs/sha256/{sha}", garage.bucket());
        let reqs = requests_since(&garage, before);
        let writes = writes(&reqs);
        // CreateMultipartUpload, three UploadParts, CompleteMultipartUpload: all on the final key.
        assert_eq!(writes.len(), 5, "{writes:#?}");
        assert!(writes.iter().all(|r| r.path == key), "{writes:#?}");
        assert_eq!(writes.iter().filter(|r| r.method == "PUT").count(), 3);
        assert_eq!(
            mirror.blob_size(&sha).await.unwrap(),
            Some(content.len() as u64)
        );
        let back = download(&mirror, &sha).await;
        assert_eq!(back.len(), content.len());
        assert_eq!(Sha256Hex::of(&back), sha);
        assert!(back == content);
    })
    .await;
}

#[tokio::test]
async fn a_present_blob_is_not_uploaded_again() {
    let Some(garage) = garage("a_present_blob_is_not_uploaded_again").await else {
        return;
    };
    guard(async {
        let mirror = mirror(&garage, "p");
        let dir = tempfile::tempdir().unwrap();
        let small = bytes(70_000, 2);
        let big = bytes(PART as usize + 10, 3);
        let (small_path, small_sha) = file(dir.path(), "config.json", &small);
        let (big_path, big_sha) = file(dir.path(), "vae.safetensors", &big);

        let before = garage.requests().unwrap().len();
        assert_eq!(
            mirror
                .upload_blob(&small_path, &small_sha, small.len() as u64, &())
                .await
                .unwrap(),
            Upload::Single
        );
        assert_eq!(
            mirror
                .upload_blob(&big_path, &big_sha, big.len() as u64, &())
                .await
                .unwrap(),
            Upload::Multipart { parts: 2 }
        );
        let first = requests_since(&garage, before);
        // One PUT; POST uploads, two part PUTs, POST complete.
        assert_eq!(writes(&first).len(), 1 + 4, "{first:#?}");

        let again = garage.requests().unwrap().len();
        let progress = Progress::default();
        for (path, sha, len) in [
            (&small_path, &small_sha, small.len()),
            (&big_path, &big_sha, big.len()),
        ] {
            let outcome = mirror
                .upload_blob(path, sha, len as u64, &progress)
                .await
                .unwrap();
            assert_eq!(outcome, Upload::AlreadyPresent);
        }
        let second = requests_since(&garage, again);
        assert!(writes(&second).is_empty(), "{second:#?}");
        // One HEAD per blob, nothing else.
        assert_eq!(second.len(), 2, "{second:#?}");
        assert!(second.iter().all(|r| r.method == "HEAD"));
        // Skipped bytes count as done, so a push's progress reaches its total.
        assert_eq!(
            progress.sent.load(Ordering::SeqCst),
            (small.len() + big.len()) as u64
        );
    })
    .await;
}

#[tokio::test]
async fn an_interrupted_upload_leaves_no_object_and_a_rerun_sends_only_what_is_missing() {
    let Some(garage) =
        garage("an_interrupted_upload_leaves_no_object_and_a_rerun_sends_only_what_is_missing")
            .await
    else {
        return;
    };
    guard(async {
        let mirror = mirror(&garage, "resume");
        let dir = tempfile::tempdir().unwrap();
        let done = bytes(100_000, 4);
        let big = bytes(3 * PART as usize + 1, 5);
        let (done_path, done_sha) = file(dir.path(), "done.json", &done);
        let (big_path, big_sha) = file(dir.path(), "big.safetensors", &big);
        mirror
            .upload_blob(&done_path, &done_sha, done.len() as u64, &())
            .await
            .unwrap();

        // Interrupt the big upload as soon as the store acknowledged its first part: the
        // upload's future is dropped, as when a push is killed.
        let progress = Arc::new(Progress::default());
        let upload = mirror.upload_blob(&big_path, &big_sha, big.len() as u64, &*progress);
        tokio::select! {
            result = upload => panic!("the upload finished before the interruption: {result:?}"),
            () = progress.acked.notified() => {}
        }
        // Some part was stored (parts finish in any order: the 1-byte last one may be first).
        let sent = progress.sent.load(Ordering::SeqCst);
        assert!(sent > 0 && sent < big.len() as u64, "{sent}");
        assert_eq!(mirror.blob_size(&big_sha).await.unwrap(), None);
        let key = format!("/{}/resume/blobs/sha256/{big_sha}", garage.bucket());
        let completed = garage
            .requests()
            .unwrap()
            .iter()
            .filter(|r| r.path == key && r.method == "POST" && r.query.contains("uploadId"))
            .count();
        assert_eq!(completed, 0, "the multipart upload was never completed");

        // The rerun: the finished blob is only checked, the interrupted one is sent.
        let rerun = garage.requests().unwrap().len();
        for (path, sha, len) in [
            (&done_path, &done_sha, done.len()),
            (&big_path, &big_sha, big.len()),
        ] {
            mirror
                .upload_blob(path, sha, len as u64, &())
                .await
                .unwrap();
        }
        let reqs = requests_since(&garage, rerun);
        let writes = writes(&reqs);
        assert!(!writes.is_empty());
        assert!(
            writes.iter().all(|r| r.path == key),
            "only the missing blob is written: {writes:#?}"
        );
        assert_eq!(
            mirror.blob_size(&big_sha).await.unwrap(),
            Some(big.len() as u64)
        );
    })
    .await;
}

#[tokio::test]
async fn a_file_that_does_not_match_its_digest_never_lands() {
    let Some(garage) = garage("a_file_that_does_not_match_its_digest_never_lands").await else {
        return;
    };
    guard(async {
        let mirror = mirror(&garage, "verify");
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in [("small", 1000), ("big", PART as usize + 5)] {
            let content = bytes(len, 6);
            let (path, _) = file(dir.path(), name, &content);
            // The digest the caller believes in (say, from a lock) is another file's.
            let claimed = Sha256Hex::of(b"something else");
            let err = mirror
                .upload_blob(&path, &claimed, len as u64, &())
                .await
                .unwrap_err();
            match &err {
                Error::LocalMismatch {
                    what: "sha256",
                    expected,
                    actual,
                    ..
                } => {
                    assert_eq!(expected, claimed.as_str());
                    assert_eq!(actual, Sha256Hex::of(&content).as_str());
                }
                other => panic!("{name}: {other:?}"),
            }
            assert!(err.hint().is_some());
            assert_eq!(mirror.blob_size(&claimed).await.unwrap(), None, "{name}");

            let err = mirror
                .upload_blob(&path, &Sha256Hex::of(&content), len as u64 + 1, &())
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::LocalMismatch { what: "size", .. }),
                "{err:?}"
            );
        }
        // Nothing at all was stored under the blobs.
        let stored = garage
            .requests()
            .unwrap()
            .into_iter()
            .filter(|r| r.is_write() && r.method == "POST" && r.query.contains("uploadId"))
            .count();
        assert_eq!(stored, 0);
        assert!(
            !garage
                .requests()
                .unwrap()
                .iter()
                .any(|r| r.method == "PUT" && r.query.is_empty())
        );
    })
    .await;
}

#[tokio::test]
async fn a_missing_blob_is_none_and_its_presigned_url_answers_404() {
    let Some(garage) = garage("a_missing_blob_is_none_and_its_presigned_url_answers_404").await
    else {
        return;
    };
    guard(async {
        let mirror = mirror(&garage, "m");
        let sha = Sha256Hex::of(b"never uploaded");
        assert_eq!(mirror.blob_size(&sha).await.unwrap(), None);
        let url = mirror
            .presign_blob(&sha, Duration::from_secs(60))
            .await
            .unwrap();
        let client = pipefetch_hub_client::HubClient::builder().build().unwrap();
        let mut body = Vec::new();
        let err = client
            .download_url(url.expose(), None, 0.., &mut body)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
        assert!(body.is_empty());
    })
    .await;
}
