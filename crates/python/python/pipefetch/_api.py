"""What the blocking functions (``pipefetch``) and the awaitable ones (``pipefetch.aio``) share:
argument checks and normalisation, and the job each call starts in the native module."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import _native
from .errors import HFValidationError

#: A progress event: a dict with the fields of the JSON-lines schema (see :mod:`pipefetch.progress`).
ProgressEvent = Dict[str, Any]
#: A callable receiving each progress event.
ProgressCallback = Callable[[ProgressEvent], object]
#: A path given as a string or a path-like object.
StrPath = Union[str, "os.PathLike[str]"]
#: A pipeline spec: a YAML file, ``ORG/NAME/path.yaml`` in a Hub repo, or the same structure as a dict.
Spec = Union[StrPath, Mapping[str, Any]]
#: ``token=``: ``None``/``True`` for the configured token, ``False`` for none, or the token itself.
TokenArg = Union[bool, str, None]


@dataclass(frozen=True)
class PlannedFile:
    """One file of a :class:`PipelinePlan`."""

    #: Its path in the assembled folder, e.g. ``unet/diffusion_pytorch_model.safetensors``.
    target: str
    #: The component it belongs to (``None`` for files at the root).
    component: Optional[str]
    #: Where it comes from, in one line (``org/name/path@commit``, a URL, a local path).
    source: str
    #: Where it comes from, in detail (``kind``: ``hub``, ``url`` or ``local``, and its fields).
    origin: Dict[str, Any]
    #: Its size in bytes, when known before downloading.
    size: Optional[int]
    #: ``sha256:<hex>`` or ``git-sha1:<hex>``, when known.
    digest: Optional[str]
    #: ``"cached"``, ``"partial"`` (an interrupted download) or ``"missing"``.
    state: str
    #: Bytes already on disk.
    bytes_on_disk: int


@dataclass(frozen=True)
class PipelinePlan:
    """Every file a pipeline needs, where from, and what is here already (:func:`pipefetch.plan`)."""

    #: The pipeline's name (its folder under ``$HF_HOME/pipelines``).
    name: str
    files: Tuple[PlannedFile, ...]
    #: Bytes of all files of known size.
    total_bytes: int
    #: Bytes still to download (known sizes).
    missing_bytes: int
    #: Files whose size is unknown until downloaded (URLs not fetched yet).
    unknown_sizes: int
    #: Whether the disk has room for the missing bytes.
    disk_ok: bool
    #: The ``model_index.json`` the folder gets.
    model_index: Dict[str, Any]


def plan_from_native(raw: Dict[str, Any]) -> PipelinePlan:
    return PipelinePlan(
        name=raw["name"],
        files=tuple(PlannedFile(**f) for f in raw["files"]),
        total_bytes=raw["total_bytes"],
        missing_bytes=raw["missing_bytes"],
        unknown_sizes=raw["unknown_sizes"],
        disk_ok=raw["disk_ok"],
        model_index=raw["model_index"],
    )


def _path(p: Optional[StrPath]) -> Optional[str]:
    return None if p is None else os.path.expanduser(os.fspath(p))


def _patterns(p: Union[List[str], str, None]) -> List[str]:
    if p is None:
        return []
    if isinstance(p, str):
        return [p]
    return [os.fspath(x) for x in p]


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"a spec holds only dicts, lists, strings, numbers, booleans and None, not {value!r}")


def spec_arg(spec: Spec) -> Tuple[str, str]:
    """``("path", str)`` or ``("dict", json_text)``: a dict is checked as its JSON text, so it
    gets exactly the diagnostics a spec file gets."""
    if isinstance(spec, Mapping):
        return "dict", json.dumps(spec, indent=2, ensure_ascii=False, default=_json_default)
    if isinstance(spec, (str, os.PathLike)):
        return "path", os.fspath(spec)
    raise TypeError(f"spec must be a path, 'ORG/NAME/path.yaml' or a dict, not {type(spec).__name__}")


def _unsupported(**given: Any) -> None:
    """Arguments of huggingface_hub that pipefetch accepts but cannot honour raise, rather than
    being silently dropped."""
    for name, value in given.items():
        if value:
            raise HFValidationError(
                f"{name}= is not supported by pipefetch (it downloads into the cache); "
                f"call huggingface_hub for that, or leave it out"
            )


def start_hf_hub_download(
    repo_id: str,
    filename: str,
    *,
    subfolder: Optional[str],
    repo_type: Optional[str],
    revision: Optional[str],
    cache_dir: Optional[StrPath],
    local_dir: Optional[StrPath],
    force_download: bool,
    token: TokenArg,
    local_files_only: bool,
    headers: Optional[Dict[str, str]],
    endpoint: Optional[str],
    dry_run: bool,
) -> "_native.Job":
    _unsupported(local_dir=local_dir, headers=headers, dry_run=dry_run)
    return _native.hf_hub_download(
        repo_id,
        filename,
        subfolder,
        repo_type,
        revision,
        _path(cache_dir),
        token,
        local_files_only,
        force_download,
        endpoint,
    )


def start_snapshot_download(
    repo_id: str,
    *,
    repo_type: Optional[str],
    revision: Optional[str],
    cache_dir: Optional[StrPath],
    local_dir: Optional[StrPath],
    force_download: bool,
    token: TokenArg,
    local_files_only: bool,
    allow_patterns: Union[List[str], str, None],
    ignore_patterns: Union[List[str], str, None],
    max_workers: int,
    headers: Optional[Dict[str, str]],
    endpoint: Optional[str],
    dry_run: bool,
) -> "_native.Job":
    _unsupported(local_dir=local_dir, headers=headers, dry_run=dry_run)
    if max_workers < 1:
        raise HFValidationError(f"max_workers must be at least 1, not {max_workers}")
    return _native.snapshot_download(
        repo_id,
        repo_type,
        revision,
        _path(cache_dir),
        _patterns(allow_patterns),
        _patterns(ignore_patterns),
        token,
        local_files_only,
        force_download,
        endpoint,
        max_workers,
    )


def start_download_diffusers_pipeline(
    spec: Spec,
    *,
    out: Optional[StrPath],
    locked: bool,
    spec_revision: str,
    check_disk: bool,
    cache_dir: Optional[StrPath],
    token: TokenArg,
    endpoint: Optional[str],
    max_workers: int,
) -> "_native.Job":
    kind, value = spec_arg(spec)
    return _native.download_diffusers_pipeline(
        kind,
        value,
        spec_revision,
        _path(out),
        locked,
        check_disk,
        _path(cache_dir),
        token,
        endpoint,
        max(1, max_workers),
    )


def start_is_available_locally(
    spec: Spec, *, spec_revision: str, verify: bool, cache_dir: Optional[StrPath]
) -> "_native.Job":
    kind, value = spec_arg(spec)
    return _native.is_available_locally(kind, value, spec_revision, verify, _path(cache_dir))


def start_plan(
    spec: Spec,
    *,
    spec_revision: str,
    local_files_only: bool,
    cache_dir: Optional[StrPath],
    token: TokenArg,
    endpoint: Optional[str],
) -> "_native.Job":
    kind, value = spec_arg(spec)
    return _native.plan(kind, value, spec_revision, local_files_only, _path(cache_dir), token, endpoint)


def tqdm_callback(tqdm_class: Any, progress: Optional[ProgressCallback]) -> Optional[ProgressCallback]:
    """huggingface_hub's ``tqdm_class=``: a byte bar of that class, beside any ``progress``."""
    if tqdm_class is None:
        return progress
    from .progress import TqdmProgress

    bar = TqdmProgress(tqdm_class=tqdm_class)
    if progress is None:
        return bar

    def both(event: ProgressEvent) -> None:
        bar(event)
        progress(event)

    return both

