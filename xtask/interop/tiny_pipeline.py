"""A tiny but real StableDiffusionPipeline, written with diffusers and transformers themselves.

The weights are random (seeded), the configs as small as the model classes accept, so the whole
fixture is a few hundred kilobytes and builds in a second or two. Every model folder holds both
the full-precision files and the `fp16` variant, the way official repos ship them, plus files
that a selective downloader must leave alone.

torch, diffusers and transformers are imported inside the functions, so collecting the tests
costs nothing until a fixture is built.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

BASE_REPO = "acme/tiny-pipe"
VAE_REPO = "acme/tiny-vae"

# The tokenizer: CLIP's byte-level BPE over the 256 byte symbols, each also in its word-final
# `</w>` form, one merge, and the two special tokens last. Every prompt tokenizes to known ids.
_SPECIALS = ["<|startoftext|>", "<|endoftext|>"]

# Images of HEIGHT x WIDTH pixels: the VAE halves them once (two blocks), giving the UNet its
# sample_size of 8.
HEIGHT = WIDTH = 16
SAMPLE_SIZE = 8


@dataclass
class TinyFixture:
    """Where the parts of the fixture were written."""

    hub_root: Path
    base_dir: Path
    vae_dir: Path
    local_unet_dir: Path


def _bytes_to_unicode():
    """CLIP's reversible map from bytes to printable characters (the GPT-2 table)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def _write_tokenizer_files(folder: Path) -> int:
    """Writes vocab.json and merges.txt for a CLIP BPE tokenizer; returns the vocab size."""
    symbols = _bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + ["hi</w>"] + _SPECIALS
    vocab = {t: i for i, t in enumerate(tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\nh i</w>\n", encoding="utf-8")
    return len(vocab)


def tiny_unet(seed: int):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=SAMPLE_SIZE,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(4, 8),
        norm_num_groups=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
    )


def tiny_vae(seed: int):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        sample_size=HEIGHT,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        block_out_channels=(4, 8),
        norm_num_groups=2,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    )


def tiny_text_encoder(seed: int, vocab_size: int):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            # The special tokens are the last two ids of the vocabulary.
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        )
    )


def _save_both_precisions(model, folder: Path):
    """Saves `model` as fp16 variant files, then as full-precision files, into `folder`.

    The full-precision save goes last so the shared `config.json` describes it (transformers
    records the dtype there).
    """
    import torch
    from diffusers.utils import logging

    # Casting with `to()` makes diffusers warn about modules that should stay in float32; these
    # models have none, so the warning is only noise in the test log.
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        model.to(torch.float16).save_pretrained(folder, variant="fp16", safe_serialization=True)
        model.to(torch.float32).save_pretrained(folder, safe_serialization=True)
    finally:
        logging.set_verbosity(verbosity)


def build(hub_root: Path, local_root: Path) -> TinyFixture:
    """Writes `acme/tiny-pipe` and `acme/tiny-vae` under `hub_root/models/`, and a local unet
    folder under `local_root`. Deterministic: the same bytes on every run."""
    import torch
    from diffusers import DDIMScheduler
    from safetensors.torch import save_file
    from transformers import CLIPTokenizer

    base = hub_root / "models" / BASE_REPO
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)

    vocab_size = _write_tokenizer_files(base / "tokenizer")
    tokenizer = CLIPTokenizer(
        vocab_file=str(base / "tokenizer" / "vocab.json"),
        merges_file=str(base / "tokenizer" / "merges.txt"),
        model_max_length=77,
    )
    tokenizer.save_pretrained(base / "tokenizer")

    unet = tiny_unet(0)
    vae = tiny_vae(1)
    text_encoder = tiny_text_encoder(2, vocab_size)
    _save_both_precisions(unet, base / "unet")
    _save_both_precisions(vae, base / "vae")
    _save_both_precisions(text_encoder, base / "text_encoder")
    DDIMScheduler(
        num_train_timesteps=50, clip_sample=False, set_alpha_to_one=False, steps_offset=1
    ).save_pretrained(base / "scheduler")

    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (base / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n")

    # Distractors. A pickle twin of the text encoder: neither diffusers (it prefers safetensors
    # for the whole pipeline) nor we may fetch it. A weights file in a folder that is no
    # component: diffusers fetches it (its weight filter ignores folder names), we must not.
    torch.save(text_encoder.state_dict(), base / "text_encoder" / "pytorch_model.bin")
    (base / "vae_1_0").mkdir()
    shutil.copyfile(
        base / "vae" / "diffusion_pytorch_model.safetensors",
        base / "vae_1_0" / "diffusion_pytorch_model.safetensors",
    )
    (base / "README.md").write_text("# tiny-pipe\n\nRandom weights, for tests.\n")

    # Another repo with a different VAE, for a `source:` override.
    vae_repo = hub_root / "models" / VAE_REPO
    shutil.rmtree(vae_repo, ignore_errors=True)
    tiny_vae(11).save_pretrained(vae_repo, safe_serialization=True)

    # A local unet with its weights under a name of its own: the puller must rename the lone
    # weights file to what diffusers looks for.
    local_unet = local_root / "my-unet"
    shutil.rmtree(local_unet, ignore_errors=True)
    local_unet.mkdir(parents=True)
    other_unet = tiny_unet(21)
    save_file(other_unet.state_dict(), local_unet / "my-unet.safetensors")
    other_unet.save_config(local_unet)

    return TinyFixture(hub_root=hub_root, base_dir=base, vae_dir=vae_repo, local_unet_dir=local_unet)


def repo_files(folder: Path) -> set:
    """Relative paths (POSIX) of the files under `folder`, following symlinks."""
    out = set()
    for dirpath, _dirs, files in os.walk(folder, followlinks=True):
        for name in files:
            p = Path(dirpath) / name
            if p.is_file():
                out.add(p.relative_to(folder).as_posix())
    return out
