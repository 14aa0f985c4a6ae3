"""End to end: a tiny real pipeline, served by hub-server, pulled by pipefetch, loaded and run by
diffusers.

The fixture is built with diffusers and transformers themselves (random weights, tiny configs, an
fp16 variant of every model), so "diffusers loads it" is checked against the real library and
not against our idea of it. The first test needs no `pipefetch pull` and proves the fixture is
valid; the others pull specs that use every kind of source and compare the folder with the
fixture byte for byte and with what `DiffusionPipeline.download` fetches.
"""

import json
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


def _q(s) -> str:
    # A JSON string is a valid double-quoted YAML scalar, whatever the path holds.
    return json.dumps(str(s))


def pull(spec_text: str, tmp_path: Path, hub, cache_dir: Path) -> Path:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(spec_text, encoding="utf-8")
    proc = run_pipefetch("pull", str(spec), "--out", str(tmp_path / "out"), hub=hub, cache_dir=cache_dir)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"pull printed nothing on stdout; stderr:\n{proc.stderr}"
    folder = Path(lines[-1])
    assert folder.is_dir(), f"last stdout line is not a folder: {lines[-1]!r}"
    return folder


# pipefetch's record of where each file of an assembled folder came from; not for diffusers.
MANIFEST = ".pipefetch.json"


def pulled_files(folder: Path) -> set:
    """The folder's files apart from the manifest, which must list them all.

    model_index.json may be left out of the manifest: pipefetch writes it rather than fetching it.
    """
    files = tiny.repo_files(folder)
    assert MANIFEST in files, sorted(files)
    files.discard(MANIFEST)
    recorded = {f["target"] for f in json.loads((folder / MANIFEST).read_text())["files"]}
    assert recorded in (files, files - {"model_index.json"}), sorted(recorded ^ files)
    return files


def assert_same_file(got: Path, want: Path, rel: str):
    # pipefetch writes model_index.json itself (it may be edited by the spec), so only its
    # content has to match, not its formatting.
    if rel == "model_index.json":
        assert json.loads(got.read_text()) == json.loads(want.read_text())
    else:
        assert got.read_bytes() == want.read_bytes(), rel


def load(folder, dtype=None):
    import torch
    from diffusers import DiffusionPipeline

    # `dtype=` is diffusers 0.42's name for `torch_dtype=`, which it deprecates.
    return DiffusionPipeline.from_pretrained(str(folder), dtype=dtype or torch.float32)


def run_one_step(pipe):
    import numpy as np
    import torch

    images = pipe(
        prompt="a hi",
        num_inference_steps=1,
        height=tiny.HEIGHT,
        width=tiny.WIDTH,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert images.shape == (1, tiny.HEIGHT, tiny.WIDTH, 3)
    assert np.isfinite(images).all()


def assert_weights_equal(model, weights_file: Path, upcast=False):
    import torch
    from safetensors.torch import load_file

    expected = load_file(str(weights_file))
    got = model.state_dict()
    assert set(expected) <= set(got), sorted(set(expected) - set(got))[:5]
    for key, tensor in expected.items():
        want = tensor.float() if upcast else tensor
        assert torch.equal(got[key], want), f"{key} differs from {weights_file}"


def assert_component_classes(pipe):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    assert type(pipe) is StableDiffusionPipeline
    assert type(pipe.unet) is UNet2DConditionModel
    assert type(pipe.vae) is AutoencoderKL
    assert type(pipe.text_encoder) is CLIPTextModel
    assert type(pipe.tokenizer).__name__.startswith("CLIPTokenizer")
    assert type(pipe.scheduler) is DDIMScheduler
    assert pipe.safety_checker is None and pipe.feature_extractor is None


def tokenizer_files(fixture) -> set:
    return {f"tokenizer/{p}" for p in tiny.repo_files(fixture.base_dir / "tokenizer")}


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
    base_url = f"{pipe_hub.url}/{tiny.BASE_REPO}/resolve/main/text_encoder"
    spec = f"""\
repo_id: {tiny.BASE_REPO}
components:
  vae:
    source:
      - {tiny.VAE_REPO}/config.json
      - {tiny.VAE_REPO}/diffusion_pytorch_model.safetensors
  unet:
    local_path: {_q(fixture.local_unet_dir)}
  text_encoder:
    urls:
      config.json: {_q(base_url + "/config.json")}
      model.safetensors: {_q(base_url + "/model.safetensors")}
"""
    pipe_hub.reset()
    folder = pull(spec, tmp_path, pipe_hub, cache_dir)
    # Overridden components are not fetched from the base repo at all.
    paths = [r["path"] for r in pipe_hub.requests()]
    assert not [p for p in paths if f"{tiny.BASE_REPO}/resolve/" in p and ("/unet/" in p or "/vae/" in p)]

    base, vae, unet = fixture.base_dir, fixture.vae_dir, fixture.local_unet_dir
    # Where every file of the folder must come from, byte for byte.
    origin = {
        "model_index.json": base / "model_index.json",
        "scheduler/scheduler_config.json": base / "scheduler/scheduler_config.json",
        "text_encoder/config.json": base / "text_encoder/config.json",
        "text_encoder/model.safetensors": base / "text_encoder/model.safetensors",
        "unet/config.json": unet / "config.json",
        "unet/diffusion_pytorch_model.safetensors": unet / "my-unet.safetensors",
        "vae/config.json": vae / "config.json",
        "vae/diffusion_pytorch_model.safetensors": vae / "diffusion_pytorch_model.safetensors",
    }
    origin.update({p: base / p for p in tokenizer_files(fixture)})
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
