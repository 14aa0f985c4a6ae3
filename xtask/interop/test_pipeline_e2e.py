"""End to end: a tiny real pipeline, served by hub-server, pulled by pipefetch, loaded and run by
diffusers.

The fixture is built with diffusers and transformers themselves (random weights, tiny configs, an
fp16 variant of every model), so "diffusers loads it" is checked against the real library and
not against our idea of it. The first test needs no `pipefetch pull` and proves the fixture is
valid; the others pull specs that use every kind of source and compare the folder with the
fixture byte for byte and with what `DiffusionPipeline.download` fetches.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

if os.environ.get("INTEROP_SKIP_TORCH"):
    # Set by `cargo xtask interop` only when the disk has no room for torch; it says so at the end.
    pytest.skip(os.environ["INTEROP_SKIP_TORCH"], allow_module_level=True)

import tiny_pipeline as tiny
from conftest import PIPEFETCH, SCRATCH, run_pipefetch, start_hub
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


def _has_pull() -> bool:
    out = subprocess.run([PIPEFETCH, "--help"], capture_output=True, text=True, timeout=60)
    return re.search(r"^\s+pull\s", out.stdout, re.MULTILINE) is not None


needs_pull = pytest.mark.skipif(
    not _has_pull(), reason="`pipefetch pull` does not exist yet (not listed by `pipefetch --help`)"
)


@pytest.fixture(scope="module")
def fixture():
    return tiny.build(SCRATCH / "pipe-hub-root", SCRATCH / "pipe-local")


@pytest.fixture(scope="module")
def pipe_hub(fixture):
    # A server of its own: the tiny pipeline is built before it starts, and the shared `hub`
    # fixture's repos stay as the other tests expect them.
    hub = start_hub(fixture.hub_root)
    yield hub
    hub.stop()


@pytest.fixture
def pipe_endpoint(pipe_hub, monkeypatch):
    # As conftest's `endpoint`: huggingface_hub copies HF_ENDPOINT into constants at import.
    # diffusers calls the module-level `model_info`, bound to an HfApi made at import, so its
    # endpoint needs patching too.
    import huggingface_hub.constants as c
    import huggingface_hub.hf_api as hf_api

    monkeypatch.setenv("HF_ENDPOINT", pipe_hub.url)
    monkeypatch.setattr(c, "ENDPOINT", pipe_hub.url)
    monkeypatch.setattr(
        c, "HUGGINGFACE_CO_URL_TEMPLATE", pipe_hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(hf_api.api, "endpoint", pipe_hub.url)
    return pipe_hub.url


def pull(spec_text: str, tmp_path: Path, hub, cache_dir: Path) -> Path:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(spec_text, encoding="utf-8")
    proc = run_pipefetch("pull", str(spec), "--out", str(tmp_path / "out"), hub=hub, cache_dir=cache_dir)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"pull printed nothing on stdout; stderr:\n{proc.stderr}"
    folder = Path(lines[-1])
    assert folder.is_dir(), f"last stdout line is not a folder: {lines[-1]!r}"
    return folder


def test_fixture_loads_with_diffusers_from_the_hub(pipe_endpoint, fixture, cache_dir):
    """Without pipefetch: diffusers itself downloads the fixture from hub-server and runs it.

    Also pins down what diffusers fetches, so the distractors are what the other tests say: the
    `vae_1_0/` weights are fetched, the pickle twin and the fp16 files are not.
    """
    from diffusers import DiffusionPipeline

    folder = Path(DiffusionPipeline.download(tiny.BASE_REPO, cache_dir=cache_dir))
    assert tiny.repo_files(folder) == {
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "vae_1_0/diffusion_pytorch_model.safetensors",
    } | tokenizer_files(fixture)

    pipe = DiffusionPipeline.from_pretrained(tiny.BASE_REPO, cache_dir=cache_dir)
    assert_component_classes(pipe)
    assert_weights_equal(pipe.unet, fixture.base_dir / "unet" / "diffusion_pytorch_model.safetensors")
    run_one_step(pipe)


@needs_pull
def test_pull_mixed_sources_loads_and_runs(pipe_hub, fixture, tmp_path, cache_dir):
    spec = mixed_spec(fixture, pipe_hub.url)
    pipe_hub.reset()
    folder = pull(spec, tmp_path, pipe_hub, cache_dir)
    # Overridden components are not fetched from the base repo at all.
    paths = [r["path"] for r in pipe_hub.requests()]
    assert not [p for p in paths if f"{tiny.BASE_REPO}/resolve/" in p and ("/unet/" in p or "/vae/" in p)]

    base, vae, unet = fixture.base_dir, fixture.vae_dir, fixture.local_unet_dir
    origin = mixed_origin(fixture)
    assert pulled_files(folder) == set(origin)
    for rel, src in origin.items():
        assert_same_file(folder / rel, src, rel)

    pipe = load(folder)
    assert_component_classes(pipe)
    assert_weights_equal(pipe.vae, vae / "diffusion_pytorch_model.safetensors")
    assert_weights_equal(pipe.unet, unet / "my-unet.safetensors")
    assert_weights_equal(pipe.text_encoder, base / "text_encoder/model.safetensors")
    run_one_step(pipe)


@needs_pull
def test_pull_base_only_is_a_subset_of_diffusers_download(
    pipe_hub, pipe_endpoint, fixture, tmp_path, cache_dir
):
    from diffusers import DiffusionPipeline

    pipe_hub.reset()
    folder = pull(f"repo_id: {tiny.BASE_REPO}\n", tmp_path, pipe_hub, cache_dir)
    ours = pulled_files(folder)
    # Not just left out of the folder: never downloaded.
    paths = [r["path"] for r in pipe_hub.requests()]
    assert paths, "pull made no request"
    assert not [p for p in paths if "vae_1_0" in p or p.endswith(".bin") or ".fp16." in p]

    theirs_dir = Path(
        DiffusionPipeline.download(tiny.BASE_REPO, cache_dir=tmp_path / "diffusers-cache")
    )
    theirs = tiny.repo_files(theirs_dir)

    # diffusers also fetches weights outside the component folders; nothing else differs.
    assert ours <= theirs, sorted(ours - theirs)
    assert theirs - ours == {"vae_1_0/diffusion_pytorch_model.safetensors"}
    assert not [p for p in ours if p.endswith(".bin") or ".fp16." in p]
    for rel in ours:
        assert_same_file(folder / rel, theirs_dir / rel, rel)

    pipe = load(folder)
    assert_component_classes(pipe)
    assert_weights_equal(pipe.unet, fixture.base_dir / "unet/diffusion_pytorch_model.safetensors")
    run_one_step(pipe)


@needs_pull
def test_pull_variant_gives_canonical_names_and_loads(pipe_hub, fixture, tmp_path, cache_dir):
    spec = f"""\
repo_id: {tiny.BASE_REPO}
variant: fp16
components:
  vae:
    source: [{tiny.VAE_REPO}/config.json, {tiny.VAE_REPO}/diffusion_pytorch_model.safetensors]
"""
    folder = pull(spec, tmp_path, pipe_hub, cache_dir)
    files = pulled_files(folder)
    assert not [p for p in files if ".fp16." in p]

    base, vae = fixture.base_dir, fixture.vae_dir
    origin = {
        "model_index.json": base / "model_index.json",
        "scheduler/scheduler_config.json": base / "scheduler/scheduler_config.json",
        "text_encoder/config.json": base / "text_encoder/config.json",
        "text_encoder/model.safetensors": base / "text_encoder/model.fp16.safetensors",
        "unet/config.json": base / "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors": base / "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json": vae / "config.json",
        "vae/diffusion_pytorch_model.safetensors": vae / "diffusion_pytorch_model.safetensors",
    }
    origin.update({p: base / p for p in tokenizer_files(fixture)})
    assert files == set(origin)
    for rel, src in origin.items():
        assert_same_file(folder / rel, src, rel)

    # fp16 unet and text encoder beside an fp32 vae: loading needs an explicit dtype (see
    # diffusers-selection.md §6), with no `variant=` since the names are canonical.
    pipe = load(folder)
    assert_component_classes(pipe)
    assert_weights_equal(
        pipe.unet, base / "unet/diffusion_pytorch_model.fp16.safetensors", upcast=True
    )
    assert_weights_equal(pipe.vae, vae / "diffusion_pytorch_model.safetensors")
    run_one_step(pipe)

    import torch

    half = load(folder, torch.float16)
    assert half.unet.dtype == torch.float16 and half.text_encoder.dtype == torch.float16


def test_python_package_pulls_a_dict_spec_that_loads(pipe_hub, fixture, tmp_path, cache_dir):
    """The same mixed pipeline through `pipefetch.download_diffusers_pipeline` with a dict spec:
    the folder loads and runs, and `is_available_locally` and `plan` agree with the disk."""
    import pipefetch

    spec = {
        "name": "tiny-dict",
        "repo_id": tiny.BASE_REPO,
        "components": {
            "vae": {"source": [f"{tiny.VAE_REPO}/config.json", f"{tiny.VAE_REPO}/diffusion_pytorch_model.safetensors"]},
            "unet": {"local_path": fixture.local_unet_dir},
        },
    }
    common = dict(cache_dir=cache_dir)
    assert not pipefetch.is_available_locally(spec, **common)
    before = pipefetch.plan(spec, endpoint=pipe_hub.url, **common)
    assert before.name == "tiny-dict" and before.missing_bytes > 0
    events = []
    folder = Path(
        pipefetch.download_diffusers_pipeline(
            spec, out=tmp_path / "out", endpoint=pipe_hub.url, progress=events.append, **common
        )
    )
    assert events[0]["event"] == "plan" and events[-1]["event"] == "done"
    assert pipefetch.is_available_locally(spec, **common)
    after = pipefetch.plan(spec, endpoint=pipe_hub.url, **common)
    assert after.missing_bytes == 0 and {f.state for f in after.files} == {"cached"}
    assert pulled_files(folder) == {f.target for f in after.files} | {"model_index.json"}

    vae, unet = fixture.vae_dir, fixture.local_unet_dir
    pipe = load(folder)
    assert_component_classes(pipe)
    assert_weights_equal(pipe.vae, vae / "diffusion_pytorch_model.safetensors")
    assert_weights_equal(pipe.unet, unet / "my-unet.safetensors")
    run_one_step(pipe)
