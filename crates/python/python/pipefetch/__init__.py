"""pipefetch: Hugging Face downloads into the standard HF cache, verified and resumable.

The functions huggingface_hub users call today, with the same arguments, defaults, return values
and cache layout (``hf_hub_download``, ``snapshot_download``, ``scan_cache_dir``,
``repo_folder_name``), and the diffusers-pipeline functions (``download_diffusers_pipeline``,
``is_available_locally``, ``plan``) for pipeline specs::

    import pipefetch

    config = pipefetch.hf_hub_download("stabilityai/sdxl-turbo", "unet/config.json")
    folder = pipefetch.download_diffusers_pipeline(
        {"repo_id": "stabilityai/sdxl-turbo", "variant": "fp16"},
        progress=pipefetch.progress.TqdmProgress(),
    )
    # DiffusionPipeline.from_pretrained(folder)

Every file is checked against its hash before it gets its final name; an interrupted download
(Ctrl-C, a lost connection) resumes from the bytes on disk on the next call. While bytes move the
GIL is released: other threads run, and several threads may download at once. ``progress=``
callables receive each event as a dict (:mod:`pipefetch.progress`), on the calling thread; an
exception raised by the callable stops the download and propagates. ``pipefetch.aio`` has the same
functions as coroutines.

Settings come from the same environment variables as huggingface_hub (``HF_ENDPOINT``,
``HF_TOKEN``, ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ...), read at each call.
Errors are :class:`PipefetchError` subclasses named like huggingface_hub's (:mod:`pipefetch.errors`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from . import _api, _native, errors, progress
from ._api import PipelinePlan, PlannedFile, ProgressCallback, ProgressEvent, Spec, StrPath, TokenArg
from ._cache import (
    CachedFileInfo,
    CachedIncompleteFileInfo,
    CachedRepoInfo,
    CachedRevisionInfo,
    DeleteCacheStrategy,
    HFCacheInfo,
    scan_cache_dir,
)
from .errors import (
    CacheError,
    CacheNotFound,
    CorruptedCacheException,
    Diagnostic,
    DisabledRepoError,
    DownloadError,
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    IntegrityError,
    LocalEntryNotFoundError,
    NotEnoughSpaceError,
    OfflineModeIsEnabled,
    PipefetchError,
    PlanError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    SpecError,
)

__version__: str = _native.__version__

__all__ = [
    "hf_hub_download",
    "snapshot_download",
    "scan_cache_dir",
    "repo_folder_name",
    "download_diffusers_pipeline",
    "is_available_locally",
    "plan",
    "HFCacheInfo",
    "CachedRepoInfo",
    "CachedRevisionInfo",
    "CachedFileInfo",
    "CachedIncompleteFileInfo",
    "DeleteCacheStrategy",
    "PipelinePlan",
    "PlannedFile",
    "ProgressCallback",
    "ProgressEvent",
    "Spec",
    "PipefetchError",
    "HfHubHTTPError",
    "RepositoryNotFoundError",
    "GatedRepoError",
    "DisabledRepoError",
    "RevisionNotFoundError",
    "EntryNotFoundError",
    "RemoteEntryNotFoundError",
    "LocalEntryNotFoundError",
    "OfflineModeIsEnabled",
    "HFValidationError",
    "CacheNotFound",
    "CorruptedCacheException",
    "CacheError",
    "DownloadError",
    "IntegrityError",
    "NotEnoughSpaceError",
    "PlanError",
    "SpecError",
    "Diagnostic",
    "errors",
    "progress",
    "__version__",
]


def hf_hub_download(
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
    progress: Optional[ProgressCallback] = None,
) -> str:
    """Downloads one file of a Hub repo into the cache and returns its path in the snapshot
    folder, like ``huggingface_hub.hf_hub_download``.

    A file cached at a pinned commit needs no request. With ``local_files_only=True`` (or
    ``HF_HUB_OFFLINE=1``) the cache alone answers, or :class:`LocalEntryNotFoundError` is raised.

    Args:
        repo_id: ``ORG/NAME``.
        filename: The file's path in the repo (below ``subfolder`` if given).
        subfolder: A folder of the repo the file is in.
        repo_type: ``"model"`` (default), ``"dataset"``, ``"space"``.
        revision: A branch, tag or commit (default ``main``).
        cache_dir: The cache folder (default ``HF_HUB_CACHE``).
        force_download: Download again even when cached.
        token: ``None``/``True``: the configured token; ``False``: none; or the token.
        local_files_only: Never use the network.
        endpoint: The Hub (default ``HF_ENDPOINT``).
        tqdm_class: A tqdm class to show a byte bar with.
        progress: Called with each progress event (a dict), on this thread.

    ``library_name``, ``library_version``, ``user_agent`` and ``etag_timeout`` are accepted for
    compatibility and not used; ``local_dir``, ``headers`` and ``dry_run`` are not supported and
    raise :class:`HFValidationError` when given.

    Raises:
        RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError, RemoteEntryNotFoundError,
        LocalEntryNotFoundError, DownloadError, IntegrityError, NotEnoughSpaceError (all
        :class:`PipefetchError`); ``KeyboardInterrupt`` on Ctrl-C, after which a new call resumes.
    """
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
    result: str = job.wait(_api.tqdm_callback(tqdm_class, progress))
    return result


def snapshot_download(
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
    progress: Optional[ProgressCallback] = None,
) -> str:
    """Downloads a repo, or the files matching ``allow_patterns`` and not ``ignore_patterns``,
    and returns the snapshot folder, like ``huggingface_hub.snapshot_download``.

    One request resolves the revision, one listing (cached per commit) gives every file's size
    and hash: there is no request per file for what is cached. ``max_workers`` is the number of
    connections shared by all files (big files are fetched in parallel ranges).

    Args:
        repo_id: ``ORG/NAME``.
        repo_type: ``"model"`` (default), ``"dataset"``, ``"space"``.
        revision: A branch, tag or commit (default ``main``).
        cache_dir: The cache folder (default ``HF_HUB_CACHE``).
        force_download: Download again even when cached.
        token: ``None``/``True``: the configured token; ``False``: none; or the token.
        local_files_only: Never use the network.
        allow_patterns: fnmatch patterns (``*`` crosses ``/``) of files to include.
        ignore_patterns: fnmatch patterns of files to leave out.
        max_workers: Concurrent connections across all files.
        endpoint: The Hub (default ``HF_ENDPOINT``).
        tqdm_class: A tqdm class to show a byte bar with.
        progress: Called with each progress event (a dict), on this thread.

    ``library_name``, ``library_version``, ``user_agent`` and ``etag_timeout`` are accepted for
    compatibility and not used; ``local_dir``, ``headers`` and ``dry_run`` are not supported and
    raise :class:`HFValidationError` when given.
    """
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
    result: str = job.wait(_api.tqdm_callback(tqdm_class, progress))
    return result


def repo_folder_name(*, repo_id: str, repo_type: str) -> str:
    """The cache folder name of a repo: ``repo_folder_name(repo_id="org/name",
    repo_type="model")`` is ``"models--org--name"``, as in huggingface_hub."""
    name: str = _native.repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    return name


def download_diffusers_pipeline(
    spec: Spec,
    *,
    progress: Optional[ProgressCallback] = None,
    out: Optional[StrPath] = None,
    locked: bool = False,
    spec_revision: str = "main",
    check_disk: bool = True,
    cache_dir: Optional[StrPath] = None,
    token: TokenArg = None,
    endpoint: Optional[str] = None,
    max_workers: int = 8,
) -> str:
    """Downloads what a diffusers pipeline needs, and only that, and returns a folder that
    ``DiffusionPipeline.from_pretrained(folder)`` loads as is.

    ``spec`` is a pipeline spec (format: ``docs/spec.md`` in the repository): a YAML file, a spec
    hosted in a Hub repo (``"ORG/NAME/path/spec.yaml"``, read at ``spec_revision``), or the same
    structure as a dict::

        {"repo_id": "black-forest-labs/FLUX.1-schnell",
         "components": {"transformer": {"hf_repo": "cozy-creator/FLUX.1-schnell-8bit/transformer"}}}

    Files land in the HF cache; the folder (default ``$HF_HOME/pipelines/<name>``, or ``out``)
    holds links to them under their canonical names. Only the missing bytes are downloaded, and
    checked against the free disk space first (``check_disk=False`` skips that).

    Raises:
        SpecError: the spec is invalid; ``.diagnostics`` has every problem with line and column.
        PlanError: the pipeline cannot be planned (a missing variant, a component without weights).
        Any other :class:`PipefetchError` of a download; ``KeyboardInterrupt`` on Ctrl-C.

    ``locked=True`` pulls exactly the files of the spec's lockfile (``pipefetch lock SPEC`` writes
    it beside the spec: ``flux.yaml`` → ``flux.lock``; see ``docs/lock.md``): nothing is resolved,
    a warm pull makes no request, and a spec edited since it was locked raises
    :class:`PipefetchError`.
    """
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
    result: str = job.wait(progress)
    return result


def is_available_locally(
    spec: Spec,
    *,
    verify: bool = False,
    spec_revision: str = "main",
    cache_dir: Optional[StrPath] = None,
) -> bool:
    """Whether every file the pipeline needs is in the cache, complete, from the disk alone
    (never a request). With ``verify=True`` each file is hashed again, not only measured.

    Raises :class:`SpecError` for an invalid spec.
    """
    job = _api.start_is_available_locally(
        spec, spec_revision=spec_revision, verify=verify, cache_dir=cache_dir
    )
    availability: Dict[str, Any] = job.wait(None)
    return bool(availability["available"])


def plan(
    spec: Spec,
    *,
    spec_revision: str = "main",
    local_files_only: bool = False,
    cache_dir: Optional[StrPath] = None,
    token: TokenArg = None,
    endpoint: Optional[str] = None,
) -> PipelinePlan:
    """Every file the pipeline needs: its target path, source, size and state (cached, partial,
    missing), with the total and missing bytes, like ``pipefetch plan``. Downloads nothing but
    the small metadata files it reads (``model_index.json``, indexes)."""
    job = _api.start_plan(
        spec,
        spec_revision=spec_revision,
        local_files_only=local_files_only,
        cache_dir=cache_dir,
        token=token,
        endpoint=endpoint,
    )
    return _api.plan_from_native(job.wait(None))
