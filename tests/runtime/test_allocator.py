"""The embedded cluster's allocator choices (``engine.runtime.allocator``): workers commit
mimalloc's arenas on demand, the driver switches from mimalloc to jemalloc, and whatever
the user chose stays. The driver's choice is checked in a fresh interpreter, since the
default pool is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

import engine as ed
from engine.runtime import allocator

_PROBE = ("import pyarrow as pa, engine as ed; ed.init(num_cpus=1); "
          "print(pa.default_memory_pool().backend_name); ed.shutdown()")


def _jemalloc_built_in() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return False
    return True


def _driver_pool(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k != "ARROW_DEFAULT_MEMORY_POOL" and not k.startswith("MIMALLOC_")}
    clean.update(env)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=clean, capture_output=True,
                         text=True, check=True, timeout=120)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not _jemalloc_built_in(), reason="this pyarrow has no jemalloc")
def test_init_switches_a_driver_on_mimalloc_to_jemalloc() -> None:
    assert _driver_pool() == "jemalloc"


def test_a_pool_the_user_chose_stays() -> None:
    assert _driver_pool(ARROW_DEFAULT_MEMORY_POOL="system") == "system"
    assert _driver_pool(MIMALLOC_ARENA_EAGER_COMMIT="1") == "mimalloc"


def test_worker_env_keeps_what_the_user_set(monkeypatch) -> None:
    monkeypatch.delenv("MIMALLOC_ARENA_EAGER_COMMIT", raising=False)
    assert allocator.worker_env() == {"MIMALLOC_ARENA_EAGER_COMMIT": "0"}
    monkeypatch.setenv("MIMALLOC_ARENA_EAGER_COMMIT", "1")
    assert allocator.worker_env() == {}


def test_workers_commit_mimalloc_arenas_on_demand() -> None:
    ed.shutdown()
    try:
        ed.init(num_cpus=1)
        seen = ed.range(1).map_batches(
            lambda b: {"v": [os.environ.get("MIMALLOC_ARENA_EAGER_COMMIT", "")]}).take_all()
    finally:
        ed.shutdown()
    expected = os.environ.get("MIMALLOC_ARENA_EAGER_COMMIT", "0")
    assert [row["v"] for row in seen] == [expected]
