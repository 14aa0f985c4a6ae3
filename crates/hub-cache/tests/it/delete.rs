use std::fs;

use pipefetch_hub_cache::{DeleteReport, Error, RepoType};

use crate::{COMMIT_A, COMMIT_B, ETAG_1, ETAG_2, ETAG_3, cache, names, populated, put_blob};

#[test]
fn delete_keeps_blobs_shared_with_another_revision() {
    let (_dir, cache) = cache();
    let repo = populated(
        &cache,
        "org/name",
        COMMIT_A,
        &[
            ("config.json", ETAG_1, b"{}"),
            ("unet/w.bin", ETAG_2, b"weights"),
        ],
    );
    put_blob(&repo, ETAG_3, b"new config");
    repo.link_snapshot(COMMIT_B, "config.json", ETAG_3).unwrap();
    repo.link_snapshot(COMMIT_B, "unet/w.bin", ETAG_2).unwrap();
    repo.write_ref("v2", COMMIT_B).unwrap();
    repo.mark_no_exist(COMMIT_A, "x").unwrap();
    repo.write_tree(COMMIT_A, &Default::default()).unwrap();
    repo.lock(ETAG_1).unwrap();

    let report = repo.delete_revision(COMMIT_A).unwrap();
    let symlinks = cache.symlinks_supported();
    let expected = DeleteReport {
        freed_bytes: if symlinks { 2 } else { 2 + 2 + 7 },
        removed_blobs: vec![ETAG_1.to_owned()],
        removed_refs: vec!["main".to_owned()],
    };
    assert_eq!(report, expected);
    assert_eq!(names(&repo.blobs_dir()), [ETAG_2, ETAG_3]);
    assert_eq!(names(&repo.path().join("snapshots")), [COMMIT_B]);
    assert_eq!(names(&repo.path().join("refs")), ["v2"]);
    assert!(names(&repo.path().join(".no_exist")).is_empty());
    assert!(names(&repo.path().join("trees")).is_empty());
    assert_eq!(
        fs::read(repo.pointer_path(COMMIT_B, "unet/w.bin").unwrap()).unwrap(),
        b"weights"
    );
    assert!(cache.scan().unwrap().warnings.is_empty());

    // Deleting the last revision removes the repo and its locks.
    let report = repo.delete_revision(COMMIT_B).unwrap();
    assert_eq!(report.removed_blobs, [ETAG_2, ETAG_3]);
    assert_eq!(report.removed_refs, ["v2"]);
    assert!(!repo.path().exists());
    assert!(!cache.root().join(".locks/models--org--name").exists());
    assert!(matches!(
        repo.delete_revision(COMMIT_B),
        Err(Error::RevisionNotCached { .. })
    ));
}

#[test]
fn delete_repo_removes_everything() {
    let (_dir, cache) = cache();
    let repo = populated(
        &cache,
        "org/name",
        COMMIT_A,
        &[("a", ETAG_1, b"12"), ("b", ETAG_2, b"345")],
    );
    let other = populated(&cache, "org/other", COMMIT_A, &[("a", ETAG_1, b"12")]);
    let report = cache.delete_repo(RepoType::Model, "org/name").unwrap();
    assert_eq!(report.removed_blobs, [ETAG_1, ETAG_2]);
    assert_eq!(report.removed_refs, ["main"]);
    assert_eq!(
        report.freed_bytes,
        if cache.symlinks_supported() { 5 } else { 10 }
    );
    assert!(!repo.path().exists());
    assert!(other.has_blob(ETAG_1));
    assert_eq!(
        cache.delete_repo(RepoType::Model, "org/name").unwrap(),
        DeleteReport::default()
    );
}

#[test]
fn delete_without_symlinks_follows_hard_links() {
    let (_dir, cache) = crate::cache_without_symlinks();
    let repo = populated(
        &cache,
        "org/name",
        COMMIT_A,
        &[("a", ETAG_1, b"12"), ("sub/b", ETAG_2, b"345")],
    );
    repo.link_snapshot(COMMIT_B, "a", ETAG_1).unwrap();
    let info = cache.scan().unwrap();
    // Copies are their own blobs for Python's scan too: every regular file counts.
    assert_eq!(info.repos[0].nb_files, 3);
    assert_eq!(info.repos[0].size_on_disk, 2 + 3 + 2);
    let report = repo.delete_revision(COMMIT_A).unwrap();
    if cfg!(unix) {
        // Snapshot files are hard links of the blobs: ETAG_1 is still linked from COMMIT_B.
        assert_eq!(report.removed_blobs, [ETAG_2]);
        assert_eq!(report.freed_bytes, 3);
        assert!(repo.has_blob(ETAG_1));
    }
    assert_eq!(
        fs::read(repo.pointer_path(COMMIT_B, "a").unwrap()).unwrap(),
        b"12"
    );
}

#[test]
fn deleting_the_last_revision_reports_orphan_blobs() {
    let (_dir, cache) = cache();
    let repo = populated(&cache, "org/name", COMMIT_A, &[("a", ETAG_1, b"12")]);
    put_blob(&repo, ETAG_3, b"orphan");
    let report = repo.delete_revision(COMMIT_A).unwrap();
    assert_eq!(report.removed_blobs, [ETAG_1, ETAG_3]);
    let copies = if cfg!(unix) || cache.symlinks_supported() {
        0
    } else {
        2
    };
    assert_eq!(report.freed_bytes, 2 + 6 + copies);
    assert!(!repo.path().exists());
}
