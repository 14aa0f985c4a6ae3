"""Writes the small fixture root the interop checks use (the SD-shaped repo is added by run.sh)."""
import os
import random
import sys

root = sys.argv[1]
rng = random.Random(1)


def write(path, data):
    path = os.path.join(root, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


write("models/org/name/config.json", b'{"hello": "world"}\n')
write("models/org/name/sub dir/file name #1 \u00e9.txt", b"special\n")
write("models/org/name/unet/config.json", b'{"unet": true}\n')
write("models/org/name/unet/diffusion_pytorch_model.safetensors", rng.randbytes(3_000_000))
# Over 10 MiB: LFS by size although the extension is not an LFS one.
write("models/org/name/big.txt", rng.randbytes(11 * 1024 * 1024))
write("models/org/name/.gitattributes", b"*.safetensors filter=lfs\n")
write("models/org/gated/config.json", b'{"gated": 1}\n')
write("models/org/gated/model.safetensors", rng.randbytes(1000))
write("models/org/gated/.gated", b"")
write("datasets/org/data/train.csv", b"a,b\n1,2\n")
write("datasets/org/data/data.parquet", rng.randbytes(5000))
