"""Informational: how the client reacts to injected CDN faults (retry/resume policies differ between client versions)."""
import os, sys, json, shutil, urllib.request
EP = os.environ["HF_ENDPOINT"]
from huggingface_hub import hf_hub_download
cache = os.environ["HF_HUB_CACHE"]
def ctl(path, body=None):
    req = urllib.request.Request(EP + path, data=json.dumps(body).encode() if body is not None else None, method="POST" if body is not None or path.endswith("reset") else "GET")
    return json.load(urllib.request.urlopen(req))
ok = True
for fault in [
    {"route": "cdn", "action": {"kind": "cut_after", "bytes": 1000000}},
    {"route": "cdn", "action": {"kind": "rate_limit", "reset": 0}},
    {"route": "cdn", "action": {"kind": "status", "status": 503}, "method": "GET"},
    {"route": "cdn", "action": {"kind": "ignore_range"}, "times": 1},
]:
    shutil.rmtree(cache, ignore_errors=True)
    ctl("/_control/reset", {})
    extra = [{"route": "cdn", "action": {"kind": "cut_after", "bytes": 500000}}] if fault["action"]["kind"] == "ignore_range" else []
    ctl("/_control/faults", extra + [fault])
    try:
        p = hf_hub_download("org/name", "unet/diffusion_pytorch_model.safetensors")
        good = open(p, "rb").read() == open(os.path.join(os.environ["HUB_ROOT"], "models/org/name/unet/diffusion_pytorch_model.safetensors"), "rb").read()
    except Exception as e:
        good = False
        print("  raised", type(e).__name__, e)
    log = ctl("/_control/log")["entries"]
    cdn = [(e["status"], e["range"], e["fault"]) for e in log if e["route"] == "cdn"]
    print("PASS" if good else "FAIL", fault["action"]["kind"], cdn)
    ok &= good
sys.exit(0 if ok else 1)
