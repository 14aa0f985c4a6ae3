"""What the end-to-end tests check on a pulled pipeline folder, shared by the tests that pull
the tiny pipeline (`tiny_pipeline.py`) from hub-server or from a mirror.

torch, diffusers and transformers are imported inside the functions, as in `tiny_pipeline.py`.
"""

import json
from pathlib import Path

import tiny_pipeline as tiny

# pipefetch's record of where each file of an assembled folder came from; not for diffusers.
MANIFEST = ".pipefetch.json"


def q(s) -> str:
    """`s` as a YAML scalar: a JSON string is a valid double-quoted one, whatever the path holds."""
    return json.dumps(str(s))


def mixed_spec(fixture, hub_url: str, local_unet: Path = None) -> str:
    """A spec of the tiny pipeline taking files from every kind of source: the base repo, another
    repo's files (`vae`), a local folder (`unet`) and URLs on hub-server (`text_encoder`)."""
    base_url = f"{hub_url}/{tiny.BASE_REPO}/resolve/main/text_encoder"
    return f"""\
repo_id: {tiny.BASE_REPO}
components:
  vae:
    source:
      - {tiny.VAE_REPO}/config.json
      - {tiny.VAE_REPO}/diffusion_pytorch_model.safetensors
  unet:
    local_path: {q(local_unet or fixture.local_unet_dir)}
  text_encoder:
    urls:
      config.json: {q(base_url + "/config.json")}
      model.safetensors: {q(base_url + "/model.safetensors")}
"""


def mixed_origin(fixture, local_unet: Path = None) -> dict:
    """Where every file of [`mixed_spec`]'s folder must come from, byte for byte."""
    base, vae, unet = fixture.base_dir, fixture.vae_dir, local_unet or fixture.local_unet_dir
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
    return origin


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
