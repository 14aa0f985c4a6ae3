"""A diffusers-like selective snapshot and a full snapshot of the SD-shaped fixture, compared by sha256."""
import os, sys, shutil, hashlib
from huggingface_hub import snapshot_download, hf_hub_download
import huggingface_hub as hh
print("huggingface_hub", hh.__version__)
cache = os.environ["HF_HUB_CACHE"]
shutil.rmtree(cache, ignore_errors=True)
ROOT = os.path.join(os.environ["HUB_ROOT"], "models/org/sd")
def h(p): return hashlib.sha256(open(p, "rb").read()).hexdigest()
# diffusers-like selection: fp16 variant safetensors + configs, no root checkpoint, no .bin
allow = ["model_index.json", "*/config.json", "*/*.fp16.safetensors", "tokenizer/*", "scheduler/*", "feature_extractor/*"]
snap = snapshot_download("org/sd", allow_patterns=allow, max_workers=8)
got = sorted(os.path.relpath(os.path.join(d, f), snap) for d, _, fs in os.walk(snap) for f in fs)
print(len(got), "files")
bad = [f for f in got if h(os.path.join(snap, f)) != h(os.path.join(ROOT, f))]
expected = ['feature_extractor/preprocessor_config.json', 'model_index.json', 'safety_checker/config.json', 'safety_checker/model.fp16.safetensors', 'scheduler/scheduler_config.json', 'text_encoder/config.json', 'text_encoder/model.fp16.safetensors', 'tokenizer/merges.txt', 'tokenizer/special_tokens_map.json', 'tokenizer/tokenizer_config.json', 'tokenizer/vocab.json', 'unet/config.json', 'unet/diffusion_pytorch_model.fp16.safetensors', 'vae/config.json', 'vae/diffusion_pytorch_model.fp16.safetensors']
ok = got == expected and not bad
print("PASS sd selection" if ok else f"FAIL {got} {bad}")
full = snapshot_download("org/sd")
n = sum(len(fs) for _, _, fs in os.walk(full))
ok2 = n == 24
print("PASS full sd snapshot" if ok2 else f"FAIL full {n}")
sys.exit(0 if ok and ok2 else 1)
