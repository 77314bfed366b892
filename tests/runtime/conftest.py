"""Fixtures of the runtime tests: local clusters started directly (not through
``engine.init()``), bounded polling, and views of the block store's files.

Every test here starts worker processes; none depends on timing to pass: waits are bounded
polling loops with generous limits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from engine.runtime.cluster import LocalCluster

DEFAULT_BUDGET = 256 << 20


class RuntimeHelpers:
    """Helpers handed to tests through the ``rt`` fixture (test modules cannot reliably
    import each other or a conftest)."""

    @staticmethod
    def wait_until(predicate: Callable[[], Any], timeout: float = 30.0,
                   what: str = "a condition", interval: float = 0.02) -> Any:
        """Poll ``predicate`` until it returns something truthy (and return that) or fail."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    @staticmethod
    def wait_stable(read: Callable[[], Any], polls: int = 8, interval: float = 0.05,
                    timeout: float = 30.0) -> Any:
        """Poll ``read`` until it returns the same value ``polls`` times in a row; return it."""
        deadline = time.monotonic() + timeout
        last, same = read(), 0
        while same < polls:
            if time.monotonic() > deadline:
                raise AssertionError(f"value never settled within {timeout}s (last {last!r})")
            time.sleep(interval)
            value = read()
            same = same + 1 if value == last else 0
            last = value
        return last

    @staticmethod
    def process_gone(pid: int) -> bool:
        """Whether ``pid`` has exited (a zombie nobody reaps counts as exited)."""
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    @staticmethod
    def block_files(cluster: LocalCluster) -> list[str]:
        """Block files (complete or partial) in the cluster's shared-memory session dir."""
        try:
            names = os.listdir(cluster.store.dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith(".") and n != "r")

    @staticmethod
    def spill_files(cluster: LocalCluster) -> list[str]:
        """Files in the cluster's spill directory."""
        try:
            return sorted(n for n in os.listdir(cluster.store.spill_dir) if n != ".lock")
        except FileNotFoundError:
            return []

    @staticmethod
    def live_workers(cluster: LocalCluster) -> list[int]:
        """Pids of the cluster's workers that are still running."""
        return [pid for pid in cluster.worker_pids() if not RuntimeHelpers.process_gone(pid)]


@pytest.fixture
def rt() -> type[RuntimeHelpers]:
    return RuntimeHelpers


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., LocalCluster]]:
    """Start local clusters with custom arguments; every one is shut down afterwards."""
    started: list[LocalCluster] = []

    def make(ready: bool = True, **kwargs: Any) -> LocalCluster:
        """``ready``: return once every worker process is up (they start in the
        background), so tests see all their pids."""
        kwargs.setdefault("num_cpus", 2)
        kwargs.setdefault("memory_budget", DEFAULT_BUDGET)
        cluster = LocalCluster(**kwargs)
        started.append(cluster)
        if ready:
            assert cluster.wait_ready(120), "the workers did not start"
        return cluster

    yield make
    for cluster in started:
        cluster.shutdown()


@pytest.fixture
def cluster(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    """A two-worker local cluster with a 256 MiB store."""
    return make_cluster()
