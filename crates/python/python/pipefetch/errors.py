"""Exceptions raised by pipefetch.

Every exception is a :class:`PipefetchError`. Where huggingface_hub has a class for the same
situation, pipefetch uses its name and its built-in bases, so code written against
huggingface_hub keeps working: ``except RepositoryNotFoundError``, ``except OSError``,
``except FileNotFoundError`` (for :class:`LocalEntryNotFoundError`) catch the same cases.

``str(error)`` is the text the ``pipefetch`` command prints (without its ``error:`` prefix): the
message, each underlying cause on a ``caused by:`` line, and a ``hint:`` line when there is
something to do. The parts are also attributes: ``hint`` and ``causes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Type

__all__ = [
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
]


class PipefetchError(Exception):
    """Base class of every pipefetch exception."""

    #: What to do about it, when something can be done.
    hint: Optional[str] = None
    #: The underlying causes, outermost first (one line each).
    causes: Tuple[str, ...] = ()

    def __init__(self, message: str = "", **attrs: Any) -> None:
        super().__init__(message)
        for name, value in attrs.items():
            setattr(self, name, value)


class HfHubHTTPError(PipefetchError, OSError):
    """The Hub (or another HTTP server) answered with an error status."""

    #: The HTTP status, when one was received.
    status_code: Optional[int] = None


class RepositoryNotFoundError(HfHubHTTPError):
    """The repository does not exist, or it is private and the token may not see it."""

    repo_id: Optional[str] = None


class GatedRepoError(RepositoryNotFoundError):
    """The repository is gated: accept its conditions on the Hub and use a token of that account."""


class DisabledRepoError(HfHubHTTPError):
    """The repository is disabled on the Hub."""

    repo_id: Optional[str] = None


class RevisionNotFoundError(HfHubHTTPError):
    """The branch, tag or commit does not exist in the repository."""

    repo_id: Optional[str] = None
    revision: Optional[str] = None


class EntryNotFoundError(PipefetchError):
    """A file was not found, on the Hub or in the cache."""

    repo_id: Optional[str] = None
    revision: Optional[str] = None
    path: Optional[str] = None


class RemoteEntryNotFoundError(HfHubHTTPError, EntryNotFoundError):
    """The file does not exist in the repository at that revision."""


class LocalEntryNotFoundError(EntryNotFoundError, FileNotFoundError):
    """The file is not in the cache, and the network may not (or could not) be used."""


class OfflineModeIsEnabled(PipefetchError, ConnectionError):
    """A request was needed but offline mode (``HF_HUB_OFFLINE``) is on."""


class HFValidationError(PipefetchError, ValueError):
    """An argument is invalid (a repo id, a repo type, a path)."""


class CacheNotFound(PipefetchError):
    """The cache folder to scan does not exist."""

    cache_dir: Optional[Path] = None


class CorruptedCacheException(PipefetchError):
    """A repo folder of the cache is damaged (listed in ``HFCacheInfo.warnings``)."""


class CacheError(PipefetchError, OSError):
    """The cache could not be read or written."""


class DownloadError(PipefetchError, OSError):
    """A transfer failed (the network, a timeout, a server sending something else than the file).

    What was received is kept; calling again resumes it.
    """

    url: Optional[str] = None


class IntegrityError(PipefetchError):
    """Downloaded bytes did not match their announced hash or size; nothing was kept."""


class NotEnoughSpaceError(PipefetchError, OSError):
    """The disk cannot hold the bytes still to download."""

    needed: Optional[int] = None
    available: Optional[int] = None


class PlanError(PipefetchError):
    """The pipeline cannot be planned (a missing variant, a component without weights, ...)."""

    problems: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Diagnostic:
    """One problem of a pipeline spec, as ``pipefetch validate`` reports it."""

    #: The spec file (``<dict>`` for a spec given as a dict).
    file: str
    #: 1-based line, 0 when the problem concerns the whole spec.
    line: int
    #: 1-based column, in characters.
    column: int
    #: How many characters the problem spans.
    width: int
    #: ``"error"`` or ``"warning"``.
    severity: str
    #: What is wrong.
    message: str
    #: What to do about it.
    help: Optional[str]
    #: The line of the spec the problem is on.
    excerpt: Optional[str]
    #: The diagnostic as the CLI prints it (message, location, excerpt with a caret, help).
    rendered: str

    def __str__(self) -> str:
        return self.rendered


class SpecError(PipefetchError, ValueError):
    """A pipeline spec is invalid. ``str()`` lists every problem, as ``pipefetch validate`` does.

    For a spec given as a dict, lines and columns refer to its JSON text, ``spec_text``.
    """

    diagnostics: Tuple[Diagnostic, ...] = ()
    #: The text that was parsed, for specs that are not files (a dict's JSON, a hosted spec).
    spec_text: Optional[str] = None


_CLASSES: Dict[str, Type[PipefetchError]] = {
    cls.__name__: cls
    for cls in [
        PipefetchError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        GatedRepoError,
        DisabledRepoError,
        RevisionNotFoundError,
        EntryNotFoundError,
        RemoteEntryNotFoundError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        HFValidationError,
        CacheNotFound,
        CorruptedCacheException,
        CacheError,
        DownloadError,
        IntegrityError,
        NotEnoughSpaceError,
        PlanError,
        SpecError,
    ]
}


def _from_native(class_name: str, message: str, attrs: Dict[str, Any]) -> PipefetchError:
    """Builds the exception the native module describes (used by ``pipefetch._native``)."""
    cls = _CLASSES.get(class_name, PipefetchError)
    if "diagnostics" in attrs:
        attrs["diagnostics"] = tuple(Diagnostic(**d) for d in attrs["diagnostics"])
    for name in ("causes", "problems"):
        if isinstance(attrs.get(name), list):
            attrs[name] = tuple(attrs[name])
    return cls(message, **attrs)
