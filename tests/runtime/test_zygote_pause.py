"""A zygote still importing waits while the driver's own threads run engine tasks that
need no worker (``Zygote.pause``, ``LocalCluster.driver_busy``), within a bound, and never
once anything asks for a worker."""

from __future__ import annotations

import os
import sys
import threading
import time

import pyarrow as pa
import pytest

import engine
from engine import session
from engine.runtime.zygote import Zygote

_GATED = '''
import os, time
open(os.path.join({root!r}, "a.started"), "w").close()
while not os.path.exists(os.path.join({root!r}, "a.go")):
    time.sleep(0.005)
'''
_MARKER = '''
import os
open(os.path.join({root!r}, "{name}.imported"), "w").close()
'''


@pytest.fixture
def gated_modules(tmp_path, monkeypatch):
    """Modules ``gated_a`` (imports once ``a.go`` exists) and ``marker_b`` (leaves
    ``b.imported``) on the zygote's path."""
    root = str(tmp_path)
    (tmp_path / "gated_a.py").write_text(_GATED.format(root=root))
    (tmp_path / "marker_b.py").write_text(_MARKER.format(root=root, name="b"))
    monkeypatch.setattr(sys, "path", [root, *sys.path])
    return tmp_path


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_paused_imports_wait_for_resume(gated_modules, monkeypatch):
    monkeypatch.setenv("ENGINE_ZYGOTE_MAX_PAUSE_S", "600")  # no bound to hide behind
    zygote = Zygote(preload=("gated_a", "marker_b"))
    try:
        assert _wait_for(lambda: (gated_modules / "a.started").exists())
        zygote.pause()  # in the pipe before gated_a returns
        (gated_modules / "a.go").touch()
        time.sleep(0.5)
        assert not (gated_modules / "b.imported").exists()
        zygote.resume()
        assert _wait_for(lambda: (gated_modules / "b.imported").exists())
    finally:
        zygote.close()
    assert zygote.proc.returncode == 0  # left when told to, not killed


def test_a_pause_nobody_ends_runs_out(gated_modules, monkeypatch):
    monkeypatch.setenv("ENGINE_ZYGOTE_MAX_PAUSE_S", "0.2")
    zygote = Zygote(preload=("gated_a", "marker_b"))
    try:
        assert _wait_for(lambda: (gated_modules / "a.started").exists())
        zygote.pause()
        (gated_modules / "a.go").touch()
        assert _wait_for(lambda: (gated_modules / "b.imported").exists())
    finally:
        zygote.close()


def test_exit_while_paused_ends_the_zygote_at_once(gated_modules, monkeypatch):
    monkeypatch.setenv("ENGINE_ZYGOTE_MAX_PAUSE_S", "600")
    zygote = Zygote(preload=("gated_a", "marker_b"))
    assert _wait_for(lambda: (gated_modules / "a.started").exists())
    zygote.pause()
    (gated_modules / "a.go").touch()
    zygote.close()  # waits 5 s, then kills, for a zygote that does not leave
    assert zygote.proc.returncode == 0
    assert not (gated_modules / "b.imported").exists()


def test_a_task_that_needs_a_worker_ends_the_pause(gated_modules, monkeypatch):
    monkeypatch.setenv("ENGINE_ZYGOTE_MAX_PAUSE_S", "600")
    monkeypatch.setattr(session, "_worker_preload", lambda: ("gated_a", "marker_b"))
    engine.shutdown()
    try:
        cluster = engine.init(num_cpus=1)
        tasks = session.driver_tasks()
        assert tasks is not None
        assert _wait_for(lambda: (gated_modules / "a.started").exists())
        release = threading.Event()

        def engine_only():
            release.wait(120)
            yield pa.table({"x": [1]})

        held = tasks.submit(engine_only, local_ok=True)  # the driver is busy: pause
        (gated_modules / "a.go").touch()
        time.sleep(0.5)
        assert not (gated_modules / "b.imported").exists()
        worker_task = cluster.submit(lambda: pa.table({"pid": [os.getpid()]}))
        (ref,) = list(worker_task.iter_outputs(timeout=120))  # a worker came: resumed
        assert ref.get()["pid"][0].as_py() != os.getpid()
        assert not held.done  # while the driver's task still runs
        release.set()
        assert len(list(held.iter_outputs(timeout=60))) == 1
    finally:
        engine.shutdown()
