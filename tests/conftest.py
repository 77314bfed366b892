"""Session-wide checks: the suite fails if it leaves engine processes, block-store files in
/dev/shm or spill directories behind."""

from __future__ import annotations

import os
import tempfile
import time

import psutil
import pytest

import engine
from engine.runtime.block_store import SESSION_PREFIX


def _engine_processes() -> set[int]:
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "engine.runtime" in cmdline:
            found.add(proc.info["pid"])
    return found


def _store_dirs() -> set[str]:
    found = set()
    for root in ("/dev/shm", tempfile.gettempdir()):
        try:
            found |= {os.path.join(root, n) for n in os.listdir(root)
                      if n.startswith(SESSION_PREFIX)}
        except OSError:
            pass
    return found


@pytest.fixture(scope="session", autouse=True)
def no_leaks():
    """Fail the run if engine processes or store directories outlive the suite."""
    processes_before = _engine_processes()
    dirs_before = _store_dirs()
    yield
    engine.shutdown()
    deadline = time.monotonic() + 10
    while True:  # workers exit within a moment of shutdown; poll, never sleep blindly long
        leaked_procs = _engine_processes() - processes_before
        leaked_dirs = _store_dirs() - dirs_before
        if not (leaked_procs or leaked_dirs) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    problems = []
    if leaked_procs:
        problems.append(f"engine processes left running: {sorted(leaked_procs)}")
    if leaked_dirs:
        problems.append(f"block store directories left behind: {sorted(leaked_dirs)}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def fresh_context():
    """A DataContext whose changes are undone after the test."""
    ctx = engine.DataContext.get_current()
    saved = ctx.copy()
    yield ctx
    engine.DataContext._set_current(saved)
