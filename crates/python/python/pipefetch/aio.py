"""The functions of :mod:`pipefetch` as coroutines, for servers built on asyncio::

    import pipefetch.aio

    path = await pipefetch.aio.hf_hub_download("org/name", "config.json")
    folder = await pipefetch.aio.download_diffusers_pipeline("pipe.yaml", progress=on_event)

The work runs on pipefetch's own threads, not in an executor: awaiting costs the event loop one
wake-up per event batch, and no thread of the loop's pool is held. ``progress`` callables run on
the event loop and may be coroutine functions (they are awaited). Cancelling the task
(``task.cancel()``, ``asyncio.wait_for`` timing out) stops the download; what was written is
kept and the next call resumes it. Arguments, results and exceptions are those of the blocking
functions.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Awaitable, Callable, Dict, List, Optional, Union

from . import _api, _native
from ._api import PipelinePlan, ProgressEvent, Spec, StrPath, TokenArg
from ._cache import HFCacheInfo
from ._cache import scan_cache_dir as _scan_cache_dir

__all__ = [
    "hf_hub_download",
    "snapshot_download",
    "scan_cache_dir",
    "download_diffusers_pipeline",
    "is_available_locally",
    "plan",
    "AsyncProgressCallback",
]

#: A progress callable for the coroutines: a plain function or a coroutine function.
AsyncProgressCallback = Callable[[ProgressEvent], Union[object, Awaitable[object]]]

# How often coalesced progress events are collected (the native side wakes the loop at once for
# every other event and at the end).
_TICK = 0.1


async def _drive(job: "_native.Job", progress: Optional[AsyncProgressCallback]) -> Any:
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()

    def wake() -> None:
        # Called from a pipefetch thread.
        try:
            loop.call_soon_threadsafe(ready.set)
        except RuntimeError:
            pass  # the loop is closed; nobody is waiting any more

    job.set_waker(wake)
    try:
        while True:
            try:
                await asyncio.wait_for(ready.wait(), _TICK)
            except asyncio.TimeoutError:
                pass
            ready.clear()
            # `done` first: every event of a finished job is queued before it says so.
            finished = job.done()
            events: List[ProgressEvent] = job.take_events()
            if progress is not None:
                for event in events:
                    returned = progress(event)
                    if inspect.isawaitable(returned):
                        await returned
            if finished:
                return job.result()
    except BaseException:
        job.cancel()
        raise


async def hf_hub_download(
    repo_id: str,
    filename: str,
    *,
    subfolder: Optional[str] = None,
    repo_type: Optional[str] = None,
    revision: Optional[str] = None,
    library_name: Optional[str] = None,
    library_version: Optional[str] = None,
    cache_dir: Optional[StrPath] = None,
    local_dir: Optional[StrPath] = None,
    user_agent: Union[Dict[str, Any], str, None] = None,
    force_download: bool = False,
    etag_timeout: float = 10,
    token: TokenArg = None,
    local_files_only: bool = False,
    headers: Optional[Dict[str, str]] = None,
    endpoint: Optional[str] = None,
    tqdm_class: Any = None,
    dry_run: bool = False,
    progress: Optional[AsyncProgressCallback] = None,
) -> str:
    """:func:`pipefetch.hf_hub_download`, awaitable."""
    job = _api.start_hf_hub_download(
        repo_id,
        filename,
        subfolder=subfolder,
        repo_type=repo_type,
        revision=revision,
        cache_dir=cache_dir,
        local_dir=local_dir,
        force_download=force_download,
        token=token,
        local_files_only=local_files_only,
        headers=headers,
        endpoint=endpoint,
        dry_run=dry_run,
    )
    result: str = await _drive(job, _api.tqdm_callback(tqdm_class, progress))
    return result


async def snapshot_download(
    repo_id: str,
    *,
    repo_type: Optional[str] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[StrPath] = None,
    local_dir: Optional[StrPath] = None,
    library_name: Optional[str] = None,
    library_version: Optional[str] = None,
    user_agent: Union[Dict[str, Any], str, None] = None,
    etag_timeout: float = 10,
    force_download: bool = False,
    token: TokenArg = None,
    local_files_only: bool = False,
    allow_patterns: Union[List[str], str, None] = None,
    ignore_patterns: Union[List[str], str, None] = None,
    max_workers: int = 8,
    tqdm_class: Any = None,
    headers: Optional[Dict[str, str]] = None,
    endpoint: Optional[str] = None,
    dry_run: bool = False,
    progress: Optional[AsyncProgressCallback] = None,
) -> str:
    """:func:`pipefetch.snapshot_download`, awaitable."""
    job = _api.start_snapshot_download(
        repo_id,
        repo_type=repo_type,
        revision=revision,
        cache_dir=cache_dir,
        local_dir=local_dir,
        force_download=force_download,
        token=token,
        local_files_only=local_files_only,
        allow_patterns=allow_patterns,
        ignore_patterns=ignore_patterns,
        max_workers=max_workers,
        headers=headers,
        endpoint=endpoint,
        dry_run=dry_run,
    )
    result: str = await _drive(job, _api.tqdm_callback(tqdm_class, progress))
    return result


async def scan_cache_dir(cache_dir: Optional[StrPath] = None) -> HFCacheInfo:
    """:func:`pipefetch.scan_cache_dir`, run on a worker thread (it only reads directories)."""
    return await asyncio.get_running_loop().run_in_executor(None, _scan_cache_dir, cache_dir)


async def download_diffusers_pipeline(
    spec: Spec,
    *,
    progress: Optional[AsyncProgressCallback] = None,
    out: Optional[StrPath] = None,
    locked: bool = False,
    spec_revision: str = "main",
    check_disk: bool = True,
    cache_dir: Optional[StrPath] = None,
    token: TokenArg = None,
    endpoint: Optional[str] = None,
    max_workers: int = 8,
) -> str:
    """:func:`pipefetch.download_diffusers_pipeline`, awaitable."""
    job = _api.start_download_diffusers_pipeline(
        spec,
        out=out,
        locked=locked,
        spec_revision=spec_revision,
        check_disk=check_disk,
        cache_dir=cache_dir,
        token=token,
        endpoint=endpoint,
        max_workers=max_workers,
    )
    result: str = await _drive(job, progress)
    return result


async def is_available_locally(
    spec: Spec,
    *,
    verify: bool = False,
    spec_revision: str = "main",
    cache_dir: Optional[StrPath] = None,
) -> bool:
    """:func:`pipefetch.is_available_locally`, awaitable."""
    job = _api.start_is_available_locally(
        spec, spec_revision=spec_revision, verify=verify, cache_dir=cache_dir
    )
    availability: Dict[str, Any] = await _drive(job, None)
    return bool(availability["available"])


async def plan(
    spec: Spec,
    *,
    spec_revision: str = "main",
    local_files_only: bool = False,
    cache_dir: Optional[StrPath] = None,
    token: TokenArg = None,
    endpoint: Optional[str] = None,
) -> PipelinePlan:
    """:func:`pipefetch.plan`, awaitable."""
    job = _api.start_plan(
        spec,
        spec_revision=spec_revision,
        local_files_only=local_files_only,
        cache_dir=cache_dir,
        token=token,
        endpoint=endpoint,
    )
    return _api.plan_from_native(await _drive(job, None))
