use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};

use pipefetch_hub_cache::{Error, RepoType};

use crate::{ETAG_1, ETAG_2, cache, names};

fn is_partial_name(name: &str, etag: &str) -> bool {
    let Some(rest) = name.strip_prefix(&format!("{etag}.")) else {
        return false;
    };
    let Some(id) = rest.strip_suffix(".incomplete") else {
        return false;
    };
    id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn partial_is_never_visible_under_the_final_name() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let blob = repo.begin_blob(ETAG_1).unwrap();
    let name = blob
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(is_partial_name(&name, ETAG_1), "{name}");
    assert_eq!(blob.path().parent().unwrap(), repo.blobs_dir());
    assert_eq!(blob.final_path(), repo.blob_path(ETAG_1).unwrap());
    blob.file().write_all(b"hello ").unwrap();
    blob.file().write_all(b"world").unwrap();
    assert_eq!(blob.len().unwrap(), 11);
    assert!(!repo.has_blob(ETAG_1));
    assert_eq!(names(&repo.blobs_dir()), [name]);
    let final_path = blob.commit().unwrap();
    assert_eq!(final_path, repo.blob_path(ETAG_1).unwrap());
    assert_eq!(fs::read(&final_path).unwrap(), b"hello world");
    assert_eq!(names(&repo.blobs_dir()), [ETAG_1]);
    assert!(repo.has_blob(ETAG_1));
}

#[test]
fn dropping_an_uncommitted_partial_removes_it_unless_kept() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let blob = repo.begin_blob(ETAG_1).unwrap();
    blob.file().write_all(b"abc").unwrap();
    drop(blob);
    assert!(names(&repo.blobs_dir()).is_empty());

    let mut blob = repo.begin_blob(ETAG_1).unwrap();
    blob.file().write_all(b"abc").unwrap();
    blob.keep();
    let kept = blob.path().to_path_buf();
    drop(blob);
    let other = repo.begin_blob(ETAG_1).unwrap();
    other.file().write_all(b"ab").unwrap();
    let other = other.into_resumable();
    // A partial of another etag is not returned.
    repo.begin_blob(ETAG_2).unwrap().keep();

    let mut expected = vec![kept.clone(), other.clone()];
    expected.sort();
    assert_eq!(repo.find_partials(ETAG_1).unwrap(), expected);

    // Resume the first one and finish it.
    let mut resumed = repo.adopt_partial(&kept).unwrap();
    assert_eq!(resumed.len().unwrap(), 3);
    resumed.file_mut().seek(SeekFrom::End(0)).unwrap();
    resumed.file().write_all(b"def").unwrap();
    let mut content = String::new();
    resumed.file_mut().seek(SeekFrom::Start(0)).unwrap();
    resumed.file_mut().read_to_string(&mut content).unwrap();
    assert_eq!(content, "abcdef");
    resumed.commit().unwrap();
    assert_eq!(
        fs::read(repo.blob_path(ETAG_1).unwrap()).unwrap(),
        b"abcdef"
    );
    assert_eq!(repo.find_partials(ETAG_1).unwrap(), vec![other]);
}

#[test]
fn adopt_refuses_foreign_paths() {
    let (dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let foreign = dir.path().join(format!("{ETAG_1}.abcdef12.incomplete"));
    fs::write(&foreign, "x").unwrap();
    assert!(matches!(
        repo.adopt_partial(&foreign),
        Err(Error::NotAPartial { .. })
    ));
    fs::create_dir_all(repo.blobs_dir()).unwrap();
    let legacy = repo.blobs_dir().join(format!("{ETAG_1}.incomplete"));
    fs::write(&legacy, "x").unwrap();
    assert!(matches!(
        repo.adopt_partial(&legacy),
        Err(Error::NotAPartial { .. })
    ));
    // The legacy name of huggingface_hub <= 1.17 is not ours to resume.
    assert!(repo.find_partials(ETAG_1).unwrap().is_empty());
    assert!(repo.find_partials("nothex").is_err());
}

#[test]
fn commit_race_keeps_the_first_blob() {
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let first = repo.begin_blob(ETAG_1).unwrap();
    let second = repo.begin_blob(ETAG_1).unwrap();
    assert_ne!(first.path(), second.path());
    first.file().write_all(b"first").unwrap();
    second.file().write_all(b"second").unwrap();
    let a = first.commit().unwrap();
    let b = second.commit().unwrap();
    assert_eq!(a, b);
    assert_eq!(fs::read(&a).unwrap(), b"first");
    assert_eq!(names(&repo.blobs_dir()), [ETAG_1]);
}

#[cfg(unix)]
#[test]
fn committed_blob_gets_the_default_file_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, cache) = cache();
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    let blob = repo.begin_blob(ETAG_1).unwrap();
    fs::set_permissions(blob.path(), fs::Permissions::from_mode(0o600)).unwrap();
    let path = blob.commit().unwrap();
    let probe = repo.blobs_dir().join("probe");
    fs::write(&probe, "").unwrap();
    let expected = fs::metadata(&probe).unwrap().permissions().mode() & 0o7777;
    fs::remove_file(&probe).unwrap();
    assert_eq!(
        fs::metadata(path).unwrap().permissions().mode() & 0o7777,
        expected
    );
    assert_ne!(expected, 0o600, "umask made the test meaningless");
}

#[test]
fn concurrent_writers_and_linkers_of_one_blob() {
    let (_dir, cache) = cache();
    concurrent_writers_and_linkers(&cache);
}

#[test]
fn concurrent_writers_and_linkers_without_symlinks() {
    let (_dir, cache) = crate::cache_without_symlinks();
    concurrent_writers_and_linkers(&cache);
}

fn concurrent_writers_and_linkers(cache: &pipefetch_hub_cache::HfCache) {
    use pipefetch_hub_cache::Lookup;
    let repo = cache.repo(RepoType::Model, "org/name").unwrap();
    repo.ensure_layout().unwrap();
    let commit = crate::COMMIT_A;
    // Publish once so that readers have something to find from the start.
    let first = repo.begin_blob(ETAG_1).unwrap();
    first.file().write_all(b"payload").unwrap();
    first.commit().unwrap();
    repo.link_snapshot(commit, "dir/f.bin", ETAG_1).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started_main = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (repo, stop, started) = (repo.clone(), stop.clone(), started_main.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            // At least one read, and until told to stop: on a loaded machine this thread may be
            // scheduled only after the writers are done.
            loop {
                // The pointer never disappears while it is being replaced.
                let found = repo.lookup(commit, "dir/f.bin").unwrap();
                assert!(matches!(found, Lookup::Found(_)), "{found:?}");
                reads += 1;
                started.store(true, std::sync::atomic::Ordering::Relaxed);
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return reads;
                }
            }
        })
    };
    // The writers start once the reader is reading.
    while !started_main.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::yield_now();
    }
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let repo = repo.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let blob = repo.begin_blob(ETAG_1).unwrap();
                    blob.file().write_all(b"payload").unwrap();
                    blob.commit().unwrap();
                    repo.link_snapshot(commit, "dir/f.bin", ETAG_1).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(names(&repo.blobs_dir()), [ETAG_1]);
    assert_eq!(
        names(&repo.snapshot_dir(commit).unwrap().join("dir")),
        ["f.bin"]
    );
    assert_eq!(
        fs::read(repo.pointer_path(commit, "dir/f.bin").unwrap()).unwrap(),
        b"payload"
    );
}
