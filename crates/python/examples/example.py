"""A small program using pipefetch as a server would: blocking and asyncio calls, a progress
relay, the cache report, and the exceptions. `cargo xtask interop` type-checks it with
`mypy --strict` against the installed package's stubs (it is not run there: it would need the Hub).

    python crates/python/examples/example.py stabilityai/sdxl-turbo
"""

from __future__ import annotations

import asyncio
import sys
from typing import Dict, List

import pipefetch
import pipefetch.aio
from pipefetch import PipelinePlan, ProgressEvent
from pipefetch.progress import TqdmProgress


def relay(events: List[ProgressEvent]) -> pipefetch.ProgressCallback:
    """Keeps the events a client would be sent (started / progress / completed / failed)."""

    def on_event(event: ProgressEvent) -> None:
        if event["event"] in ("file_started", "progress", "file_done", "file_failed", "done"):
            events.append(event)

    return on_event


def pull(repo_id: str) -> str:
    spec: Dict[str, object] = {"repo_id": repo_id, "variant": "fp16"}
    plan: PipelinePlan = pipefetch.plan(spec)
    print(f"{plan.name}: {len(plan.files)} files, {plan.missing_bytes} bytes to download")
    for f in plan.files:
        print(f"  {f.target:60} {f.size or 0:>12} {f.state:8} {f.source}")
    if pipefetch.is_available_locally(spec):
        print("already here")
    try:
        return pipefetch.download_diffusers_pipeline(spec, progress=TqdmProgress(desc=repo_id))
    except pipefetch.SpecError as e:
        for d in e.diagnostics:
            print(f"{d.file}:{d.line}:{d.column}: {d.message}", file=sys.stderr)
        raise
    except pipefetch.GatedRepoError as e:
        print(f"gated: {e.hint}", file=sys.stderr)
        raise


async def files_concurrently(repo_id: str, names: List[str]) -> List[str]:
    events: List[ProgressEvent] = []
    paths = await asyncio.gather(
        *(pipefetch.aio.hf_hub_download(repo_id, n, progress=relay(events)) for n in names)
    )
    return list(paths)


def report() -> None:
    info = pipefetch.scan_cache_dir()
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        revisions = sorted(r.commit_hash[:8] for r in repo.revisions)
        print(f"{repo.cache_id:50} {repo.size_on_disk_str:>8} {', '.join(revisions)}")
    old = [r.commit_hash for repo in info.repos for r in repo.revisions if not r.refs]
    strategy = info.delete_revisions(*old)
    print(f"detached revisions: {strategy.expected_freed_size_str} to free")


def main() -> None:
    repo_id = sys.argv[1] if len(sys.argv) > 1 else "stabilityai/sdxl-turbo"
    try:
        config = pipefetch.hf_hub_download(repo_id, "model_index.json")
    except pipefetch.LocalEntryNotFoundError as e:
        print(f"offline and not cached: {e}", file=sys.stderr)
        return
    except pipefetch.RepositoryNotFoundError as e:
        print(f"{e}\n{e.hint}", file=sys.stderr)
        return
    print(config)
    print(pipefetch.snapshot_download(repo_id, allow_patterns=["*.json"], max_workers=4))
    print(asyncio.run(files_concurrently(repo_id, ["unet/config.json", "vae/config.json"])))
    print(pull(repo_id))
    report()


if __name__ == "__main__":
    main()
