"""Checks the real huggingface_hub client against hub-server: info, tree, paths-info, downloads, errors, gating, snapshots."""
import os, sys, json, shutil, hashlib, urllib.request, filecmp, traceback
EP = os.environ["HF_ENDPOINT"]
ROOT = os.environ["HUB_ROOT"]
import huggingface_hub as hh
from huggingface_hub import hf_hub_download, snapshot_download, list_repo_tree, model_info, HfApi, dataset_info
from huggingface_hub import errors
print("huggingface_hub", hh.__version__)
cache = os.environ["HF_HUB_CACHE"]
shutil.rmtree(cache, ignore_errors=True)
ok = True
def check(name, cond):
    global ok
    print(("PASS " if cond else "FAIL ") + name)
    ok &= bool(cond)
def same(path, repo_rel, repo="models/org/name"):
    return open(path, "rb").read() == open(os.path.join(ROOT, repo, repo_rel), "rb").read()

# model_info
info = model_info("org/name", files_metadata=True)
check("model_info sha", len(info.sha) == 40)
check("model_info siblings", sorted(s.rfilename for s in info.siblings) == sorted([".gitattributes", "big.txt", "config.json", "sub dir/file name #1 é.txt", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]))
lfs = [s for s in info.siblings if s.rfilename.endswith(".safetensors")][0]
check("model_info lfs", lfs.lfs is not None and lfs.lfs.size == 3_000_000 and lfs.lfs.sha256 == hashlib.sha256(open(ROOT + "/models/org/name/unet/diffusion_pytorch_model.safetensors", "rb").read()).hexdigest())

# list_repo_tree (page size 2 -> pagination)
tree = list(list_repo_tree("org/name", recursive=True))
check("tree recursive", sorted(e.path for e in tree) == sorted([".gitattributes", "big.txt", "config.json", "sub dir", "sub dir/file name #1 é.txt", "unet", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]))
tree = list(list_repo_tree("org/name", path_in_repo="unet", expand=True))
check("tree subfolder expand", [e.path for e in tree] == ["unet/config.json", "unet/diffusion_pytorch_model.safetensors"] and tree[0].last_commit is not None)
pi = HfApi().get_paths_info("org/name", ["config.json", "unet", "nope"])
check("paths-info", [e.path for e in pi] == ["config.json", "unet"])

# single files
for rel in ["config.json", "sub dir/file name #1 é.txt", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "big.txt"]:
    p = hf_hub_download("org/name", rel)
    check(f"hf_hub_download {rel!r}", same(p, rel) and os.path.islink(p))
p = hf_hub_download("org/name", "config.json", subfolder="unet")
check("subfolder=", same(p, "unet/config.json"))

# missing file -> EntryNotFound + .no_exist
try:
    hf_hub_download("org/name", "missing.txt")
    check("missing raises", False)
except errors.EntryNotFoundError as e:
    check(f"missing raises {type(e).__name__}", True)
commit = open(f"{cache}/models--org--name/refs/main").read()
check(".no_exist written", os.path.exists(f"{cache}/models--org--name/.no_exist/{commit}/missing.txt"))

# revision not found
try:
    hf_hub_download("org/name", "config.json", revision="v2")
    check("bad revision raises", False)
except errors.RevisionNotFoundError:
    check("bad revision raises RevisionNotFoundError", True)

# repo not found
try:
    hf_hub_download("org/missing", "config.json", token=False)
    check("missing repo raises", False)
except errors.RepositoryNotFoundError:
    check("missing repo raises RepositoryNotFoundError", True)

# gated without / with wrong / with token
for tok, label in [(False, "no token"), ("hf_wrong", "wrong token")]:
    try:
        hf_hub_download("org/gated", "config.json", token=tok)
        check(f"gated {label} raises", False)
    except errors.GatedRepoError as e:
        check(f"gated {label} raises GatedRepoError", True)
p = hf_hub_download("org/gated", "model.safetensors", token="hf_secret")
check("gated with token", same(p, "model.safetensors", "models/org/gated"))
p = snapshot_download("org/gated", token="hf_secret")
check("gated snapshot with token", sorted(os.listdir(p)) == ["config.json", "model.safetensors"])

# snapshot_download of the whole repo, fresh cache
shutil.rmtree(cache)
snap = snapshot_download("org/name")
files = sorted(os.path.relpath(os.path.join(d, f), snap) for d, _, fs in os.walk(snap) for f in fs)
check("snapshot files", files == sorted([".gitattributes", "big.txt", "config.json", "sub dir/file name #1 é.txt", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]))
check("snapshot bytes", all(same(os.path.join(snap, f), f) for f in files))
snap2 = snapshot_download("org/name", allow_patterns=["unet/*"], revision=os.path.basename(snap))
check("snapshot by commit", snap2 == snap)

# dataset
p = hf_hub_download("org/data", "data.parquet", repo_type="dataset")
check("dataset lfs", same(p, "data.parquet", "datasets/org/data"))
snap = snapshot_download("org/data", repo_type="dataset")
check("dataset snapshot", sorted(os.listdir(snap)) == ["data.parquet", "train.csv"])
check("dataset_info", len(dataset_info("org/data").sha) == 40)

# offline afterwards
from huggingface_hub import scan_cache_dir
check("scan_cache_dir clean", not scan_cache_dir().warnings)
print("ALL OK" if ok else "SOME FAILED")
sys.exit(0 if ok else 1)
