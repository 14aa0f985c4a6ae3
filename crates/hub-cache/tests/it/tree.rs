use std::collections::BTreeMap;
use std::fs;

use pipefetch_hub_cache::{Error, RepoType, TreeCache, TreeFile};

use crate::{COMMIT_A, cache, names};

fn sample() -> TreeCache {
    let mut files = BTreeMap::new();
    files.insert(
        "unet/model.safetensors".to_owned(),
        TreeFile {
            size: 1234,
            blob_id: "b".repeat(40),
            lfs_sha256: Some("c".repeat(64)),
            lfs_size: Some(1234),
            xet_hash: Some("d".repeat(64)),
        },
    );
    files.insert(
        "config.json".to_owned(),
        TreeFile {
            size: 519,
            blob_id: "a".repeat(40),
            ..TreeFile::default()
        },
    );
    files.insert(
        "caf\u{e9}.txt".to_owned(),
        TreeFile {
            size: 0,
            blob_id: "e".repeat(40),
            lfs_sha256: Some("f".repeat(64)),
            ..TreeFile::default()
        },
    );
    TreeCache { files }
}

/// The bytes Python's `json.dump(data, f, indent=1)` produces for `sample()`.
fn python_bytes() -> String {
    let (a, b, c, d, e, f) = (
        "a".repeat(40),
        "b".repeat(40),
        "c".repeat(64),
        "d".repeat(64),
        "e".repeat(40),
        "f".repeat(64),
    );
    format!(
        "{{\n \"format_version\": 1,\n \"files\": {{\n  \"caf\\u00e9.txt\": {{\n   \"size\": 0,\n   \"blob_id\": \"{e}\",\n   \"lfs_sha256\": \"{f}\",\n   \"lfs_size\": null\n  }},\n  \"config.json\": {{\n   \"size\": 519,\n   \"blob_id\": \"{a}\"\n  }},\n  \"unet/model.safetensors\": {{\n   \"size\": 1234,\n   \"blob_id\": \"{b}\",\n   \"lfs_sha256\": \"{c}\",\n   \"lfs_size\": 1234,\n   \"xet_hash\": \"{d}\"\n  }}\n }}\n}}"
    )
}

#[test]
fn tree_json_is_byte_identical_to_python() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    repo.write_tree(COMMIT_A, &sample()).unwrap();
    let path = repo.path().join("trees").join(format!("{COMMIT_A}.json"));
    assert_eq!(fs::read_to_string(&path).unwrap(), python_bytes());
    assert_eq!(
        names(&repo.path().join("trees")),
        [format!("{COMMIT_A}.json")]
    );
    assert_eq!(repo.read_tree(COMMIT_A).unwrap(), Some(sample()));
}

#[test]
fn tree_reading_follows_python_rules() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    assert_eq!(repo.read_tree(COMMIT_A).unwrap(), None);
    let path = repo.tree_path(COMMIT_A).unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Another format version is ignored.
    fs::write(&path, r#"{"format_version": 2, "files": {"x": 1}}"#).unwrap();
    assert_eq!(repo.read_tree(COMMIT_A).unwrap(), None);
    // An invalid Xet hash invalidates the whole listing.
    fs::write(&path, r#"{"format_version": 1, "files": {"x": {"size": 1, "blob_id": "b", "xet_hash": "nothex"}}}"#).unwrap();
    assert_eq!(repo.read_tree(COMMIT_A).unwrap(), None);
    // Compact JSON from another writer is fine.
    fs::write(
        &path,
        r#"{"format_version":1,"files":{"x":{"size":1,"blob_id":"b"}}}"#,
    )
    .unwrap();
    let tree = repo.read_tree(COMMIT_A).unwrap().unwrap();
    assert_eq!(
        tree.files["x"],
        TreeFile {
            size: 1,
            blob_id: "b".into(),
            ..TreeFile::default()
        }
    );
    // Garbage is reported.
    fs::write(&path, "{").unwrap();
    assert!(matches!(
        repo.read_tree(COMMIT_A),
        Err(Error::CorruptTree { .. })
    ));
}

#[test]
fn invalid_xet_hash_is_not_written() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let mut tree = sample();
    tree.files.get_mut("config.json").unwrap().xet_hash = Some("zz".into());
    assert!(matches!(
        repo.write_tree(COMMIT_A, &tree),
        Err(Error::InvalidTree { .. })
    ));
    assert!(!repo.tree_path(COMMIT_A).unwrap().exists());
}
