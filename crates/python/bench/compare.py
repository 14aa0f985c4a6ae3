"""Measures the pipefetch Python package against the pipefetch CLI (the same pull: the call's
overhead) and against huggingface_hub's snapshot_download in the same process.

    python crates/python/bench/compare.py --endpoint URL --repo ORG/NAME --cli target/release/pipefetch

Needs a running hub-server serving ORG/NAME, the `pipefetch` package (a release wheel: `pip
install ./crates/python`) and huggingface_hub in the running interpreter. Every download goes to a
fresh cache under --work (default /tmp/pipefetch-compare); the page cache is flushed with `sync`
before each timed run. Prints medians of --runs runs (default 3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple


def run(cmd: List[str], env: Dict[str, str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


def void(_: object) -> None:
    pass


def timed(runs: int, tools: Dict[str, Tuple[Callable[[int], None], Callable[[int], None]]]) -> Dict[str, List[float]]:
    """Runs every tool once per round, round after round, so that a machine whose load changes
    during the run affects them alike."""
    times: Dict[str, List[float]] = {name: [] for name in tools}
    for i in range(runs):
        for name, (prepare, work) in tools.items():
            prepare(i)
            subprocess.run(["sync"], check=False)
            start = time.perf_counter()
            work(i)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--work", default="/tmp/pipefetch-compare")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()

    os.environ["HF_ENDPOINT"] = args.endpoint
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.pop("HF_TOKEN", None)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)

    t0 = time.perf_counter()
    import pipefetch

    import_pipefetch = time.perf_counter() - t0
    t0 = time.perf_counter()
    import huggingface_hub

    import_hf = time.perf_counter() - t0

    def cache(name: str, i: int) -> Path:
        return work / f"{name}-{i}"

    def fresh(name: str) -> Callable[[int], None]:
        return lambda i: shutil.rmtree(cache(name, i), ignore_errors=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_CACHE")}
    code = "import sys, pipefetch; pipefetch.snapshot_download(sys.argv[1], cache_dir=sys.argv[2])"
    results = timed(
        args.runs,
        {
            "pipefetch CLI `snapshot` (process)": (
                fresh("cli"),
                lambda i: run(
                    [args.cli, "snapshot", args.repo, "--progress", "none", "--cache-dir", str(cache("cli", i))],
                    env,
                ),
            ),
            "pipefetch Python (process: start, import, call)": (
                fresh("pyproc"),
                lambda i: run([sys.executable, "-c", code, args.repo, str(cache("pyproc", i))], env),
            ),
            "pipefetch.snapshot_download (in process)": (
                fresh("py"),
                lambda i: void(pipefetch.snapshot_download(args.repo, cache_dir=cache("py", i))),
            ),
            "huggingface_hub.snapshot_download (in process)": (
                fresh("hf"),
                lambda i: void(huggingface_hub.snapshot_download(args.repo, cache_dir=cache("hf", i))),
            ),
        },
    )
    size = sum(p.stat().st_size for p in cache("py", 0).rglob("*") if p.is_file() and not p.is_symlink())

    # Per-call cost on a warm cache at a pinned commit (no request at all for pipefetch).
    snapshot = Path(pipefetch.snapshot_download(args.repo, cache_dir=cache("py", 0)))
    commit = snapshot.name
    rel = sorted(p for p in snapshot.rglob("*") if p.is_file())[0].relative_to(snapshot).as_posix()
    per_call = {}
    for name, fn in (
        ("pipefetch.hf_hub_download", pipefetch.hf_hub_download),
        ("huggingface_hub.hf_hub_download", huggingface_hub.hf_hub_download),
    ):
        start = time.perf_counter()
        for _ in range(args.calls):
            fn(args.repo, rel, revision=commit, cache_dir=cache("py", 0))
        per_call[name] = (time.perf_counter() - start) / args.calls

    print(f"repo {args.repo}: {size / 1e6:.1f} MB; medians of {args.runs} runs, fresh cache each")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"  {name:52} {med:7.3f} s  {size / 1e6 / med:8.1f} MB/s   runs: {', '.join(f'{t:.3f}' for t in times)}")
    print(f"  import pipefetch {import_pipefetch * 1e3:.1f} ms; import huggingface_hub {import_hf * 1e3:.1f} ms")
    for name, t in per_call.items():
        print(f"  {name} of a cached file at a pinned commit: {t * 1e6:.0f} µs per call")


if __name__ == "__main__":
    main()
