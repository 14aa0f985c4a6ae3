use std::time::Duration;

use pipefetch_hub_cache::RepoType;

use crate::{ETAG_1, ETAG_2, cache};

#[test]
fn lock_files_live_under_dot_locks() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let lock = repo.lock(ETAG_1).unwrap();
    assert!(lock.is_held());
    assert_eq!(
        lock.path(),
        cache
            .root()
            .join(".locks/models--org--name")
            .join(format!("{ETAG_1}.lock"))
    );
    assert!(lock.path().is_file());
}

#[test]
fn try_lock_sees_a_held_lock_and_its_release() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let held = repo.try_lock(ETAG_1).unwrap().expect("free lock");
    assert!(held.is_held());
    assert!(repo.try_lock(ETAG_1).unwrap().is_none());
    // Another etag is independent.
    assert!(repo.try_lock(ETAG_2).unwrap().is_some());
    drop(held);
    assert!(repo.try_lock(ETAG_1).unwrap().is_some());
}

#[test]
fn blocking_lock_gives_up_after_the_timeout() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let _held = repo.lock(ETAG_1).unwrap();
    let second = repo
        .lock_with_timeout(ETAG_1, Duration::from_millis(50))
        .unwrap();
    assert!(!second.is_held());
}

#[test]
fn blocking_lock_waits_for_release() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let held = repo.lock(ETAG_1).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        drop(held);
    });
    let second = repo
        .lock_with_timeout(ETAG_1, Duration::from_secs(10))
        .unwrap();
    assert!(second.is_held());
    releaser.join().unwrap();
}

#[test]
fn unusable_locks_folder_degrades_to_no_lock() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    // A file where the `.locks` folder should be: the lock file cannot be created.
    std::fs::write(cache.root().join(".locks"), "").unwrap();
    let lock = repo.lock(ETAG_1).unwrap();
    assert!(!lock.is_held());
    let lock = repo
        .try_lock(ETAG_1)
        .unwrap()
        .expect("an unheld lock, not None");
    assert!(!lock.is_held());
}
