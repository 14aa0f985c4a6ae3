"""The pipefetch Python package in a server process: progress callbacks, a callback that raises,
Ctrl-C, asyncio, several threads at once. Every download goes to hub-server; interruptions are
checked by the resumed run's `Range` request in hub-server's log."""

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

import pipefetch
import pipefetch.aio
from conftest import run_pipefetch, source_files

BIG = "big/blob.dat"  # 10 MiB + 17 bytes: one range with the default settings


def trickle(hub, bytes_per_second=2_000_000):
    """The next CDN body of the big file comes slowly, so a test can act while it moves."""
    hub.fault({"kind": "trickle", "bytes_per_second": bytes_per_second}, route="cdn", path_contains=BIG)


def resumed_from(hub) -> int:
    """The first byte of the CDN request for the big file (0 when it was fetched whole)."""
    ranges = [
        r.get("range")
        for r in hub.requests()
        if r["route"] == "cdn" and BIG in unquote(f"{r['path']}?{r.get('query') or ''}")
    ]
    assert len(ranges) == 1, ranges
    return int((ranges[0] or "bytes=0-").removeprefix("bytes=").split("-")[0])


def test_progress_sees_bytes_rise_to_the_total_then_done(hub, fixture_root, tmp_path):
    events = []
    path = pipefetch.hf_hub_download(
        "acme/tiny-sd", BIG, cache_dir=tmp_path, endpoint=hub.url, progress=events.append
    )
    size = len(source_files(fixture_root, "models", "acme/tiny-sd")[BIG])
    assert Path(path).stat().st_size == size
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "done", kinds
    assert all(e["v"] == pipefetch.progress.SCHEMA_VERSION for e in events)
    assert events[0]["total_bytes"] == size
    done = [e["bytes_done"] for e in events if e["event"] == "progress"]
    assert done and done == sorted(done) and done[-1] == size
    assert all(e["bytes_total"] == size for e in events if e["event"] == "progress")
    (finished,) = [e for e in events if e["event"] == "file_done"]
    assert finished["bytes"] == size == events[-1]["bytes_downloaded"]
    assert kinds.index("file_done") > max(i for i, k in enumerate(kinds) if k == "progress")


def test_progress_is_coalesced_not_flooded(hub, tmp_path):
    # A trickled transfer: the engine reports every 50 ms, the callback gets at most one progress
    # event per 100 ms tick (a relative bound: a loaded machine only makes fewer).
    trickle(hub, bytes_per_second=5_000_000)
    events = []
    started = time.monotonic()
    pipefetch.hf_hub_download("acme/tiny-sd", BIG, cache_dir=tmp_path, endpoint=hub.url, progress=events.append)
    elapsed = time.monotonic() - started
    progress = [e for e in events if e["event"] == "progress"]
    heartbeats = [e for e in events if e["event"] == "heartbeat"]
    assert heartbeats, "heartbeats arrive while the transfer runs"
    assert 2 <= len(progress) <= elapsed / 0.1 + 3, (len(progress), elapsed)


def test_the_gil_is_released_while_bytes_move(hub, tmp_path):
    trickle(hub)
    first_progress = threading.Event()

    def on_event(event):
        if event["event"] == "progress":
            first_progress.set()

    t = threading.Thread(
        target=pipefetch.hf_hub_download,
        args=("acme/tiny-sd", BIG),
        kwargs=dict(cache_dir=tmp_path, endpoint=hub.url, progress=on_event),
    )
    t.start()
    assert first_progress.wait(30)
    # Pure Python work in this thread runs while the other one downloads: it could not if the
    # download held the GIL (this loop would only run once the download returned).
    total = sum(i * i for i in range(200_000))
    assert total > 0 and t.is_alive(), "the download finished before this thread could run"
    t.join(timeout=60)


def test_a_raising_callback_stops_the_download_and_the_rerun_resumes(hub, fixture_root, tmp_path):
    trickle(hub)

    class Stop(Exception):
        pass

    def callback(event):
        if event["event"] == "progress" and event["bytes_done"] >= 3_000_000:
            raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        pipefetch.hf_hub_download("acme/tiny-sd", BIG, cache_dir=tmp_path, endpoint=hub.url, progress=callback)
    blobs = tmp_path / "models--acme--tiny-sd" / "blobs"
    assert [p.name for p in blobs.iterdir() if p.name.endswith(".incomplete")], "the partial is kept"
    assert not (tmp_path / "models--acme--tiny-sd" / "snapshots").exists() or not list(
        (tmp_path / "models--acme--tiny-sd" / "snapshots").rglob(BIG.split("/")[-1])
    )

    hub.reset()
    path = pipefetch.hf_hub_download("acme/tiny-sd", BIG, cache_dir=tmp_path, endpoint=hub.url)
    assert Path(path).read_bytes() == source_files(fixture_root, "models", "acme/tiny-sd")[BIG]
    assert resumed_from(hub) >= 1_000_000


def test_tqdm_helper_draws_the_bytes(hub, tmp_path):
    from tqdm import tqdm

    out = io.StringIO()
    bar = pipefetch.progress.TqdmProgress(tqdm_class=tqdm, file=out, mininterval=0)
    path = pipefetch.snapshot_download(
        "acme/tiny-sd", cache_dir=tmp_path, endpoint=hub.url, allow_patterns="unet/*", progress=bar
    )
    total = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
    assert f"{total}" in out.getvalue() or "100%" in out.getvalue(), out.getvalue()
    # huggingface_hub's tqdm_class= argument drives the same bar.
    out2 = io.StringIO()

    class Bar(tqdm):
        def __init__(self, *a, **kw):
            kw["file"] = out2
            super().__init__(*a, **kw)

    pipefetch.hf_hub_download("acme/tiny-sd", "vae/config.json", cache_dir=tmp_path, endpoint=hub.url, tqdm_class=Bar)
    assert "100%" in out2.getvalue(), out2.getvalue()


SIGINT_SCRIPT = """
import sys, pipefetch
def on_event(event):
    if event["event"] == "progress" and event["bytes_done"] >= 3_000_000:
        print("started", flush=True)
pipefetch.hf_hub_download("acme/tiny-sd", sys.argv[1], cache_dir=sys.argv[2], endpoint=sys.argv[3],
                          progress=on_event)
print("finished", flush=True)
"""


def test_sigint_raises_keyboard_interrupt_and_the_rerun_resumes(hub, fixture_root, tmp_path):
    trickle(hub)
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGINT_SCRIPT, BIG, str(tmp_path), hub.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in err, err
    assert "finished" not in out
    assert proc.returncode != 0

    hub.reset()
    path = pipefetch.hf_hub_download("acme/tiny-sd", BIG, cache_dir=tmp_path, endpoint=hub.url)
    assert Path(path).read_bytes() == source_files(fixture_root, "models", "acme/tiny-sd")[BIG]
    assert resumed_from(hub) >= 1_000_000


def test_four_threads_at_once_each_get_their_files(hub, fixture_root, tmp_path):
    files = source_files(fixture_root, "models", "acme/tiny-sd")
    wanted = [BIG, "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", BIG]
    results, errors = {}, []
    start = threading.Barrier(len(wanted))

    def work(i, path):
        try:
            start.wait()
            results[i] = pipefetch.hf_hub_download(
                "acme/tiny-sd", path, cache_dir=tmp_path, endpoint=hub.url, progress=lambda e: None
            )
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i, p)) for i, p in enumerate(wanted)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    for i, path in enumerate(wanted):
        assert Path(results[i]).read_bytes() == files[path], path
    assert results[0] == results[3]
    # And a whole snapshot in each of four threads, into four caches.
    snaps = {}

    def snap(i):
        snaps[i] = pipefetch.snapshot_download(
            "acme/tiny-sd", cache_dir=tmp_path / f"c{i}", endpoint=hub.url, ignore_patterns=BIG
        )

    threads = [threading.Thread(target=snap, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i in range(4):
        got = {p.relative_to(snaps[i]).as_posix(): p.read_bytes() for p in Path(snaps[i]).rglob("*") if p.is_file()}
        assert got == {p: b for p, b in files.items() if p != BIG}


def test_aio_downloads_with_an_async_callback_and_cancels_cleanly(hub, fixture_root, tmp_path):
    files = source_files(fixture_root, "models", "acme/tiny-sd")

    async def main():
        seen = []

        async def on_event(event):
            seen.append(event["event"])

        a, b = await asyncio.gather(
            pipefetch.aio.hf_hub_download("acme/tiny-sd", "unet/config.json", cache_dir=tmp_path, endpoint=hub.url),
            pipefetch.aio.snapshot_download(
                "acme/tiny-sd", cache_dir=tmp_path, endpoint=hub.url, allow_patterns="vae/*", progress=on_event
            ),
        )
        assert Path(a).read_bytes() == files["unet/config.json"]
        assert Path(b, "vae/config.json").read_bytes() == files["vae/config.json"]
        assert seen[0] == "plan" and seen[-1] == "done"

        # Cancelling the task stops the download; the partial stays and the next call resumes it.
        trickle(hub)
        halfway = asyncio.Event()

        def on_progress(event):
            if event["event"] == "progress" and event["bytes_done"] >= 3_000_000:
                halfway.set()

        task = asyncio.ensure_future(
            pipefetch.aio.hf_hub_download(
                "acme/tiny-sd", BIG, cache_dir=tmp_path, endpoint=hub.url, progress=on_progress
            )
        )
        await asyncio.wait_for(halfway.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    hub.reset()
    path = pipefetch.hf_hub_download("acme/tiny-sd", BIG, cache_dir=tmp_path, endpoint=hub.url)
    assert Path(path).read_bytes() == files[BIG]
    assert resumed_from(hub) >= 1_000_000


def test_a_locked_pull_uses_the_spec_lockfile_and_refuses_an_edited_spec(hub, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("repo_id: acme/tiny-sd\n")
    # No lockfile yet: the error says how to make one.
    with pytest.raises(pipefetch.PipefetchError, match="pipefetch lock"):
        pipefetch.download_diffusers_pipeline(spec, locked=True, cache_dir=tmp_path / "c0", endpoint=hub.url)
    run_pipefetch("lock", str(spec), hub=hub, cache_dir=tmp_path / "c1")
    assert (tmp_path / "tiny.lock").is_file()

    # A fresh cache, only the lock: nothing is resolved (no API request), the folder loads the files.
    hub.reset()
    folder = pipefetch.download_diffusers_pipeline(
        spec, locked=True, cache_dir=tmp_path / "c2", out=tmp_path / "out", endpoint=hub.url
    )
    assert (Path(folder) / "model_index.json").is_file()
    routes = {r["route"] for r in hub.requests()}
    assert not routes & {"api_repo", "api_tree", "api_paths_info"}, routes

    spec.write_text("repo_id: acme/tiny-sd\nvariant: fp16\n")
    with pytest.raises(pipefetch.PipefetchError, match="changed since it was locked"):
        pipefetch.download_diffusers_pipeline(spec, locked=True, cache_dir=tmp_path / "c2", endpoint=hub.url)


def test_a_dict_spec_gets_the_same_diagnostics_as_a_file(tmp_path):
    text = "repo_id: acme/tiny-sd\ncomponents:\n  vae:\n    hf_rpo: acme/x\n  Bad-Name: null\n"
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    with pytest.raises(pipefetch.SpecError) as from_file:
        pipefetch.plan(spec, cache_dir=tmp_path)
    with pytest.raises(pipefetch.SpecError) as from_dict:
        pipefetch.plan(
            {"repo_id": "acme/tiny-sd", "components": {"vae": {"hf_rpo": "acme/x"}, "Bad-Name": None}},
            cache_dir=tmp_path,
        )
    assert isinstance(from_dict.value, ValueError)
    msgs = lambda e: [(d.severity, d.message, d.help) for d in e.value.diagnostics]  # noqa: E731
    assert msgs(from_file) == msgs(from_dict) and len(msgs(from_file)) == 2
    # File diagnostics point into the file, as `pipefetch validate` prints them.
    first = from_file.value.diagnostics[0]
    assert (first.line, first.column) == (4, 5)
    assert first.excerpt == "    hf_rpo: acme/x"
    validate = subprocess.run(
        [os.environ.get("PIPEFETCH_BIN", "pipefetch"), "validate", str(spec)], capture_output=True, text=True
    )
    assert validate.returncode == 3
    assert str(from_file.value) in validate.stderr
    # Dict diagnostics point into its JSON text.
    d = from_dict.value.diagnostics[0]
    assert d.file == "<dict>"
    assert from_dict.value.spec_text.splitlines()[d.line - 1] == d.excerpt
    assert d.excerpt[d.column - 1:].startswith('"hf_rpo"')
