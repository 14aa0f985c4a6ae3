use std::fs;

use pipefetch_hub_cache::{Lookup, RepoType};

use crate::{COMMIT_A, COMMIT_B, ETAG_1, cache, populated};

#[test]
fn lookup_through_refs_and_commits() {
    let (_dir, cache) = cache();
    let repo = populated(
        &cache,
        "org/name",
        COMMIT_A,
        &[("sub/config.json", ETAG_1, b"{}")],
    );
    let pointer = repo.pointer_path(COMMIT_A, "sub/config.json").unwrap();
    assert_eq!(
        repo.lookup("main", "sub/config.json").unwrap(),
        Lookup::Found(pointer.clone())
    );
    assert_eq!(
        repo.lookup(COMMIT_A, "sub/config.json").unwrap(),
        Lookup::Found(pointer)
    );
    assert_eq!(repo.lookup("main", "other.json").unwrap(), Lookup::Missing);
    assert_eq!(
        repo.lookup("v2", "sub/config.json").unwrap(),
        Lookup::Missing
    );
    // A directory is not a file.
    assert_eq!(repo.lookup("main", "sub").unwrap(), Lookup::Missing);
    // Unknown repos are simply missing.
    let other = cache.repo(RepoType::Dataset, "org/name").unwrap();
    assert_eq!(
        other.lookup("main", "sub/config.json").unwrap(),
        Lookup::Missing
    );
}

#[test]
fn no_fallback_to_another_snapshot() {
    let (_dir, cache) = cache();
    let repo = populated(&cache, "org/name", COMMIT_A, &[("f", ETAG_1, b"x")]);
    repo.write_ref("main", COMMIT_B).unwrap();
    assert_eq!(repo.lookup("main", "f").unwrap(), Lookup::Missing);
    fs::create_dir_all(repo.snapshot_dir(COMMIT_B).unwrap()).unwrap();
    assert_eq!(repo.lookup("main", "f").unwrap(), Lookup::Missing);
}

#[test]
fn no_exist_marker_wins() {
    let (_dir, cache) = cache();
    let repo = populated(&cache, "org/name", COMMIT_A, &[("f", ETAG_1, b"x")]);
    repo.mark_no_exist(COMMIT_A, "missing.bin").unwrap();
    assert_eq!(repo.lookup("main", "missing.bin").unwrap(), Lookup::NoExist);
    assert_eq!(
        repo.lookup(COMMIT_A, "missing.bin").unwrap(),
        Lookup::NoExist
    );
    // Markers are per commit.
    repo.write_ref("main", COMMIT_B).unwrap();
    assert_eq!(repo.lookup("main", "missing.bin").unwrap(), Lookup::Missing);
}

#[test]
fn dangling_symlink_is_missing() {
    let (_dir, cache) = cache();
    if !cache.symlinks_supported() {
        return;
    }
    let repo = populated(&cache, "org/name", COMMIT_A, &[("f", ETAG_1, b"x")]);
    fs::remove_file(repo.blob_path(ETAG_1).unwrap()).unwrap();
    assert_eq!(repo.lookup("main", "f").unwrap(), Lookup::Missing);
}

#[test]
fn corrupt_ref_is_missing_like_python() {
    let (_dir, cache) = cache();
    let repo = populated(&cache, "org/name", COMMIT_A, &[("f", ETAG_1, b"x")]);
    fs::write(repo.path().join("refs/main"), format!("{COMMIT_A}\n")).unwrap();
    assert_eq!(repo.lookup("main", "f").unwrap(), Lookup::Missing);
    assert_eq!(
        repo.lookup(COMMIT_A, "f").unwrap(),
        Lookup::Found(repo.pointer_path(COMMIT_A, "f").unwrap())
    );
}
