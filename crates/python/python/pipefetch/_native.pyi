"""Type stubs of the extension module ``pipefetch._native`` (use ``pipefetch``, not this)."""

from typing import Any, Dict, List, Optional, Callable

__version__: str
EVENT_SCHEMA_VERSION: int

class Job:
    """A call in progress on pipefetch's runtime."""

    def wait(self, progress: Optional[Callable[[Dict[str, Any]], object]] = None) -> Any: ...
    def take_events(self) -> List[Dict[str, Any]]: ...
    def set_waker(self, waker: Callable[[], object]) -> None: ...
    def done(self) -> bool: ...
    def result(self) -> Any: ...
    def cancel(self) -> None: ...

def hf_hub_download(
    repo_id: str,
    filename: str,
    subfolder: Optional[str],
    repo_type: Optional[str],
    revision: Optional[str],
    cache_dir: Optional[str],
    token: bool | str | None,
    local_files_only: bool,
    force_download: bool,
    endpoint: Optional[str],
) -> Job: ...
def snapshot_download(
    repo_id: str,
    repo_type: Optional[str],
    revision: Optional[str],
    cache_dir: Optional[str],
    allow_patterns: List[str],
    ignore_patterns: List[str],
    token: bool | str | None,
    local_files_only: bool,
    force_download: bool,
    endpoint: Optional[str],
    max_workers: int,
) -> Job: ...
def download_diffusers_pipeline(
    spec_kind: str,
    spec: str,
    spec_revision: str,
    out: Optional[str],
    locked: bool,
    check_disk: bool,
    cache_dir: Optional[str],
    token: bool | str | None,
    endpoint: Optional[str],
    max_workers: int,
) -> Job: ...
def is_available_locally(
    spec_kind: str, spec: str, spec_revision: str, verify: bool, cache_dir: Optional[str]
) -> Job: ...
def plan(
    spec_kind: str,
    spec: str,
    spec_revision: str,
    local_files_only: bool,
    cache_dir: Optional[str],
    token: bool | str | None,
    endpoint: Optional[str],
) -> Job: ...
def scan_cache(cache_dir: str) -> Dict[str, Any]: ...
def delete_revisions(
    cache_dir: str, repo_type: str, repo_id: str, commits: List[str], whole_repo: bool
) -> int: ...
def repo_folder_name(*, repo_id: str, repo_type: str) -> str: ...
def default_cache_dir() -> str: ...
