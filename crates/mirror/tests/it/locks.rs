//! Locks: the current one by name, every one by its hash.

use bytes::Bytes;
use pipefetch_mirror::{Error, Sha256Hex};

use crate::{garage, guard, mirror};

#[tokio::test]
async fn locks_are_stored_by_name_and_by_hash() {
    let Some(garage) = garage("locks_are_stored_by_name_and_by_hash").await else {
        return;
    };
    guard(async {
        let mirror = mirror(&garage, "fleet");
        assert_eq!(mirror.get_lock("sdxl").await.unwrap(), None);

        let v1 = Bytes::from_static(br#"{"version":1,"name":"sdxl","files":[]}"#);
        let keys = mirror.put_lock("sdxl", v1.clone()).await.unwrap();
        assert_eq!(keys.sha256, Sha256Hex::of(&v1));
        assert_eq!(keys.current, "fleet/pipelines/sdxl.lock");
        assert_eq!(
            keys.version,
            format!("fleet/pipelines/sdxl/{}.lock", keys.sha256)
        );
        assert_eq!(mirror.get_lock("sdxl").await.unwrap(), Some(v1.clone()));

        // A new push replaces the current lock; the old one stays addressable by its hash.
        let v2 = Bytes::from_static(br#"{"version":1,"name":"sdxl","files":[{}]}"#);
        mirror.put_lock("sdxl", v2.clone()).await.unwrap();
        assert_eq!(mirror.get_lock("sdxl").await.unwrap(), Some(v2));
        assert_eq!(
            mirror.get_lock_version("sdxl", &keys.sha256).await.unwrap(),
            Some(v1)
        );
        assert_eq!(
            mirror
                .get_lock_version("sdxl", &Sha256Hex::of(b"none"))
                .await
                .unwrap(),
            None
        );

        // Names go into keys: only the spec's safe names are accepted, before any request.
        let before = garage.requests().unwrap().len();
        for bad in ["../x", "a/b", "", ".hidden"] {
            let err = mirror.get_lock(bad).await.unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad}: {err:?}");
        }
        assert_eq!(garage.requests().unwrap().len(), before);
    })
    .await;
}
