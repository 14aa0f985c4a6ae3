"""pipefetch and huggingface_hub share one cache: each reads what the other wrote."""

import os
from pathlib import Path

import pytest
from huggingface_hub import (
    hf_hub_download,
    scan_cache_dir,
    snapshot_download,
    try_to_load_from_cache,
)

from conftest import TOKEN, run_pipefetch, source_files


def test_pipefetch_snapshot_is_read_by_huggingface_hub(hub, fixture_root, cache_dir):
    files = source_files(fixture_root, "models", "acme/tiny-sd")
    out = run_pipefetch("snapshot", "acme/tiny-sd", hub=hub, cache_dir=cache_dir)
    commit = hub.commit("acme/tiny-sd")
    snapshot = Path(out.stdout.strip().splitlines()[-1])
    assert snapshot == cache_dir / "models--acme--tiny-sd" / "snapshots" / commit

    info = scan_cache_dir(cache_dir)
    assert [str(w) for w in info.warnings] == []
    (repo,) = info.repos
    assert repo.repo_id == "acme/tiny-sd"
    assert repo.repo_type == "model"
    assert repo.nb_files == len(files)
    # Blobs are deduplicated by content: identical files share one blob.
    assert repo.size_on_disk == sum(len(b) for b in {b: 0 for b in files.values()})
    (rev,) = repo.revisions
    assert rev.commit_hash == commit
    assert rev.refs == frozenset({"main"})
    assert sorted(f.file_name for f in rev.files) == sorted(Path(p).name for p in files)

    for path, data in files.items():
        got = hf_hub_download("acme/tiny-sd", path, cache_dir=cache_dir, local_files_only=True)
        assert Path(got).read_bytes() == data, path
        assert try_to_load_from_cache("acme/tiny-sd", path, cache_dir=cache_dir) == got
        assert Path(got).is_symlink()
        assert not os.path.isabs(os.readlink(got))

    again = snapshot_download("acme/tiny-sd", cache_dir=cache_dir, local_files_only=True)
    assert Path(again) == snapshot


def test_pipefetch_filtered_snapshot_and_single_files(hub, fixture_root, cache_dir):
    files = source_files(fixture_root, "models", "acme/tiny-sd")
    run_pipefetch(
        "snapshot", "acme/tiny-sd", "--include", "unet/*", "--include", "*.json",
        "--exclude", "*.fp16.*", hub=hub, cache_dir=cache_dir,
    )
    out = run_pipefetch(
        "download", "acme/tiny-data", "data/train.csv", "README.md", "--repo-type", "dataset",
        hub=hub, cache_dir=cache_dir,
    )
    paths = out.stdout.strip().splitlines()
    assert [Path(p).read_bytes() for p in paths] == [b"a,b\n1,2\n", b"# data\n"]

    info = scan_cache_dir(cache_dir)
    assert [str(w) for w in info.warnings] == []
    by_id = {r.repo_id: r for r in info.repos}
    sd = by_id["acme/tiny-sd"]
    expected = sorted(
        p for p in files
        if (p.startswith("unet/") or p.endswith(".json")) and ".fp16." not in p
    )
    (rev,) = sd.revisions
    got = sorted(
        f.file_path.relative_to(rev.snapshot_path).as_posix() for f in rev.files
    )
    assert got == expected
    assert by_id["acme/tiny-data"].repo_type == "dataset"
    for path in expected:
        p = hf_hub_download("acme/tiny-sd", path, cache_dir=cache_dir, local_files_only=True)
        assert Path(p).read_bytes() == files[path]


def test_huggingface_hub_cache_is_read_by_pipefetch_without_requests(hub, endpoint, cache_dir):
    hub.reset()
    snap = snapshot_download("acme/tiny-sd", cache_dir=cache_dir)
    # The log works: huggingface_hub's own download shows up in it.
    assert any(r["route"] == "cdn" for r in hub.requests())
    commit = hub.commit("acme/tiny-sd")
    hub.reset()

    out = run_pipefetch(
        "download", "acme/tiny-sd", "unet/config.json", "docs/file with space #1.txt",
        "--revision", commit, hub=hub, cache_dir=cache_dir,
    )
    assert out.stdout.strip().splitlines() == [
        str(Path(snap) / "unet/config.json"),
        str(Path(snap) / "docs/file with space #1.txt"),
    ]
    # A file cached at a known commit costs no request at all.
    assert hub.requests() == []

    out = run_pipefetch(
        "download", "acme/tiny-sd", "vae/config.json", hub=hub, cache_dir=cache_dir,
        env_extra={"HF_HUB_OFFLINE": "1"},
    )
    assert out.stdout.strip() == str(Path(snap) / "vae/config.json")
    assert hub.requests() == []

    # A whole snapshot pinned to a commit: the file list comes from trees/<commit>.json.
    out = run_pipefetch("snapshot", "acme/tiny-sd", "--revision", commit, hub=hub, cache_dir=cache_dir)
    assert out.stdout.strip().splitlines()[-1] == snap
    assert hub.requests() == []


def test_scan_json_matches_scan_cache_dir(hub, cache_dir):
    run_pipefetch("snapshot", "acme/tiny-sd", hub=hub, cache_dir=cache_dir)
    run_pipefetch("snapshot", "acme/tiny-data", "--repo-type", "dataset", hub=hub, cache_dir=cache_dir)
    import json

    ours = json.loads(run_pipefetch("scan", "--json", cache_dir=cache_dir).stdout)
    theirs = scan_cache_dir(cache_dir)
    assert theirs.warnings == []
    ours_repos = {(r["repo_type"], r["repo_id"]): r for r in ours["repos"]}
    assert len(ours_repos) == len(theirs.repos)
    for repo in theirs.repos:
        mine = ours_repos[(repo.repo_type, repo.repo_id)]
        assert mine["size_on_disk"] == repo.size_on_disk
        assert mine["nb_files"] == repo.nb_files
        assert sorted(r["commit"] for r in mine["revisions"]) == sorted(
            r.commit_hash for r in repo.revisions
        )


def test_rm_leaves_a_clean_cache(hub, cache_dir):
    run_pipefetch("snapshot", "acme/tiny-sd", hub=hub, cache_dir=cache_dir)
    run_pipefetch("snapshot", "acme/tiny-data", "--repo-type", "dataset", hub=hub, cache_dir=cache_dir)
    run_pipefetch("rm", "acme/tiny-sd", cache_dir=cache_dir)
    info = scan_cache_dir(cache_dir)
    assert info.warnings == []
    assert [r.repo_id for r in info.repos] == ["acme/tiny-data"]


def test_gated_repo_needs_the_token(hub, cache_dir):
    hub.reset()
    denied = run_pipefetch(
        "download", "acme/gated-model", "config.json", hub=hub, cache_dir=cache_dir, check=False
    )
    assert denied.returncode != 0
    assert "gated" in denied.stderr.lower()
    assert "acme/gated-model" in denied.stderr
    ok = run_pipefetch(
        "download", "acme/gated-model", "model.safetensors", "--token", TOKEN,
        hub=hub, cache_dir=cache_dir,
    )
    p = hf_hub_download("acme/gated-model", "model.safetensors", cache_dir=cache_dir, local_files_only=True)
    assert ok.stdout.strip() == p
    # The token went to the hub, never to the CDN.
    cdn = [r for r in hub.requests() if r["route"] == "cdn"]
    assert cdn, "the LFS file came from the CDN"
    assert [r for r in cdn if r.get("authorization")] == []
