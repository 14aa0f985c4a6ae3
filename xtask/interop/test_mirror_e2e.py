"""End to end through a fleet's mirror (issue 9): the tiny pipeline, with files from the Hub, from
URLs and from a local folder, is pushed to an S3 store (the Garage that `cargo xtask interop`
starts); then, with hub-server stopped and the local folder gone, as on another machine, it is
pulled from the mirror alone into a fresh HF_HOME. The real diffusers loads and runs the folder,
`pipefetch check` says it is available, and the real huggingface_hub finds the Hub files offline
in that cache, with the Hub's names.
"""

import os
import shutil
from pathlib import Path

import pytest

if os.environ.get("INTEROP_SKIP_TORCH"):
    # Set by `cargo xtask interop` only when the disk has no room for torch; it says so at the end.
    pytest.skip(os.environ["INTEROP_SKIP_TORCH"], allow_module_level=True)

import tiny_pipeline as tiny
from conftest import SCRATCH, run_pipefetch, start_hub
from pipeline_checks import (
    assert_component_classes,
    assert_same_file,
    assert_weights_equal,
    load,
    mixed_origin,
    mixed_spec,
    pulled_files,
    run_one_step,
    tokenizer_files,
)


def test_pushed_pipeline_loads_from_the_mirror_alone_with_the_hub_gone(s3_mirror, tmp_path):
    from huggingface_hub import hf_hub_download, scan_cache_dir

    # Folders of its own: the other end-to-end tests keep theirs as they expect them.
    fixture = tiny.build(SCRATCH / "mirror-hub-root", SCRATCH / "mirror-local")
    mirror = s3_mirror.url("interop")
    spec = tmp_path / "tiny-mirror.yaml"
    hub = start_hub(fixture.hub_root)
    try:
        spec.write_text(mixed_spec(fixture, hub.url), encoding="utf-8")
        pusher = {**s3_mirror.aws_env, "HF_HOME": str(tmp_path / "pusher")}
        pushed = run_pipefetch("mirror", "push", str(spec), mirror, hub=hub, env_extra=pusher)
        key = pushed.stdout.strip().splitlines()[-1]
        assert key.startswith(f"{mirror}/pipelines/tiny-mirror/"), pushed.stdout
    finally:
        hub.stop()

    # Another machine: no Hub (its URL now refuses connections), not the pusher's local folder.
    away = tmp_path / "away"
    shutil.move(fixture.local_unet_dir, away)
    home = tmp_path / "fresh-home"
    fleet = {**s3_mirror.aws_env, "HF_HOME": str(home), "PIPEFETCH_MIRROR": mirror}
    pulled = run_pipefetch("pull", str(spec), "--mirror-only", hub=hub, env_extra=fleet)
    folder = Path(pulled.stdout.strip().splitlines()[-1])
    assert folder == home / "pipelines" / "tiny-mirror"

    origin = mixed_origin(fixture, local_unet=away)
    assert pulled_files(folder) == set(origin)
    for rel, src in origin.items():
        assert_same_file(folder / rel, src, rel)
    pipe = load(folder)
    assert_component_classes(pipe)
    assert_weights_equal(pipe.vae, fixture.vae_dir / "diffusion_pytorch_model.safetensors")
    assert_weights_equal(pipe.unet, away / "my-unet.safetensors")
    assert_weights_equal(pipe.text_encoder, fixture.base_dir / "text_encoder/model.safetensors")
    run_one_step(pipe)

    # `check` needs nothing from the mirror: no S3 variable, no Hub.
    check = run_pipefetch("check", str(spec), hub=hub, env_extra={"HF_HOME": str(home)}, check=False)
    assert check.returncode == 0, f"stdout:\n{check.stdout}\nstderr:\n{check.stderr}"
    assert "tiny-mirror: available" in check.stdout, check.stdout

    # The Hub files are in the standard cache under the Hub's names, for huggingface_hub offline.
    cache = home / "hub"
    hub_files = [(tiny.BASE_REPO, fixture.base_dir, "scheduler/scheduler_config.json")]
    hub_files += [(tiny.BASE_REPO, fixture.base_dir, p) for p in sorted(tokenizer_files(fixture))]
    hub_files += [
        (tiny.VAE_REPO, fixture.vae_dir, "config.json"),
        (tiny.VAE_REPO, fixture.vae_dir, "diffusion_pytorch_model.safetensors"),
    ]
    for repo_id, repo_dir, path in hub_files:
        got = hf_hub_download(repo_id, path, cache_dir=cache, local_files_only=True)
        assert Path(got).read_bytes() == (repo_dir / path).read_bytes(), (repo_id, path)
        assert Path(got).is_relative_to(cache / f"models--{repo_id.replace('/', '--')}" / "snapshots")
    info = scan_cache_dir(cache)
    assert [str(w) for w in info.warnings] == []
    assert {r.repo_id for r in info.repos} == {tiny.BASE_REPO, tiny.VAE_REPO}
