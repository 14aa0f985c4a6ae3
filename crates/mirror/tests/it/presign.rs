//! Presigned GET URLs, fetched by our own HTTP client with `Range`, as the engine will.

use std::time::Duration;

use pipefetch_hub_client::{ByteRange, HubClient};

use crate::{bytes, file, garage, guard, mirror};

#[tokio::test]
async fn a_presigned_url_serves_ranges_to_the_hub_client() {
    let Some(garage) = garage("a_presigned_url_serves_ranges_to_the_hub_client").await else {
        return;
    };
    guard(async {
        let mirror = mirror(&garage, "ranges");
        let dir = tempfile::tempdir().unwrap();
        let content = bytes(3_000_000, 7);
        let (path, sha) = file(dir.path(), "text_encoder.safetensors", &content);
        mirror
            .upload_blob(&path, &sha, content.len() as u64, &())
            .await
            .unwrap();
        let url = mirror
            .presign_blob(&sha, Duration::from_secs(600))
            .await
            .unwrap();
        // The signature is in the query; what is shown has none.
        assert!(url.expose().query().unwrap().contains("X-Amz-Signature"));
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(!shown.contains("X-Amz-"), "{shown}");
            assert!(shown.contains(sha.as_str()), "{shown}");
        }

        let client = HubClient::builder().build().unwrap();
        // A range in the middle: the signature covers the request without `Range`, and the
        // store must honour it (206 with the exact Content-Range).
        let (start, end) = (1_048_000u64, 2_100_001u64);
        let range = ByteRange {
            start,
            end: Some(end),
        };
        let (mut stream, head) = client
            .get_stream(url.expose(), None, Some(range))
            .await
            .unwrap();
        assert_eq!(head.status, 206);
        assert_eq!(
            head.content_range,
            Some((start, end - 1, Some(content.len() as u64)))
        );
        let body = stream.collect_capped(4 << 20).await.unwrap();
        assert!(body[..] == content[start as usize..end as usize]);

        // The resumable path the engine uses: the last bytes, into a sink that starts there.
        let mut tail = Tail {
            from: 2_999_000,
            bytes: Vec::new(),
        };
        let outcome = client
            .download_url(url.expose(), None, 2_999_000.., &mut tail)
            .await
            .unwrap();
        assert_eq!(outcome.total, Some(content.len() as u64));
        assert!(tail.bytes[..] == content[2_999_000..]);
    })
    .await;
}

/// A sink holding the bytes of a file from `from` on.
struct Tail {
    from: u64,
    bytes: Vec<u8>,
}

impl pipefetch_hub_client::BodySink for Tail {
    async fn write(&mut self, chunk: bytes::Bytes) -> std::io::Result<()> {
        self.bytes.extend_from_slice(&chunk);
        Ok(())
    }

    async fn restart(&mut self, from: u64) -> std::io::Result<()> {
        self.bytes.truncate(from.saturating_sub(self.from) as usize);
        Ok(())
    }

    fn position(&self) -> u64 {
        self.from + self.bytes.len() as u64
    }
}

#[tokio::test]
async fn a_presigned_lock_serves_every_file_and_names_a_missing_blob() {
    let Some(garage) = garage("a_presigned_lock_serves_every_file_and_names_a_missing_blob").await
    else {
        return;
    };
    guard(async {
        let w = crate::world::World::new().await;
        let home = tempfile::tempdir().unwrap();
        let fetcher = w.fetcher(home.path());
        let lock = w.lock(&fetcher).await;
        let mirror = mirror(&garage, "signed");
        let err = mirror
            .read_lock(crate::world::NAME, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, pipefetch_mirror::Error::LockNotFound { .. }),
            "{err:?}"
        );
        assert!(err.hint().unwrap().contains("mirror push"), "{err}");
        mirror
            .push(
                &fetcher,
                &lock,
                &crate::world::Events::default(),
                &Default::default(),
            )
            .await
            .unwrap();

        let mirrored = mirror.read_lock(crate::world::NAME, None).await.unwrap();
        let before = garage.requests().unwrap().len();
        let signed = mirror
            .presign_lock(&mirrored, Duration::from_secs(600))
            .await
            .unwrap();
        // One HEAD per file, nothing else: signing is local.
        let reqs = crate::requests_since(&garage, before);
        assert_eq!(reqs.len(), lock.files.len(), "{reqs:#?}");
        assert!(reqs.iter().all(|r| r.method == "HEAD"));

        let client = HubClient::builder().build().unwrap();
        for (file, original) in signed.files.iter().zip(&lock.files) {
            let url = file.mirror_url.as_deref().expect("a mirror_url per file");
            assert!(
                url.contains(&file.sha256) && url.contains("X-Amz-Signature="),
                "{url}"
            );
            assert!(url.contains("X-Amz-Expires=600"), "{url}");
            let mut body = Vec::new();
            client
                .download_url(&url.parse().unwrap(), None, 0.., &mut body)
                .await
                .unwrap();
            assert_eq!(body.len() as u64, file.size);
            assert_eq!(pipefetch_mirror::Sha256Hex::of(&body).as_str(), file.sha256);
            // Nothing else changed.
            let mut plain = file.clone();
            plain.mirror_url = None;
            assert_eq!(&plain, original);
        }

        // A blob the mirror does not have: an error naming the file, before any URL is made.
        let mut broken = mirrored.clone();
        broken.files[0].sha256 = pipefetch_mirror::Sha256Hex::of(b"absent").to_string();
        let err = mirror
            .presign_lock(&broken, Duration::from_secs(600))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&broken.files[0].target), "{err}");
        assert!(err.hint().unwrap().contains("push"), "{err}");
        for ttl in [Duration::ZERO, Duration::from_secs(8 * 24 * 3600)] {
            let err = mirror.presign_lock(&mirrored, ttl).await.unwrap_err();
            assert!(
                matches!(err, pipefetch_mirror::Error::InvalidExpiry { .. }),
                "{err:?}"
            );
        }
    })
    .await;
}
