"""huggingface_hub itself, pointed at hub-server, downloads every fixture repo correctly.

This is how we know hub-server speaks the Hub's protocol and not just what our client expects.
"""

import os
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import _CACHED_NO_EXIST

from conftest import TOKEN, fixture_repos, source_files


@pytest.mark.parametrize("kind,repo_id,files,gated", fixture_repos(), ids=lambda v: str(v)[:20])
def test_snapshot_download_every_fixture_repo(endpoint, fixture_root, cache_dir, kind, repo_id, files, gated):
    repo_type = {"models": "model", "datasets": "dataset"}[kind]
    snap = snapshot_download(
        repo_id, repo_type=repo_type, cache_dir=cache_dir, token=TOKEN if gated else None
    )
    expected = source_files(fixture_root, kind, repo_id)
    got = {
        p.relative_to(snap).as_posix(): p.read_bytes()
        for p in sorted(Path(snap).rglob("*"))
        if p.is_file()
    }
    assert got.keys() == expected.keys()
    for path in expected:
        assert got[path] == expected[path], path


def test_single_files_with_awkward_names(endpoint, fixture_root, cache_dir):
    expected = source_files(fixture_root, "models", "acme/tiny-sd")
    for path in ["docs/file with space #1.txt", "docs/deep/nested/\u00e9t\u00e9.txt", "empty.txt", "big/blob.dat"]:
        p = hf_hub_download("acme/tiny-sd", path, cache_dir=cache_dir)
        assert Path(p).read_bytes() == expected[path]
    p = hf_hub_download("acme/tiny-sd", "config.json", subfolder="unet", cache_dir=cache_dir)
    assert Path(p).read_bytes() == expected["unet/config.json"]


def test_errors_are_typed(endpoint, cache_dir):
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("acme/tiny-sd", "nope.json", cache_dir=cache_dir)
    # The 404 carried X-Repo-Commit, so huggingface_hub remembers the miss.
    assert try_to_load_from_cache("acme/tiny-sd", "nope.json", cache_dir=cache_dir) is _CACHED_NO_EXIST
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("acme/tiny-sd", "README.md", revision="no-such-branch", cache_dir=cache_dir)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/missing", "README.md", cache_dir=cache_dir)
    with pytest.raises(GatedRepoError):
        hf_hub_download("acme/gated-model", "config.json", cache_dir=cache_dir, token=False)
    with pytest.raises(GatedRepoError):
        hf_hub_download("acme/gated-model", "config.json", cache_dir=cache_dir, token="hf_wrong")


def test_api_listing_matches_the_folder(endpoint, fixture_root, hub):
    api = HfApi(endpoint=endpoint)
    expected = source_files(fixture_root, "models", "acme/tiny-sd")
    entries = list(api.list_repo_tree("acme/tiny-sd", recursive=True))
    files = {e.path: e for e in entries if e.__class__.__name__ == "RepoFile"}
    assert files.keys() == expected.keys()
    for path, data in expected.items():
        assert files[path].size == len(data)
    info = api.model_info("acme/tiny-sd", files_metadata=True)
    assert info.sha == hub.commit("acme/tiny-sd")
    assert sorted(s.rfilename for s in info.siblings) == sorted(expected)
    by_name = {s.rfilename: s for s in info.siblings}
    import hashlib

    w = "unet/diffusion_pytorch_model.safetensors"
    assert by_name[w].lfs.sha256 == hashlib.sha256(expected[w]).hexdigest()
    assert by_name[w].size == len(expected[w])
