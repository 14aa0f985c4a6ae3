use pipefetch_hub_cache::{Error, RepoType, validate_repo_path};
use proptest::prelude::*;

use crate::{COMMIT_A, ETAG_1, cache};

#[test]
fn hostile_repo_paths_are_rejected() {
    let table: &[(&str, &str)] = &[
        ("../x", "`..` segment"),
        ("..", "`..` segment"),
        ("a/../b", "`..` segment"),
        ("a/..", "`..` segment"),
        ("/etc/passwd", "absolute"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("", "empty"),
        ("a/./b", "`.` segment"),
        ("./a", "`.` segment"),
        (".", "`.` segment"),
        ("a\\b", "backslash"),
        ("..\\x", "backslash"),
        ("C:x", "drive prefix"),
        ("c:/x", "drive prefix"),
        ("a/C:x", "drive prefix"),
        ("a\0b", "NUL"),
    ];
    for (path, reason) in table {
        match validate_repo_path(path) {
            Err(Error::InvalidRepoPath { path: p, reason: r }) => {
                assert_eq!(&p, path);
                assert!(
                    r.contains(reason),
                    "{path:?}: {r:?} does not mention {reason:?}"
                );
            }
            other => panic!("{path:?} accepted: {other:?}"),
        }
    }
}

#[test]
fn ordinary_repo_paths_are_accepted() {
    for path in [
        "config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        ".gitattributes",
        "a/.hidden/b",
        "...",
        "a..b",
        "name with spaces.txt",
        "日本/語.txt",
        "1:2",
    ] {
        assert_eq!(validate_repo_path(path).ok(), Some(path));
    }
}

#[test]
fn every_path_builder_validates() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    assert!(repo.pointer_path(COMMIT_A, "../../../x").is_err());
    assert!(repo.no_exist_path(COMMIT_A, "/x").is_err());
    assert!(repo.link_snapshot(COMMIT_A, "a/../../x", ETAG_1).is_err());
    assert!(repo.mark_no_exist(COMMIT_A, "a//b").is_err());
    assert!(repo.lookup("main", "..").is_err());
    assert!(repo.check_file(COMMIT_A, "a\\b", None).is_err());
    assert!(matches!(
        repo.write_ref("../x", COMMIT_A),
        Err(Error::InvalidRevision { .. })
    ));
    assert!(matches!(
        repo.read_ref("/abs"),
        Err(Error::InvalidRevision { .. })
    ));
    // Commits and etags are path components too.
    assert!(matches!(
        repo.snapshot_dir("../x"),
        Err(Error::InvalidCommit { .. })
    ));
    assert!(matches!(
        repo.blob_path("../x"),
        Err(Error::InvalidEtag { .. })
    ));
    assert!(matches!(
        repo.begin_blob("abc"),
        Err(Error::InvalidEtag { .. })
    ));
    assert!(repo.lock(&"x".repeat(40)).is_err());
    assert!(repo.tree_path("HEAD").is_err());
    // Nothing was created by the rejected calls.
    assert_eq!(std::fs::read_dir(cache.root()).unwrap().count(), 0);
}

#[test]
fn repo_ids_and_folders() {
    let (_dir, cache) = cache();
    let folder = |t, id| cache.repo(t, id).map(|r| r.folder_name().to_owned());
    assert_eq!(
        folder(RepoType::Model, "org/name").unwrap(),
        "models--org--name"
    );
    assert_eq!(folder(RepoType::Model, "gpt2").unwrap(), "models--gpt2");
    assert_eq!(folder(RepoType::Dataset, "o/d").unwrap(), "datasets--o--d");
    assert_eq!(folder(RepoType::Space, "o/s").unwrap(), "spaces--o--s");
    assert_eq!(folder(RepoType::Kernel, "o/k").unwrap(), "kernels--o--k");
    for bad in [
        "", "a/b/c", "../x", "a/..", "/abs", "a--b/c", "a\\b", "a\0b", "a/", "C:/x",
    ] {
        assert!(
            matches!(
                cache.repo(RepoType::Model, bad),
                Err(Error::InvalidRepoId { .. })
            ),
            "{bad:?}"
        );
    }
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    assert_eq!(repo.path(), cache.root().join("models--org--name"));
}

proptest! {
    /// Whatever the input, an accepted path joined onto a base stays strictly inside the base.
    #[test]
    fn accepted_paths_stay_inside(segments in proptest::collection::vec("[a-zA-Z0-9._:\\\\/ -]{0,6}", 1..5)) {
        let path = segments.join("/");
        if let Ok(p) = validate_repo_path(&path) {
            let base = std::path::Path::new("/base");
            let mut depth: i32 = 0;
            for seg in p.split('/') {
                prop_assert!(!seg.is_empty() && seg != "." && seg != "..");
                prop_assert!(!seg.contains('\\'));
                depth += 1;
            }
            let joined = base.join(p);
            prop_assert!(joined.starts_with(base));
            prop_assert_eq!(joined.components().count() as i32, 2 + depth);
        }
    }

    /// Paths built from ordinary names are always accepted.
    #[test]
    fn ordinary_paths_accepted(segments in proptest::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9._ -]{0,10}", 1..5)) {
        let path = segments.join("/");
        prop_assume!(!segments.iter().any(|s| s == "." || s == ".."));
        prop_assert!(validate_repo_path(&path).is_ok());
    }
}
