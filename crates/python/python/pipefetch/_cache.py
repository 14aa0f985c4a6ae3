"""The cache report of :func:`pipefetch.scan_cache_dir`, shaped like huggingface_hub's.

The classes have huggingface_hub's names, fields and properties, so code that reads
``huggingface_hub.scan_cache_dir()`` reads ours unchanged. The scan itself is native
(``pipefetch_hub_cache``); a delete strategy is worked out here, from the scan, and executed by the
native cache code (which removes a revision's snapshot, refs, and the blobs nothing else uses).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Literal, Optional, Set, Tuple

from . import _native
from .errors import CacheNotFound, CorruptedCacheException

__all__ = [
    "CachedFileInfo",
    "CachedRevisionInfo",
    "CachedRepoInfo",
    "CachedIncompleteFileInfo",
    "DeleteCacheStrategy",
    "HFCacheInfo",
    "scan_cache_dir",
]

logger = logging.getLogger("pipefetch")

RepoTypeName = Literal["model", "dataset", "space", "kernel"]


def _format_size(num: int) -> str:
    """``1.2K``-style sizes, as huggingface_hub writes them (decimal units)."""
    value = float(num)
    for unit in ("", "K", "M", "G", "T", "P", "E", "Z"):
        if abs(value) < 1000.0:
            return f"{value:3.1f}{unit}"
        value /= 1000.0
    return f"{value:.1f}Y"


def _format_timesince(ts: float) -> str:
    """``3 days ago``-style ages."""
    import time

    delta = time.time() - ts
    if delta < 20:
        return "a few seconds ago"
    for label, seconds in (
        ("year", 365 * 24 * 3600),
        ("week", 7 * 24 * 3600),
        ("day", 24 * 3600),
        ("hour", 3600),
        ("minute", 60),
    ):
        if delta >= seconds:
            n = round(delta / seconds)
            return f"{n} {label}{'s' if n > 1 else ''} ago"
    return f"{round(delta)} seconds ago"


@dataclass(frozen=True)
class CachedFileInfo:
    """One file of a cached revision: its snapshot entry and the blob it points at."""

    file_name: str
    file_path: Path
    blob_path: Path
    size_on_disk: int
    blob_last_accessed: float
    blob_last_modified: float

    @property
    def blob_last_accessed_str(self) -> str:
        return _format_timesince(self.blob_last_accessed)

    @property
    def blob_last_modified_str(self) -> str:
        return _format_timesince(self.blob_last_modified)

    @property
    def size_on_disk_str(self) -> str:
        return _format_size(self.size_on_disk)


@dataclass(frozen=True)
class CachedRevisionInfo:
    """One snapshot folder (a commit) of a cached repo."""

    commit_hash: str
    snapshot_path: Path
    size_on_disk: int
    files: FrozenSet[CachedFileInfo]
    refs: FrozenSet[str]
    last_modified: float

    @property
    def last_modified_str(self) -> str:
        return _format_timesince(self.last_modified)

    @property
    def size_on_disk_str(self) -> str:
        return _format_size(self.size_on_disk)

    @property
    def nb_files(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class CachedRepoInfo:
    """One cached repo (``models--org--name``)."""

    repo_id: str
    repo_type: RepoTypeName
    repo_path: Path
    size_on_disk: int
    nb_files: int
    revisions: FrozenSet[CachedRevisionInfo]
    last_accessed: float
    last_modified: float

    @property
    def last_accessed_str(self) -> str:
        return _format_timesince(self.last_accessed)

    @property
    def last_modified_str(self) -> str:
        return _format_timesince(self.last_modified)

    @property
    def size_on_disk_str(self) -> str:
        return _format_size(self.size_on_disk)

    @property
    def cache_id(self) -> str:
        return f"{self.repo_type}/{self.repo_id}"

    @property
    def refs(self) -> Dict[str, CachedRevisionInfo]:
        return {ref: rev for rev in self.revisions for ref in rev.refs}


@dataclass(frozen=True)
class CachedIncompleteFileInfo:
    """A partial download (``blobs/*.incomplete``): interrupted, or running now."""

    file_path: Path
    size_on_disk: int


@dataclass(frozen=True)
class _RepoDeletion:
    repo_type: str
    repo_id: str
    commits: Tuple[str, ...]
    whole_repo: bool


@dataclass(frozen=True)
class DeleteCacheStrategy:
    """What :meth:`HFCacheInfo.delete_revisions` would delete; nothing happens until
    :meth:`execute`."""

    expected_freed_size: int
    blobs: FrozenSet[Path]
    refs: FrozenSet[Path]
    repos: FrozenSet[Path]
    snapshots: FrozenSet[Path]
    files: FrozenSet[Path] = frozenset()
    cache_dir: Optional[Path] = None
    _deletions: Tuple[_RepoDeletion, ...] = field(default=(), repr=False, compare=False)

    @property
    def expected_freed_size_str(self) -> str:
        return _format_size(self.expected_freed_size)

    def execute(self) -> None:
        """Deletes the revisions (``pipefetch_hub_cache``'s deletion: a revision's snapshot, its
        refs and tree listing, then the blobs no remaining revision uses; a repo left with no
        revision goes whole)."""
        if self.cache_dir is None:
            return
        freed = 0
        for d in self._deletions:
            freed += _native.delete_revisions(
                str(self.cache_dir), d.repo_type, d.repo_id, list(d.commits), d.whole_repo
            )
        logger.debug("cache deletion done: %s freed", _format_size(freed))


@dataclass(frozen=True)
class HFCacheInfo:
    """The whole cache: valid repos, partial downloads, and one warning per damaged repo."""

    size_on_disk: int
    repos: FrozenSet[CachedRepoInfo]
    incomplete_files: FrozenSet[CachedIncompleteFileInfo]
    warnings: List[CorruptedCacheException]
    cache_dir: Optional[Path] = None

    @property
    def size_on_disk_str(self) -> str:
        return _format_size(self.size_on_disk)

    @property
    def incomplete_size_on_disk(self) -> int:
        return sum(f.size_on_disk for f in self.incomplete_files)

    def delete_revisions(self, *revisions: str) -> DeleteCacheStrategy:
        """The strategy that deletes these commits (from any repos). A repo left without a
        revision is deleted whole; a blob is deleted when no remaining revision uses it. Commits
        that are not cached are logged and ignored."""
        wanted: Set[str] = set(revisions)
        by_repo: Dict[CachedRepoInfo, Set[CachedRevisionInfo]] = defaultdict(set)
        for repo in self.repos:
            for rev in repo.revisions:
                if rev.commit_hash in wanted:
                    by_repo[repo].add(rev)
        missing = wanted - {rev.commit_hash for revs in by_repo.values() for rev in revs}
        if missing:
            logger.warning("Revision(s) not found - cannot delete them: %s", ", ".join(sorted(missing)))

        blobs: Set[Path] = set()
        refs: Set[Path] = set()
        repos: Set[Path] = set()
        snapshots: Set[Path] = set()
        freed: Dict[Path, int] = {}
        deletions: List[_RepoDeletion] = []
        for repo, doomed in by_repo.items():
            kept = repo.revisions - doomed
            commits = tuple(sorted(rev.commit_hash for rev in doomed))
            if not kept:
                repos.add(repo.repo_path)
                for rev in repo.revisions:
                    for f in rev.files:
                        freed[f.blob_path] = f.size_on_disk
                deletions.append(_RepoDeletion(repo.repo_type, repo.repo_id, commits, True))
                continue
            still_used = {f.blob_path for rev in kept for f in rev.files}
            for rev in doomed:
                snapshots.add(rev.snapshot_path)
                refs.update(repo.repo_path / "refs" / ref for ref in rev.refs)
                for f in rev.files:
                    if rev.snapshot_path in f.blob_path.parents:
                        # A copy inside the snapshot (no symlinks): it goes with the folder.
                        freed[f.blob_path] = f.size_on_disk
                    elif f.blob_path not in still_used:
                        blobs.add(f.blob_path)
                        freed[f.blob_path] = f.size_on_disk
            deletions.append(_RepoDeletion(repo.repo_type, repo.repo_id, commits, False))
        return DeleteCacheStrategy(
            expected_freed_size=sum(freed.values()),
            blobs=frozenset(blobs),
            refs=frozenset(refs),
            repos=frozenset(repos),
            snapshots=frozenset(snapshots),
            cache_dir=self.cache_dir,
            _deletions=tuple(deletions),
        )


def _build(raw: Dict[str, Any], cache_dir: Path) -> HFCacheInfo:
    repos: List[CachedRepoInfo] = []
    incomplete: List[CachedIncompleteFileInfo] = []
    for r in raw["repos"]:
        revisions = frozenset(
            CachedRevisionInfo(
                commit_hash=rev["commit_hash"],
                snapshot_path=Path(rev["snapshot_path"]),
                size_on_disk=rev["size_on_disk"],
                files=frozenset(
                    CachedFileInfo(
                        file_name=f["file_name"],
                        file_path=Path(f["file_path"]),
                        blob_path=Path(f["blob_path"]),
                        size_on_disk=f["size_on_disk"],
                        blob_last_accessed=f["blob_last_accessed"],
                        blob_last_modified=f["blob_last_modified"],
                    )
                    for f in rev["files"]
                ),
                refs=frozenset(rev["refs"]),
                last_modified=rev["last_modified"],
            )
            for rev in r["revisions"]
        )
        repos.append(
            CachedRepoInfo(
                repo_id=r["repo_id"],
                repo_type=r["repo_type"],
                repo_path=Path(r["repo_path"]),
                size_on_disk=r["size_on_disk"],
                nb_files=r["nb_files"],
                revisions=revisions,
                last_accessed=r["last_accessed"],
                last_modified=r["last_modified"],
            )
        )
        incomplete.extend(
            CachedIncompleteFileInfo(Path(f["file_path"]), f["size_on_disk"])
            for f in r["incomplete_files"]
        )
    return HFCacheInfo(
        size_on_disk=raw["size_on_disk"],
        repos=frozenset(repos),
        incomplete_files=frozenset(incomplete),
        warnings=[CorruptedCacheException(w) for w in raw["warnings"]],
        cache_dir=cache_dir,
    )


def scan_cache_dir(cache_dir: "str | os.PathLike[str] | None" = None) -> HFCacheInfo:
    """Scans the HF cache (``cache_dir``, default ``HF_HUB_CACHE``) like huggingface_hub's
    ``scan_cache_dir``: every valid repo with its revisions and files, and one
    :class:`CorruptedCacheException` in ``warnings`` per damaged repo folder.

    Raises :class:`CacheNotFound` when the folder does not exist, ``ValueError`` when it is a file.
    """
    if cache_dir is None:
        cache_dir = _native.default_cache_dir()
    path = Path(cache_dir).expanduser().resolve()
    hint = "Please use `cache_dir` argument or set `HF_HUB_CACHE` environment variable."
    if not path.exists():
        raise CacheNotFound(f"Cache directory not found: {path}. {hint}", cache_dir=path)
    if path.is_file():
        raise ValueError(f"Scan cache expects a directory but found a file: {path}. {hint}")
    return _build(_native.scan_cache(str(path)), path)
