"""Progress events, and a helper that turns them into tqdm bars.

A ``progress=`` callable receives each event as a dict: the objects ``pipefetch --progress json``
writes, one per line, with the same fields and the schema version ``"v"``
(``pipefetch.progress.SCHEMA_VERSION``; fields may be added within a version, never removed or
changed). The ``"event"`` key says which:

=================  =========================================================================
``plan``           ``files``, ``total_bytes``, ``cached_files``, ``cached_bytes``: the work ahead
``file_started``   ``file`` (an id), ``repo``, ``path``, ``size``, ``resumed`` (bytes already on disk)
``progress``       ``file``, ``bytes_done``, ``bytes_total``: integer byte positions
``retry``          ``file`` (or ``None``), ``reason``, ``attempt``, ``wait_ms``
``file_done``      ``file``, ``bytes``, ``downloaded`` (bytes that crossed the network)
``file_failed``    ``file``, ``error``
``heartbeat``      ``bytes_done``, ``bytes_total``, ``rate_bps``, ``active_files``, ``stalled_ms``
``done``           ``files``, ``bytes_downloaded``, ``elapsed_ms``: always the last event
=================  =========================================================================

Sizes of ``0`` mean unknown. A heartbeat comes every second while transfers run, even when no byte
arrives (``stalled_ms`` then grows). Callbacks are never flooded: ``progress`` and ``heartbeat``
events are coalesced (a newer one replaces an older one not yet delivered), so a callback sees
at most about ten progress events per file per second and never falls behind; every other event is
delivered, in order. Callbacks run on the thread that called (the event loop for
``pipefetch.aio``), never on a transfer thread; an exception raised by a callback stops the
download and propagates to the caller.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Optional

from . import _native

#: The version of the event schema (the ``"v"`` of every event).
SCHEMA_VERSION: int = _native.EVENT_SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "TqdmProgress"]


class TqdmProgress:
    """A progress callback that draws a tqdm bar of bytes for the whole call (cached bytes count
    as done from the start; resumed bytes are counted without inflating the rate).

    ``TqdmProgress()`` uses ``tqdm.auto.tqdm`` (install ``tqdm``, or ``pipefetch[tqdm]``);
    ``tqdm_class=`` picks another class, other keyword arguments go to it::

        pipefetch.snapshot_download("org/name", progress=TqdmProgress(desc="org/name"))

    The bar is closed by the ``done`` event; call :meth:`close` yourself if the download failed.
    """

    def __init__(self, *, tqdm_class: Any = None, **tqdm_kwargs: Any) -> None:
        if tqdm_class is None:
            try:
                # Imported by name: tqdm ships no type information, and it is optional.
                tqdm_class = importlib.import_module("tqdm.auto").tqdm
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "TqdmProgress needs tqdm: pip install tqdm (or pipefetch[tqdm])"
                ) from e
        self._tqdm_class = tqdm_class
        self._kwargs: Dict[str, Any] = {"unit": "B", "unit_scale": True, "unit_divisor": 1024}
        self._kwargs.update(tqdm_kwargs)
        self._bar: Optional[Any] = None
        self._done: Dict[int, int] = {}

    def _ensure(self, total: Optional[int]) -> Any:
        if self._bar is None:
            self._bar = self._tqdm_class(total=total or None, **self._kwargs)
        return self._bar

    def __call__(self, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "plan":
            bar = self._ensure(event["total_bytes"])
            if event["total_bytes"]:
                bar.total = event["total_bytes"]
            if event["cached_bytes"]:
                bar.update(event["cached_bytes"])
        elif kind == "file_started":
            bar = self._ensure(None)
            self._done[event["file"]] = event["resumed"]
            if event["resumed"]:
                bar.update(event["resumed"])
        elif kind == "progress":
            bar = self._ensure(None)
            before = self._done.get(event["file"], 0)
            self._done[event["file"]] = event["bytes_done"]
            # A server that could not resume sends a file again: the bar goes back too.
            bar.update(event["bytes_done"] - before)
        elif kind == "done":
            self.close()

    def close(self) -> None:
        """Closes the bar (done by the ``done`` event)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
