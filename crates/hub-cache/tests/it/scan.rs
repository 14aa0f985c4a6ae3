use std::fs;

use pipefetch_hub_cache::RepoType;

use crate::{COMMIT_A, COMMIT_B, ETAG_1, ETAG_2, ETAG_3, cache, populated};

#[test]
fn scan_of_a_good_cache() {
    let (_dir, cache) = cache();
    let repo = populated(
        &cache,
        "org/model",
        COMMIT_A,
        &[
            ("config.json", ETAG_1, b"{}"),
            ("unet/w.bin", ETAG_2, b"weights"),
        ],
    );
    // A second revision sharing one blob, reachable through a PR ref.
    let blob = repo.begin_blob(ETAG_3).unwrap();
    std::io::Write::write_all(&mut blob.file(), b"new config").unwrap();
    blob.commit().unwrap();
    repo.link_snapshot(COMMIT_B, "config.json", ETAG_3).unwrap();
    repo.link_snapshot(COMMIT_B, "unet/w.bin", ETAG_2).unwrap();
    repo.write_ref("refs/pr/1", COMMIT_B).unwrap();
    repo.write_ref("v1", COMMIT_B).unwrap();
    // A partial download.
    let partial = repo.begin_blob(ETAG_1).unwrap();
    std::io::Write::write_all(&mut partial.file(), b"par").unwrap();
    let partial = partial.into_resumable();
    // Things scan_cache_dir skips.
    fs::write(cache.root().join(".DS_Store"), "").unwrap();
    repo.lock(ETAG_1).unwrap();
    let dataset = populated(&cache, "d", COMMIT_A, &[("data.csv", ETAG_1, b"a,b\n")]);
    let dataset_repo = cache.repo(RepoType::Dataset, "org/data").unwrap();
    dataset_repo.ensure_layout().unwrap();
    dataset_repo.mark_no_exist(COMMIT_A, "x").unwrap();

    let info = cache.scan().unwrap();
    assert_eq!(info.warnings, vec![]);
    let ids: Vec<(RepoType, &str)> = info
        .repos
        .iter()
        .map(|r| (r.repo_type, r.repo_id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (RepoType::Model, "d"),
            (RepoType::Model, "org/model"),
            (RepoType::Dataset, "org/data")
        ]
    );

    let root = fs::canonicalize(cache.root()).unwrap();
    let model = &info.repos[1];
    assert_eq!(model.path, root.join("models--org--model"));
    assert_eq!(model.nb_files, 3);
    assert_eq!(model.size_on_disk, 2 + 7 + 10);
    let refs: Vec<(&str, &str)> = model
        .refs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        refs,
        [
            ("main", COMMIT_A),
            ("refs/pr/1", COMMIT_B),
            ("v1", COMMIT_B)
        ]
    );
    assert_eq!(model.revisions.len(), 2);
    let a = &model.revisions[0];
    assert_eq!(a.commit, COMMIT_A);
    assert_eq!(a.refs, ["main"]);
    assert_eq!(a.size_on_disk, 9);
    let files: Vec<(&str, u64)> = a.files.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(files, [("config.json", 2), ("unet/w.bin", 7)]);
    if cache.symlinks_supported() {
        assert_eq!(
            a.files[1].blob_path,
            root.join("models--org--model/blobs").join(ETAG_2)
        );
    }
    let b = &model.revisions[1];
    assert_eq!(b.refs, ["refs/pr/1", "v1"]);
    assert_eq!(b.size_on_disk, 17);
    assert_eq!(model.incomplete.len(), 1);
    assert_eq!(model.incomplete[0].path.file_name(), partial.file_name());
    assert_eq!(model.incomplete[0].size, 3);
    assert!(model.last_modified.is_some() && model.last_accessed.is_some());

    let data = &info.repos[2];
    assert_eq!(
        (data.nb_files, data.size_on_disk, data.revisions.len()),
        (0, 0, 0)
    );
    assert!(data.last_modified.is_some());

    // Model "d" shares no blob with "org/model": blobs are per repo, so its etag counts again.
    assert_eq!(info.repos[0].size_on_disk, 4);
    assert_eq!(info.size_on_disk, 4 + 19);
    drop(dataset);
}

#[cfg(unix)]
#[test]
fn scan_reports_corruption_with_python_messages() {
    use pipefetch_hub_cache::CacheWarningKind;
    use std::path::PathBuf;

    let (_dir, cache) = cache();
    let root = fs::canonicalize(cache.root()).unwrap();
    let good = populated(&cache, "org/good", COMMIT_A, &[("f", ETAG_1, b"x")]);

    fs::write(root.join("stray.txt"), "").unwrap();
    fs::create_dir(root.join("tmp")).unwrap();
    fs::create_dir_all(root.join("widgets--a--b/snapshots")).unwrap();
    fs::create_dir_all(root.join("models--nosnap/blobs")).unwrap();
    fs::create_dir_all(root.join("models--refsfile/snapshots")).unwrap();
    fs::write(root.join("models--refsfile/refs"), COMMIT_A).unwrap();
    fs::create_dir_all(root.join("models--filesnap/snapshots")).unwrap();
    fs::write(root.join("models--filesnap/snapshots/oops"), "").unwrap();
    fs::create_dir_all(root.join("models--broken/snapshots").join(COMMIT_A)).unwrap();
    std::os::unix::fs::symlink(
        format!("../../blobs/{ETAG_2}"),
        root.join("models--broken/snapshots")
            .join(COMMIT_A)
            .join("w.bin"),
    )
    .unwrap();
    let badref = cache.repo(RepoType::Model, "o/badref").unwrap();
    badref.ensure_layout().unwrap();
    badref.write_ref("main", COMMIT_B).unwrap();
    let newline = populated(&cache, "o/newline", COMMIT_A, &[("f", ETAG_1, b"x")]);
    fs::write(newline.path().join("refs/main"), format!("{COMMIT_A}\n")).unwrap();

    let info = cache.scan().unwrap();
    let ids: Vec<&str> = info.repos.iter().map(|r| r.repo_id.as_str()).collect();
    assert_eq!(ids, ["org/good"]);
    let got: Vec<(CacheWarningKind, PathBuf, String)> = info
        .warnings
        .iter()
        .map(|w| (w.kind, w.path.clone(), w.message.clone()))
        .collect();
    let r = root.display();
    let expected = vec![
        (
            CacheWarningKind::BlobMissing,
            root.join("models--broken"),
            format!("Blob missing (broken symlink): {r}/models--broken/blobs/{ETAG_2}"),
        ),
        (
            CacheWarningKind::FileInSnapshots,
            root.join("models--filesnap"),
            format!(
                "Snapshots folder corrupted. Found a file: {r}/models--filesnap/snapshots/oops"
            ),
        ),
        (
            CacheWarningKind::MissingSnapshots,
            root.join("models--nosnap"),
            format!("Snapshots dir doesn't exist in cached repo: {r}/models--nosnap/snapshots"),
        ),
        (
            CacheWarningKind::RefsToMissingCommits,
            root.join("models--o--badref"),
            format!(
                "Reference(s) refer to missing commit hashes: {{'{COMMIT_B}': {{'main'}}}} ({r}/models--o--badref)."
            ),
        ),
        (
            CacheWarningKind::RefsToMissingCommits,
            root.join("models--o--newline"),
            format!(
                "Reference(s) refer to missing commit hashes: {{'{COMMIT_A}\\n': {{'main'}}}} ({r}/models--o--newline)."
            ),
        ),
        (
            CacheWarningKind::RefsIsAFile,
            root.join("models--refsfile"),
            format!("Refs directory cannot be a file: {r}/models--refsfile/refs"),
        ),
        (
            CacheWarningKind::NotADirectory,
            root.join("stray.txt"),
            format!("Repo path is not a directory: {r}/stray.txt"),
        ),
        (
            CacheWarningKind::BadFolderName,
            root.join("tmp"),
            format!("Repo path is not a valid HuggingFace cache directory: {r}/tmp"),
        ),
        (
            CacheWarningKind::BadRepoType,
            root.join("widgets--a--b"),
            format!(
                "Repo type must be one of ['datasets', 'kernels', 'models', 'spaces'], found `widgets` ({r}/widgets--a--b)."
            ),
        ),
    ];
    assert_eq!(got, expected);
    drop(good);
}

#[test]
fn marked_shared_blob_store_is_skipped() {
    let (_dir, cache) = cache();
    let store = cache.root().join("blobs");
    fs::create_dir_all(&store).unwrap();
    // Unmarked, `blobs` is a corrupt repo folder as for Python.
    assert_eq!(cache.scan().unwrap().warnings.len(), 1);
    fs::write(store.join(".huggingface-shared-blobs"), "1\n").unwrap();
    let info = cache.scan().unwrap();
    assert!(info.warnings.is_empty() && info.repos.is_empty());
}

#[test]
fn scan_of_a_missing_cache_is_an_error() {
    let (dir, _cache) = cache();
    let missing = pipefetch_hub_cache::HfCache::new(dir.path().join("nope"));
    assert!(matches!(
        missing.scan(),
        Err(pipefetch_hub_cache::Error::CacheNotFound { .. })
    ));
}

/// Enough repos for the scan to run on several threads: the answer is the same as one by one.
#[test]
fn a_large_cache_scans_in_order_with_every_warning() {
    let (_dir, cache) = cache();
    let mut expected_size = 0;
    for i in 0..40 {
        let content = format!("weights of repo {i:02}");
        expected_size += content.len() as u64;
        populated(
            &cache,
            &format!("org/m{i:02}"),
            COMMIT_A,
            &[("w.bin", ETAG_1, content.as_bytes())],
        );
    }
    // Three broken ones, spread out: a stray file, a folder without snapshots, a bad type.
    fs::remove_dir_all(cache.root().join("models--org--m05")).unwrap();
    fs::write(cache.root().join("models--org--m05"), "").unwrap();
    fs::remove_dir_all(cache.root().join("models--org--m20")).unwrap();
    fs::create_dir_all(cache.root().join("models--org--m20")).unwrap();
    fs::create_dir_all(cache.root().join("things--org--m30/snapshots")).unwrap();
    expected_size -= 2 * "weights of repo 05".len() as u64;

    let info = cache.scan().unwrap();
    let ids: Vec<&str> = info.repos.iter().map(|r| r.repo_id.as_str()).collect();
    let want: Vec<String> = (0..40)
        .filter(|i| *i != 5 && *i != 20)
        .map(|i| format!("org/m{i:02}"))
        .collect();
    assert_eq!(ids, want);
    let warned: Vec<String> = info
        .warnings
        .iter()
        .map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        warned,
        ["models--org--m05", "models--org--m20", "things--org--m30"]
    );
    assert_eq!(info.size_on_disk, expected_size);
}
