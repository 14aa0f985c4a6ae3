use std::fs;
use std::path::PathBuf;

use pipefetch_hub_cache::{CACHEDIR_TAG, Error, RepoType};

use crate::{
    COMMIT_A, COMMIT_B, ETAG_1, ETAG_2, cache, cache_without_symlinks, names, populated, put_blob,
};

#[test]
fn ensure_layout_creates_folders_and_exact_cachedir_tag() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    repo.ensure_layout().unwrap();
    assert_eq!(names(cache.root()), ["CACHEDIR.TAG", "models--org--name"]);
    assert_eq!(names(repo.path()), ["blobs", "refs", "snapshots"]);
    let expected = b"Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by huggingface_hub.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";
    assert_eq!(
        fs::read(cache.root().join("CACHEDIR.TAG")).unwrap(),
        expected
    );
    assert_eq!(CACHEDIR_TAG.as_bytes(), expected);
}

#[test]
fn existing_cachedir_tag_is_left_alone() {
    let (_dir, cache) = cache();
    fs::write(cache.root().join("CACHEDIR.TAG"), "custom").unwrap();
    cache
        .repo(RepoType::Dataset, "d")
        .unwrap()
        .ensure_layout()
        .unwrap();
    assert_eq!(
        fs::read_to_string(cache.root().join("CACHEDIR.TAG")).unwrap(),
        "custom"
    );
    assert!(cache.root().join("datasets--d/snapshots").is_dir());
}

#[test]
fn refs_are_exactly_forty_chars_and_atomic() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    assert!(repo.write_ref("main", COMMIT_A).unwrap());
    assert_eq!(
        fs::read(repo.path().join("refs/main")).unwrap(),
        COMMIT_A.as_bytes()
    );
    // Unchanged content is not rewritten.
    assert!(!repo.write_ref("main", COMMIT_A).unwrap());
    // Changed content replaces the file, and no temporary is left behind.
    assert!(repo.write_ref("main", COMMIT_B).unwrap());
    assert_eq!(
        fs::read(repo.path().join("refs/main")).unwrap(),
        COMMIT_B.as_bytes()
    );
    assert_eq!(names(&repo.path().join("refs")), ["main"]);
    // A PR revision nests folders.
    repo.write_ref("refs/pr/1", COMMIT_A).unwrap();
    assert_eq!(
        fs::read(repo.path().join("refs/refs/pr/1")).unwrap(),
        COMMIT_A.as_bytes()
    );
    assert_eq!(
        repo.read_ref("refs/pr/1").unwrap().as_deref(),
        Some(COMMIT_A)
    );
    // A commit revision writes nothing.
    assert!(!repo.write_ref(COMMIT_B, COMMIT_B).unwrap());
    assert_eq!(names(&repo.path().join("refs")), ["main", "refs"]);
    // The target must be a commit.
    assert!(matches!(
        repo.write_ref("main", "abc"),
        Err(Error::InvalidCommit { .. })
    ));
}

#[test]
fn refs_are_read_raw() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    assert_eq!(repo.read_ref("main").unwrap(), None);
    fs::create_dir_all(repo.path().join("refs")).unwrap();
    fs::write(repo.path().join("refs/main"), format!("{COMMIT_A}\n")).unwrap();
    match repo.read_ref("main") {
        Err(Error::CorruptRef { path, content }) => {
            assert_eq!(path, repo.path().join("refs/main"));
            assert_eq!(content, format!("{COMMIT_A}\n"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        repo.resolve_revision(COMMIT_B).unwrap().as_deref(),
        Some(COMMIT_B)
    );
    assert_eq!(repo.resolve_revision("v1").unwrap(), None);
}

#[test]
fn snapshot_symlinks_are_relative_and_depth_adjusted() {
    let (_dir, cache) = cache();
    if !cache.symlinks_supported() {
        return;
    }
    let repo = populated(
        &cache,
        "org/name",
        COMMIT_A,
        &[
            ("config.json", ETAG_1, b"{}"),
            ("unet/a/w.bin", ETAG_2, b"weights"),
        ],
    );
    let snap = repo.snapshot_dir(COMMIT_A).unwrap();
    assert_eq!(
        fs::read_link(snap.join("config.json")).unwrap(),
        PathBuf::from(format!("../../blobs/{ETAG_1}"))
    );
    assert_eq!(
        fs::read_link(snap.join("unet/a/w.bin")).unwrap(),
        PathBuf::from(format!("../../../../blobs/{ETAG_2}"))
    );
    assert_eq!(fs::read(snap.join("unet/a/w.bin")).unwrap(), b"weights");
    repo.link_snapshot(COMMIT_A, "sub/x", ETAG_1).unwrap();
    assert_eq!(
        fs::read_link(snap.join("sub/x")).unwrap(),
        PathBuf::from(format!("../../../blobs/{ETAG_1}"))
    );
}

#[test]
fn relinking_replaces_the_entry_without_leftovers() {
    let (_dir, cache) = cache();
    let repo = populated(&cache, "org/name", COMMIT_A, &[("f", ETAG_1, b"one")]);
    put_blob(&repo, ETAG_2, b"two");
    let pointer = repo.link_snapshot(COMMIT_A, "f", ETAG_2).unwrap();
    assert_eq!(pointer, repo.snapshot_dir(COMMIT_A).unwrap().join("f"));
    assert_eq!(fs::read(&pointer).unwrap(), b"two");
    assert_eq!(names(&repo.snapshot_dir(COMMIT_A).unwrap()), ["f"]);
}

#[test]
fn copy_fallback_without_symlinks() {
    let (_dir, cache) = cache_without_symlinks();
    assert!(!cache.symlinks_supported());
    let repo = populated(
        &cache,
        "org/name",
        COMMIT_A,
        &[
            ("config.json", ETAG_1, b"{}"),
            ("unet/w.bin", ETAG_2, b"weights"),
        ],
    );
    let snap = repo.snapshot_dir(COMMIT_A).unwrap();
    for (path, bytes) in [("config.json", &b"{}"[..]), ("unet/w.bin", b"weights")] {
        let meta = fs::symlink_metadata(snap.join(path)).unwrap();
        assert!(meta.file_type().is_file(), "{path} is not a regular file");
        assert_eq!(fs::read(snap.join(path)).unwrap(), bytes);
    }
    assert_eq!(names(&snap), ["config.json", "unet"]);
    #[cfg(unix)]
    {
        // A hard link, not a copy: the bytes are stored once.
        use std::os::unix::fs::MetadataExt;
        let blob = fs::metadata(repo.blob_path(ETAG_2).unwrap()).unwrap();
        let pointer = fs::metadata(snap.join("unet/w.bin")).unwrap();
        assert_eq!((pointer.ino(), pointer.nlink()), (blob.ino(), 2));
        // Relinking the same blob leaves no temporary behind.
        repo.link_snapshot(COMMIT_A, "unet/w.bin", ETAG_2).unwrap();
        assert_eq!(names(&snap.join("unet")), ["w.bin"]);
    }
    // The blob stays available for other snapshots.
    assert!(repo.has_blob(ETAG_1));
}

#[test]
fn no_exist_markers() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let marker = repo.mark_no_exist(COMMIT_A, "sub/missing.bin").unwrap();
    assert_eq!(
        marker,
        repo.path()
            .join(".no_exist")
            .join(COMMIT_A)
            .join("sub/missing.bin")
    );
    assert_eq!(fs::read(&marker).unwrap(), b"");
    // `snapshots/` exists so that scan_cache_dir accepts the repo.
    assert!(repo.path().join("snapshots").is_dir());
    // Marking twice is fine.
    repo.mark_no_exist(COMMIT_A, "sub/missing.bin").unwrap();
}

#[test]
fn check_file_uses_stat_only() {
    use pipefetch_hub_cache::FileState;
    let (_dir, cache) = cache();
    let repo = populated(&cache, "org/name", COMMIT_A, &[("f", ETAG_1, b"12345")]);
    let pointer = repo.pointer_path(COMMIT_A, "f").unwrap();
    assert_eq!(
        repo.check_file(COMMIT_A, "f", Some(5)).unwrap(),
        FileState::Ok {
            path: pointer.clone(),
            size: 5
        }
    );
    assert_eq!(
        repo.check_file(COMMIT_A, "f", None).unwrap(),
        FileState::Ok {
            path: pointer,
            size: 5
        }
    );
    assert_eq!(
        repo.check_file(COMMIT_A, "f", Some(6)).unwrap(),
        FileState::WrongSize { actual: 5 }
    );
    assert_eq!(
        repo.check_file(COMMIT_A, "g", None).unwrap(),
        FileState::Missing
    );
    assert_eq!(
        repo.check_file(COMMIT_B, "f", None).unwrap(),
        FileState::Missing
    );
    if cache.symlinks_supported() {
        fs::remove_file(repo.blob_path(ETAG_1).unwrap()).unwrap();
        assert_eq!(
            repo.check_file(COMMIT_A, "f", Some(5)).unwrap(),
            FileState::Dangling
        );
    }
}
