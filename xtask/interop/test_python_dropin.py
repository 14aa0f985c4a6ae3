"""The pipefetch Python package as a drop-in for huggingface_hub: the same calls give the same
paths and bytes, in both directions of one cache; scan_cache_dir and delete strategies agree
field by field; errors carry huggingface_hub's class names and the CLI's text."""

import shutil
from pathlib import Path

import huggingface_hub
import pytest

import pipefetch
from conftest import TOKEN, run_pipefetch, source_files, start_hub

FILES = [
    ("acme/tiny-sd", "model", "unet/config.json"),
    ("acme/tiny-sd", "model", "unet/diffusion_pytorch_model.safetensors"),
    ("acme/tiny-sd", "model", "docs/file with space #1.txt"),
    ("acme/tiny-sd", "model", "docs/deep/nested/\u00e9t\u00e9.txt"),
    ("acme/tiny-sd", "model", "big/blob.dat"),
    ("acme/tiny-sd", "model", "empty.txt"),
    ("acme/tiny-data", "dataset", "data/train.csv"),
]


def _kind(repo_type):
    return {"model": "models", "dataset": "datasets"}[repo_type]


@pytest.mark.parametrize("repo_id,repo_type,path", FILES)
def test_hf_hub_download_gives_huggingface_hubs_paths_both_ways(
    hub, endpoint, fixture_root, tmp_path, repo_id, repo_type, path
):
    data = source_files(fixture_root, _kind(repo_type), repo_id)[path]
    # pipefetch writes, huggingface_hub reads (offline).
    ours = tmp_path / "a"
    got = pipefetch.hf_hub_download(repo_id, path, repo_type=repo_type, cache_dir=ours, endpoint=hub.url)
    assert Path(got).read_bytes() == data
    theirs = huggingface_hub.hf_hub_download(
        repo_id, path, repo_type=repo_type, cache_dir=ours, local_files_only=True
    )
    assert got == theirs

    # huggingface_hub writes, pipefetch reads: offline, and online without moving a byte.
    other = tmp_path / "b"
    written = huggingface_hub.hf_hub_download(repo_id, path, repo_type=repo_type, cache_dir=other)
    assert pipefetch.hf_hub_download(
        repo_id, path, repo_type=repo_type, cache_dir=other, local_files_only=True
    ) == written
    hub.reset()
    assert pipefetch.hf_hub_download(
        repo_id, path, repo_type=repo_type, cache_dir=other, endpoint=hub.url
    ) == written
    assert [r for r in hub.requests() if r["route"] == "cdn"] == []
    assert written == str(Path(got.replace(str(ours), str(other))))


def test_subfolder_and_revision_arguments(hub, endpoint, tmp_path):
    commit = hub.commit("acme/tiny-sd")
    a = pipefetch.hf_hub_download(
        "acme/tiny-sd", "config.json", subfolder="vae", revision=commit, cache_dir=tmp_path, endpoint=hub.url
    )
    b = huggingface_hub.hf_hub_download(
        "acme/tiny-sd", "config.json", subfolder="vae", revision=commit, cache_dir=tmp_path, local_files_only=True
    )
    assert a == b and a.endswith(f"snapshots/{commit}/vae/config.json")


def _tree(folder: Path):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_snapshot_download_gives_the_same_folder_both_ways(hub, endpoint, fixture_root, tmp_path):
    kwargs = dict(allow_patterns=["unet/*", "*.json"], ignore_patterns="*.fp16.*")
    ours = pipefetch.snapshot_download("acme/tiny-sd", cache_dir=tmp_path / "a", endpoint=hub.url, **kwargs)
    theirs = huggingface_hub.snapshot_download("acme/tiny-sd", cache_dir=tmp_path / "b", **kwargs)
    assert Path(ours).relative_to(tmp_path / "a") == Path(theirs).relative_to(tmp_path / "b")
    files = source_files(fixture_root, "models", "acme/tiny-sd")
    expected = {
        p: b for p, b in files.items()
        if (p.startswith("unet/") or p.endswith(".json")) and ".fp16." not in p
    }
    assert _tree(Path(ours)) == _tree(Path(theirs)) == expected

    # Each reads the other's snapshot without the network.
    assert huggingface_hub.snapshot_download(
        "acme/tiny-sd", cache_dir=tmp_path / "a", local_files_only=True, **kwargs
    ) == ours
    assert pipefetch.snapshot_download(
        "acme/tiny-sd", cache_dir=tmp_path / "b", local_files_only=True, **kwargs
    ) == theirs


def test_errors_have_huggingface_hubs_names_and_the_clis_text(hub, tmp_path):
    def call(**kw):
        args = dict(cache_dir=tmp_path, endpoint=hub.url, token=False)
        args.update(kw)
        repo = args.pop("repo", "acme/tiny-sd")
        path = args.pop("path", "unet/config.json")
        return pipefetch.hf_hub_download(repo, path, **args)

    with pytest.raises(pipefetch.GatedRepoError) as gated:
        call(repo="acme/gated-model", path="config.json")
    assert isinstance(gated.value, pipefetch.RepositoryNotFoundError)
    assert isinstance(gated.value, OSError) and gated.value.status_code == 401
    assert gated.value.hint and "accept the conditions" in gated.value.hint
    # The CLI says the same, line for line (it adds its own first line of context).
    cli = run_pipefetch(
        "download", "acme/gated-model", "config.json", hub=hub, cache_dir=tmp_path, check=False
    )
    for line in str(gated.value).splitlines():
        assert line.strip().removeprefix("caused by: ") in cli.stderr, (line, cli.stderr)

    assert Path(call(repo="acme/gated-model", path="config.json", token=TOKEN)).is_file()
    with pytest.raises(pipefetch.RepositoryNotFoundError):
        call(repo="acme/no-such-repo")
    with pytest.raises(pipefetch.RevisionNotFoundError):
        call(revision="no-such-branch")
    with pytest.raises(pipefetch.RemoteEntryNotFoundError) as missing:
        call(path="no/such/file.json")
    assert isinstance(missing.value, pipefetch.EntryNotFoundError)
    with pytest.raises(pipefetch.LocalEntryNotFoundError) as local:
        call(path="vae/config.json", local_files_only=True)
    assert isinstance(local.value, FileNotFoundError)
    assert "not in the cache" in str(local.value) and local.value.hint
    with pytest.raises(pipefetch.HFValidationError):
        call(local_dir=tmp_path / "out")
    for error in (gated, missing, local):
        assert isinstance(error.value, pipefetch.PipefetchError)


def test_repo_folder_name_is_huggingface_hubs():
    for repo_id, repo_type in [("org/name", "model"), ("org/data", "dataset"), ("solo", "space")]:
        assert pipefetch.repo_folder_name(repo_id=repo_id, repo_type=repo_type) == (
            huggingface_hub.file_download.repo_folder_name(repo_id=repo_id, repo_type=repo_type)
        )


@pytest.fixture
def two_revisions(tmp_path):
    """A cache with two revisions of one repo (the second changes one file), a dataset, a damaged
    repo folder and an interrupted download, written by both libraries."""
    root = tmp_path / "root"
    repo = root / "models" / "acme" / "evolving"
    (repo / "unet").mkdir(parents=True)
    (repo / "unet" / "config.json").write_text('{"v": 1}')
    (repo / "unet" / "weights.safetensors").write_bytes(b"w" * 50_000)
    (repo / "README.md").write_text("# evolving\n")
    (root / "datasets" / "acme" / "data").mkdir(parents=True)
    (root / "datasets" / "acme" / "data" / "rows.csv").write_text("a,b\n")
    server = start_hub(root)
    cache = tmp_path / "cache"
    try:
        first = pipefetch.snapshot_download("acme/evolving", cache_dir=cache, endpoint=server.url)
        (repo / "unet" / "config.json").write_text('{"v": 2}')
        huggingface_hub.snapshot_download(
            "acme/evolving", cache_dir=cache, endpoint=server.url, revision=server.commit("acme/evolving")
        )
        pipefetch.snapshot_download("acme/data", repo_type="dataset", cache_dir=cache, endpoint=server.url)
    finally:
        server.stop()
    (cache / "models--broken").mkdir()
    (cache / "models--acme--evolving" / "blobs" / "0123abcd.incomplete").write_bytes(b"partial")
    return cache, Path(first).name


def _fields(obj, names):
    return {n: getattr(obj, n) for n in names}


def test_scan_cache_dir_agrees_field_by_field(two_revisions):
    cache, _ = two_revisions
    theirs = huggingface_hub.scan_cache_dir(cache)
    ours = pipefetch.scan_cache_dir(cache)
    assert ours.size_on_disk == theirs.size_on_disk
    assert ours.size_on_disk_str == theirs.size_on_disk_str
    assert [str(w) for w in ours.warnings] == [str(w) for w in theirs.warnings] != []
    assert {(f.file_path, f.size_on_disk) for f in ours.incomplete_files} == {
        (f.file_path, f.size_on_disk) for f in theirs.incomplete_files
    }
    assert ours.cache_dir == theirs.cache_dir
    repo_fields = [
        "repo_id", "repo_type", "repo_path", "size_on_disk", "nb_files", "last_accessed",
        "last_modified", "size_on_disk_str", "cache_id",
    ]
    rev_fields = ["commit_hash", "snapshot_path", "size_on_disk", "refs", "last_modified", "nb_files"]
    file_fields = [
        "file_name", "file_path", "blob_path", "size_on_disk", "blob_last_accessed", "blob_last_modified",
    ]
    theirs_repos = {r.repo_id: r for r in theirs.repos}
    assert {r.repo_id for r in ours.repos} == set(theirs_repos) == {"acme/evolving", "acme/data"}
    for repo in ours.repos:
        other = theirs_repos[repo.repo_id]
        assert _fields(repo, repo_fields) == _fields(other, repo_fields)
        assert set(repo.refs) == set(other.refs)
        other_revs = {r.commit_hash: r for r in other.revisions}
        assert {r.commit_hash for r in repo.revisions} == set(other_revs)
        for rev in repo.revisions:
            assert _fields(rev, rev_fields) == _fields(other_revs[rev.commit_hash], rev_fields)
            assert {tuple(_fields(f, file_fields).values()) for f in rev.files} == {
                tuple(_fields(f, file_fields).values()) for f in other_revs[rev.commit_hash].files
            }
    assert len({r.commit_hash for r in ours.repos if r.repo_id == "acme/evolving" for r in r.revisions}) == 2


def _listing(root: Path):
    # pipefetch also deletes the tree listing (`trees/<commit>.json`) of a deleted commit, which
    # huggingface_hub leaves behind; neither tool reads a listing without its snapshot.
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if ".locks" not in p.parts and "trees" not in p.parts
    )


@pytest.mark.parametrize("which", ["old", "all"])
def test_delete_revisions_agrees_with_huggingface_hub(two_revisions, tmp_path, which):
    cache, old_commit = two_revisions
    shutil.rmtree(cache / "models--broken")
    twin = tmp_path / "twin"
    shutil.copytree(cache, twin, symlinks=True)
    repo = next(r for r in huggingface_hub.scan_cache_dir(cache).repos if r.repo_id == "acme/evolving")
    commits = [old_commit] if which == "old" else [r.commit_hash for r in repo.revisions]

    ours = pipefetch.scan_cache_dir(cache).delete_revisions(*commits)
    theirs = huggingface_hub.scan_cache_dir(twin).delete_revisions(*commits)
    assert ours.expected_freed_size == theirs.expected_freed_size > 0
    assert ours.expected_freed_size_str == theirs.expected_freed_size_str

    def rel(paths, root):
        return sorted(Path(p).relative_to(root).as_posix() for p in paths)

    for name in ("blobs", "refs", "repos", "snapshots"):
        assert rel(getattr(ours, name), cache) == rel(getattr(theirs, name), twin), name

    ours.execute()
    theirs.execute()
    assert _listing(cache) == _listing(twin)
    after = pipefetch.scan_cache_dir(cache)
    assert after.warnings == []
    remaining = {r.repo_id: r for r in after.repos}
    if which == "all":
        assert "acme/evolving" not in remaining
    else:
        assert old_commit not in {r.commit_hash for r in remaining["acme/evolving"].revisions}
