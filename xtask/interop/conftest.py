"""Shared fixtures of the interop suite.

`cargo xtask interop` sets PIPEFETCH_BIN, HUB_SERVER_BIN and INTEROP_SCRATCH. The fixture repos are
written here, in Python, so the suite checks the Rust side against data it did not produce.
"""

import json
import os
import random
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

PIPEFETCH = os.environ.get("PIPEFETCH_BIN", "pipefetch")
HUB_SERVER = os.environ.get("HUB_SERVER_BIN", "hub-server")
SCRATCH = Path(os.environ.get("INTEROP_SCRATCH", "/tmp/pipefetch-interop"))
TOKEN = "hf_interop_secret_token"


def rand_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def config(**kw) -> bytes:
    return json.dumps(kw, indent=2).encode()


# repo id -> {path: bytes}; `kind` is the repo type folder.
def fixture_repos():
    sd = {
        "model_index.json": config(
            _class_name="StableDiffusionPipeline",
            _diffusers_version="0.30.0",
            unet=["diffusers", "UNet2DConditionModel"],
            vae=["diffusers", "AutoencoderKL"],
            text_encoder=["transformers", "CLIPTextModel"],
            tokenizer=["transformers", "CLIPTokenizer"],
            scheduler=["diffusers", "PNDMScheduler"],
            safety_checker=[None, None],
            feature_extractor=[None, None],
        ),
        "README.md": b"# tiny sd\n",
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "unet/config.json": config(_class_name="UNet2DConditionModel", sample_size=8),
        "unet/diffusion_pytorch_model.safetensors": rand_bytes(1, 300_000),
        "unet/diffusion_pytorch_model.fp16.safetensors": rand_bytes(2, 150_000),
        "vae/config.json": config(_class_name="AutoencoderKL"),
        "vae/diffusion_pytorch_model.safetensors": rand_bytes(3, 120_000),
        "text_encoder/config.json": config(architectures=["CLIPTextModel"]),
        "text_encoder/model.safetensors": rand_bytes(4, 90_000),
        "text_encoder/pytorch_model.bin": rand_bytes(5, 90_000),
        "tokenizer/vocab.json": config(a=1, b=2),
        "tokenizer/merges.txt": b"#version: 0.2\na b\n",
        "tokenizer/tokenizer_config.json": config(model_max_length=77),
        "scheduler/scheduler_config.json": config(_class_name="PNDMScheduler"),
        "docs/file with space #1.txt": b"spaces and a hash\n",
        "docs/deep/nested/\u00e9t\u00e9.txt": "unicode \u00e9\n".encode(),
        # Over 10 MiB and not a weights extension: LFS by size.
        "big/blob.dat": rand_bytes(6, 10 * 1024 * 1024 + 17),
        "v1-5-pruned.safetensors": rand_bytes(7, 200_000),
        "empty.txt": b"",
    }
    gated = {
        "config.json": config(gated=True),
        "model.safetensors": rand_bytes(8, 50_000),
    }
    data = {
        "data/train.csv": b"a,b\n1,2\n",
        "README.md": b"# data\n",
    }
    return [
        ("models", "acme/tiny-sd", sd, False),
        ("models", "acme/gated-model", gated, True),
        ("datasets", "acme/tiny-data", data, False),
    ]


@pytest.fixture(scope="session")
def fixture_root() -> Path:
    root = SCRATCH / "hub-root"
    shutil.rmtree(root, ignore_errors=True)
    for kind, repo_id, files, gated in fixture_repos():
        base = root / kind / repo_id
        for path, data in files.items():
            p = base / path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        if gated:
            (base / ".gated").write_bytes(b"")
    return root


class Hub:
    def __init__(self, proc, url):
        self.proc = proc
        self.url = url

    def control(self, route, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/_control/{route}",
            data=data,
            method="GET" if body is None and route == "log" else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def reset(self):
        self.control("reset", {})

    def requests(self):
        """Requests logged since the last reset, control routes excluded."""
        log = self.control("log")
        entries = log["entries"] if isinstance(log, dict) else log
        return [e for e in entries if "/_control/" not in e["path"]]

    def commit(self, repo_id, kind="models"):
        with urllib.request.urlopen(f"{self.url}/api/{kind}/{repo_id}", timeout=10) as resp:
            return json.loads(resp.read())["sha"]


    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def fault(self, action, *, route=None, path_contains=None, times=1):
        """Queues a fault for the next `times` matching requests (hub-server's /_control/faults)."""
        body = {"action": action, "times": times}
        if route is not None:
            body["route"] = route
        if path_contains is not None:
            body["path_contains"] = path_contains
        self.control("faults", body)


def start_hub(root, *args) -> Hub:
    """A hub-server subprocess over `root` (stop it with `.stop()`)."""
    proc = subprocess.Popen(
        [HUB_SERVER, "--root", str(root), *args], stdout=subprocess.PIPE, text=True
    )
    first = proc.stdout.readline().strip()
    assert first.startswith("listening on http://"), first
    return Hub(proc, first.removeprefix("listening on "))


@pytest.fixture(scope="session")
def hub(fixture_root):
    hub = start_hub(fixture_root, "--token", TOKEN, "--page-size", "4")
    yield hub
    hub.stop()


@pytest.fixture
def endpoint(hub, monkeypatch):
    # huggingface_hub reads HF_ENDPOINT at import time into constants; patch both.
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(c, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        c, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    return hub.url


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    d = tmp_path / "hub-cache"
    d.mkdir()
    return d


def run_pipefetch(*args, hub=None, cache_dir=None, env_extra=None, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    if cache_dir is not None:
        env["HF_HUB_CACHE"] = str(cache_dir)
    env["HF_HOME"] = str(SCRATCH / "hf-home")
    env.update(env_extra or {})
    proc = subprocess.run(
        [PIPEFETCH, *args, "--progress", "none"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"pipefetch {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def source_files(fixture_root: Path, kind: str, repo_id: str):
    base = fixture_root / kind / repo_id
    out = {}
    for p in sorted(base.rglob("*")):
        if p.is_file() and p.name != ".gated":
            out[p.relative_to(base).as_posix()] = p.read_bytes()
    return out


class S3Mirror:
    """The Garage server `cargo xtask interop` started: the AWS variables that reach it with its
    key, and a mirror URL under its bucket."""

    def __init__(self, aws_env, bucket):
        self.aws_env = aws_env
        self.bucket = bucket

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"


# What `cargo xtask interop` passes for the S3 store it started: INTEROP_MIRROR_<AWS variable>
# and INTEROP_MIRROR_BUCKET. Kept under names of their own so that no other test's pipefetch
# runs with S3 credentials.
MIRROR_VARS = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@pytest.fixture(scope="session")
def s3_mirror() -> S3Mirror:
    missing = [v for v in MIRROR_VARS + ("BUCKET",) if not os.environ.get(f"INTEROP_MIRROR_{v}")]
    if missing:
        reason = os.environ.get("INTEROP_SKIP_MIRROR") or (
            "no S3 store: run the suite with `cargo xtask interop`, which starts Garage "
            f"(INTEROP_MIRROR_{missing[0]} is not set)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; under CI the mirror's interop tests must run")
        pytest.skip(reason)
    return S3Mirror(
        {v: os.environ[f"INTEROP_MIRROR_{v}"] for v in MIRROR_VARS},
        os.environ["INTEROP_MIRROR_BUCKET"],
    )
