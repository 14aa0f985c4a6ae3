//! Pushing a pipeline that mixes Hub, URL and local sources: each distinct blob once, the lock
//! by name and by hash, nothing again on a second push, only what is missing after an
//! interruption.

use std::collections::{BTreeMap, BTreeSet};

use pipefetch_fetcher::Event;
use pipefetch_mirror::{Mirror, PushOptions, Sha256Hex};
use pipefetch_test_garage::{Garage, Request};

use crate::world::{Events, NAME, World, distinct};
use crate::{builder, download, garage, guard, mirror, requests_since, writes};

/// `/BUCKET/PREFIX/KEY`, as Garage logs a request's path.
fn logged(garage: &Garage, key: &str) -> String {
    format!("/{}/{key}", garage.bucket())
}

/// The keys `requests` stored bytes under, each with how many objects were completed there (a
/// single `PUT`, or the `POST` completing a multipart upload).
fn completed(requests: &[Request]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in writes(requests) {
        let done = (r.method == "PUT" && r.query.is_empty())
            || (r.method == "POST" && r.query.contains("uploadId"));
        *out.entry(r.path.clone()).or_insert(0) += usize::from(done);
    }
    out
}

/// The blob keys of a lock's distinct blobs.
fn blob_keys(mirror: &Mirror, blobs: &BTreeMap<Sha256Hex, u64>) -> BTreeSet<String> {
    blobs
        .keys()
        .map(|sha| mirror.location().blob_key(sha))
        .collect()
}

#[tokio::test]
async fn a_push_stores_each_distinct_blob_once_and_the_lock_by_name_and_hash() {
    let Some(garage) =
        garage("a_push_stores_each_distinct_blob_once_and_the_lock_by_name_and_hash").await
    else {
        return;
    };
    guard(async {
        let w = World::new().await;
        let home = tempfile::tempdir().unwrap();
        let fetcher = w.fetcher(home.path());
        let lock = w.lock(&fetcher).await;
        let kinds: BTreeSet<&str> = lock.files.iter().map(|f| f.source.kind.as_str()).collect();
        assert_eq!(kinds, ["hub", "local", "url"].into_iter().collect());
        let blobs = distinct(&lock);
        assert!(
            blobs.len() < lock.files.len(),
            "two files share their bytes"
        );
        let mirror = mirror(&garage, "fleet");

        let before = garage.requests().unwrap().len();
        let events = Events::default();
        let pushed = mirror
            .push(&fetcher, &lock, &events, &PushOptions::default())
            .await
            .unwrap();

        assert_eq!(pushed.files, lock.files.len());
        assert_eq!(pushed.blobs, blobs.len());
        assert_eq!(pushed.uploaded_blobs, blobs.len());
        assert_eq!(pushed.uploaded_bytes, blobs.values().sum::<u64>());
        assert_eq!((pushed.present_blobs, pushed.present_bytes), (0, 0));
        assert!(pushed.lock_written);
        assert!(pushed.folder.is_some());

        // The bucket holds exactly the blobs and the two copies of the lock.
        let lock_text = lock.to_json();
        let lock_sha = Sha256Hex::of(lock_text.as_bytes());
        assert_eq!(pushed.keys.sha256, lock_sha);
        assert_eq!(pushed.keys.current, format!("fleet/pipelines/{NAME}.lock"));
        assert_eq!(
            pushed.keys.version,
            format!("fleet/pipelines/{NAME}/{lock_sha}.lock")
        );
        let mut expected: BTreeMap<String, u64> = blobs
            .iter()
            .map(|(sha, size)| (mirror.location().blob_key(sha), *size))
            .collect();
        expected.insert(pushed.keys.current.clone(), lock_text.len() as u64);
        expected.insert(pushed.keys.version.clone(), lock_text.len() as u64);
        let objects: BTreeMap<String, u64> = mirror.objects().await.unwrap().into_iter().collect();
        assert_eq!(objects, expected);

        // Each blob holds the bytes its sha256 names; the big local file is byte-exact.
        for (sha, size) in &blobs {
            let body = download(&mirror, sha).await;
            assert_eq!(body.len() as u64, *size);
            assert_eq!(&Sha256Hex::of(&body), sha);
        }
        assert!(download(&mirror, &Sha256Hex::of(&w.big)).await == w.big);

        // The lock, by name and by hash, is the lock pushed.
        assert_eq!(mirror.read_lock(NAME, None).await.unwrap(), lock);
        assert_eq!(mirror.read_lock(NAME, Some(&lock_sha)).await.unwrap(), lock);
        assert_eq!(
            mirror.get_lock(NAME).await.unwrap().unwrap(),
            lock_text.as_bytes()
        );

        // Garage's log: one completed object per blob and per lock key, nothing else written.
        let reqs = requests_since(&garage, before);
        let mut want: BTreeMap<String, usize> = blob_keys(&mirror, &blobs)
            .iter()
            .map(|k| (logged(&garage, k), 1))
            .collect();
        want.insert(logged(&garage, &pushed.keys.current), 1);
        want.insert(logged(&garage, &pushed.keys.version), 1);
        assert_eq!(completed(&reqs), want, "{:#?}", writes(&reqs));
        let big_key = logged(&garage, &mirror.location().blob_key(&Sha256Hex::of(&w.big)));
        let parts = reqs
            .iter()
            .filter(|r| r.path == big_key && r.method == "PUT" && r.query.contains("partNumber"))
            .count();
        assert_eq!(parts, 3, "the big file went up in three parts");

        // Progress: one run over the blobs, each file started, progressing to its size, done.
        let events = events.all();
        assert_eq!(
            events.first(),
            Some(&Event::Plan {
                files: blobs.len() as u64,
                total_bytes: blobs.values().sum(),
                cached_files: 0,
                cached_bytes: 0,
            })
        );
        assert!(
            matches!(events.last(), Some(Event::Done { files, bytes_downloaded, .. })
                if *files == blobs.len() as u64 && *bytes_downloaded == pushed.uploaded_bytes),
            "{:?}",
            events.last()
        );
        let mut sizes = BTreeMap::new();
        let mut positions: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut done = BTreeSet::new();
        for e in &events {
            match e {
                Event::FileStarted { file, size, .. } => {
                    sizes.insert(*file, *size);
                }
                Event::Progress {
                    file, bytes_done, ..
                } => positions.entry(*file).or_default().push(*bytes_done),
                Event::FileDone { file, bytes, .. } => {
                    assert_eq!(sizes.get(file), Some(bytes));
                    done.insert(*file);
                }
                _ => {}
            }
        }
        assert_eq!(done.len(), blobs.len());
        for (file, seen) in &positions {
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{file}: {seen:?}");
            assert_eq!(seen.last(), sizes.get(file), "{file}");
        }
        let big_positions = positions
            .values()
            .find(|p| p.last() == Some(&(w.big.len() as u64)))
            .unwrap();
        assert_eq!(
            big_positions.len(),
            3,
            "a progress event per part: {big_positions:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_second_push_uploads_nothing_and_another_machine_pulls_nothing() {
    let Some(garage) =
        garage("a_second_push_uploads_nothing_and_another_machine_pulls_nothing").await
    else {
        return;
    };
    guard(async {
        let w = World::new().await;
        let home = tempfile::tempdir().unwrap();
        let fetcher = w.fetcher(home.path());
        let lock = w.lock(&fetcher).await;
        let mirror = mirror(&garage, "again");
        let first = mirror
            .push(&fetcher, &lock, &Events::default(), &PushOptions::default())
            .await
            .unwrap();

        // Again from the same machine, then from another one that has only the lock.
        let other = tempfile::tempdir().unwrap();
        for fetcher in [fetcher, w.fetcher(other.path())] {
            let before = garage.requests().unwrap().len();
            w.hub.log().clear();
            let events = Events::default();
            let again = mirror
                .push(&fetcher, &lock, &events, &PushOptions::default())
                .await
                .unwrap();
            let reqs = requests_since(&garage, before);
            assert!(writes(&reqs).is_empty(), "{:#?}", writes(&reqs));
            assert_eq!(again.uploaded_blobs, 0);
            assert_eq!(again.present_blobs, first.blobs);
            assert_eq!(again.present_bytes, first.uploaded_bytes);
            assert!(!again.lock_written);
            assert_eq!(again.keys, first.keys);
            // Nothing was missing, so nothing was pulled: not a request to the Hub.
            assert_eq!(again.folder, None);
            assert_eq!(w.hub.log().entries(), vec![]);
            let events = events.all();
            assert!(matches!(
                events.first(),
                Some(Event::Plan { files, cached_files, .. }) if files == cached_files
            ));
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, Event::FileStarted { .. })),
                "{events:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn an_interrupted_push_rerun_uploads_only_the_missing_blobs() {
    let Some(garage) = garage("an_interrupted_push_rerun_uploads_only_the_missing_blobs").await
    else {
        return;
    };
    guard(async {
        let w = World::new().await;
        let home = tempfile::tempdir().unwrap();
        let fetcher = w.fetcher(home.path());
        let lock = w.lock(&fetcher).await;
        let blobs = distinct(&lock);
        // One blob at a time, in the lock's order, and one part in flight: the interruption
        // comes after the big text encoder's first part, with the blobs before it done, the
        // ones after it not started, and its upload certainly not completed.
        let mirror = builder(&garage, "cut").upload_slots(1).build().unwrap();
        let mut options = PushOptions::default();
        options.parallel_files = 1;

        let big = w.big.len() as u64;
        let (tx, mut first_part) = tokio::sync::mpsc::unbounded_channel::<()>();
        let watcher = move |e: &Event| {
            if let Event::Progress {
                bytes_total,
                bytes_done,
                ..
            } = e
                && *bytes_total == big
                && *bytes_done < big
            {
                let _ = tx.send(());
            }
        };
        let before = garage.requests().unwrap().len();
        tokio::select! {
            result = mirror.push(&fetcher, &lock, &watcher, &options) => {
                panic!("the push ended before the interruption: {result:?}")
            }
            _ = first_part.recv() => {}
        }
        // The push's future is dropped, as when the process is killed: what is in the bucket?
        let after_cut: BTreeMap<String, u64> =
            mirror.objects().await.unwrap().into_iter().collect();
        let all = blob_keys(&mirror, &blobs);
        let stored: BTreeSet<String> = after_cut.keys().cloned().collect();
        assert!(
            stored.is_subset(&all),
            "no lock before every blob: {stored:?}"
        );
        let missing: BTreeSet<String> = all.difference(&stored).cloned().collect();
        let big_key = mirror.location().blob_key(&Sha256Hex::of(&w.big));
        assert!(
            missing.contains(&big_key),
            "the big blob was cut: {stored:?}"
        );
        assert!(!stored.is_empty() && missing.len() > 1, "{stored:?}");
        for (key, size) in &after_cut {
            let sha: Sha256Hex = key.rsplit('/').next().unwrap().parse().unwrap();
            assert_eq!(Some(size), blobs.get(&sha), "{key} is whole");
        }
        let cut_reqs = requests_since(&garage, before);
        assert!(
            cut_reqs
                .iter()
                .any(|r| r.path == logged(&garage, &big_key) && r.query.contains("partNumber")),
            "a part of the big blob was sent before the cut"
        );

        // The rerun stores exactly the missing blobs, each once, and then the lock.
        let rerun = garage.requests().unwrap().len();
        let pushed = mirror
            .push(&fetcher, &lock, &Events::default(), &options)
            .await
            .unwrap();
        let reqs = requests_since(&garage, rerun);
        let mut want: BTreeMap<String, usize> =
            missing.iter().map(|k| (logged(&garage, k), 1)).collect();
        want.insert(logged(&garage, &pushed.keys.current), 1);
        want.insert(logged(&garage, &pushed.keys.version), 1);
        assert_eq!(completed(&reqs), want, "{:#?}", writes(&reqs));
        assert_eq!(pushed.uploaded_blobs, missing.len());
        assert_eq!(pushed.present_blobs, stored.len());
        let objects: BTreeSet<String> = mirror
            .objects()
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(all.is_subset(&objects));
        assert_eq!(objects.len(), all.len() + 2);
    })
    .await;
}
