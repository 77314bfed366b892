"""Session-wide checks: the suite fails if it leaves engine processes, block-store files in
/dev/shm or spill directories behind."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
import uuid

import psutil
import pytest

import engine
from engine.runtime.block_store import SESSION_PREFIX

# Every process this run starts inherits this marker, so runs beside ours don't count.
_RUN_MARKER = "ENGINE_TEST_RUN"
os.environ[_RUN_MARKER] = uuid.uuid4().hex


def _engine_processes() -> set[int]:
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "engine.runtime" not in cmdline:
            continue
        try:
            if proc.environ().get(_RUN_MARKER) == os.environ[_RUN_MARKER]:
                found.add(proc.info["pid"])
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _held(path: str) -> bool:
    """Whether a live session holds this store directory's lock (another run's); a spill
    directory counts as held when its session's store directory is."""
    name = os.path.basename(path)
    if name.endswith("-spill"):
        return any(_held(os.path.join(root, name[: -len("-spill")]))
                   for root in ("/dev/shm", tempfile.gettempdir()))
    try:
        fd = os.open(os.path.join(path, ".lock"), os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _store_dirs() -> set[str]:
    found = set()
    for root in ("/dev/shm", tempfile.gettempdir()):
        try:
            names = os.listdir(root)
        except OSError:
            continue
        found |= {os.path.join(root, n) for n in names
                  if n.startswith(SESSION_PREFIX) and os.path.isdir(os.path.join(root, n))
                  and not _held(os.path.join(root, n))}
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


@pytest.fixture(scope="module")
def module_cluster(request):
    """An embedded cluster of its own for a whole test module, shut down after it: 2 CPUs,
    or the ``engine.init`` arguments in the module's ``CLUSTER_INIT``. Modules take it with
    ``pytestmark = pytest.mark.usefixtures("module_cluster")``."""
    kwargs = getattr(request.module, "CLUSTER_INIT", {"num_cpus": 2})
    engine.shutdown()
    engine.init(**kwargs).wait_ready()  # tests that pick workers to kill see them all
    yield
    engine.shutdown()
