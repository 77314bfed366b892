"""The soak test: hundreds of small pipelines in one driver (map tasks, actor pools, early
``break`` out of iteration, materialized datasets dropped) leave the driver's file
descriptors, the engine's processes, the store's files and the runtime's bookkeeping as
they were after a warm-up."""

from __future__ import annotations

import gc
import os
import sys
import time

import cloudpickle
import psutil
import pytest

import engine as ed
from engine.runtime import protocol

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.usefixtures("module_cluster")]

WARMUP = 24
ROUNDS = 360


class AddOne:
    def __call__(self, batch):
        return {"id": batch["id"] + 1}


def _pipeline(i: int) -> None:
    kind = i % 6
    if kind == 0:
        assert ed.range(2000, override_num_blocks=4).map_batches(
            lambda b: {"id": b["id"] * 2}).sum("id") == 2 * 1999 * 1000
    elif kind == 1:
        rows = ed.from_items([{"x": j} for j in range(50)]).filter(
            lambda r: r["x"] % 5 == 0).take_all()
        assert [r["x"] for r in rows] == list(range(0, 50, 5))
    elif kind == 2:
        for batch in ed.range(100_000, override_num_blocks=8).iter_batches(batch_size=1000):
            assert len(batch["id"]) == 1000
            break  # abandon the stream early
    elif kind == 3:
        mat = ed.range(30_000, override_num_blocks=3).map(lambda r: {"id": r["id"]}) \
            .materialize()
        assert mat.count() == 30_000
    elif kind == 4:
        fn = eval(f"lambda b: {{'id': b['id'] + {i}}}")  # a new function every time
        assert ed.range(100).map_batches(fn).sum("id") == 4950 + 100 * i
    elif i % 12 == 5:  # an actor pool every 12th round
        assert ed.range(1000, override_num_blocks=2).map_batches(
            AddOne, concurrency=1).sum("id") == 500500
    else:
        assert ed.range(10).count() == 10


def _engine_processes(cluster) -> set[int]:
    zygote = psutil.Process(cluster.zygote_pid())
    return {zygote.pid, *(c.pid for c in zygote.children(recursive=True)
                          if c.status() != psutil.STATUS_ZOMBIE)}


def _snapshot(cluster) -> dict[str, int]:
    gc.collect()
    sizes = cluster.state_sizes()
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "processes": len(_engine_processes(cluster)),
        "store_files": len([n for n in os.listdir(cluster.store.dir) if not n.startswith(".")]),
        "store_bytes": cluster.store.used_bytes,
        "tasks": sizes["tasks"], "actors": sizes["actors"], "workers": sizes["workers"],
        "queued": sizes["queued"],
    }


def _settled(cluster, reference: dict[str, int], timeout: float = 60.0) -> dict[str, int]:
    """Poll until the snapshot is no bigger than ``reference`` plus slack (actors and
    abandoned streams wind down asynchronously), then return it."""
    slack = {"fds": 6}
    deadline = time.monotonic() + timeout
    while True:
        snap = _snapshot(cluster)
        if all(snap[k] <= reference[k] + slack.get(k, 0) for k in reference):
            return snap
        if time.monotonic() > deadline:
            return snap
        time.sleep(0.1)


def test_hundreds_of_small_pipelines_leave_nothing_behind():
    cluster = ed.init()
    for i in range(WARMUP):
        _pipeline(i)
    before = _settled(cluster, {"processes": cluster.num_cpus + 1, "actors": 0, "tasks": 0,
                                "store_files": 1, "store_bytes": 0, "queued": 0,
                                "workers": cluster.num_cpus, "fds": 10_000})
    for i in range(WARMUP, WARMUP + ROUNDS):
        _pipeline(i)
    after = _settled(cluster, before)
    assert after["fds"] <= before["fds"] + 6, (before, after)
    for key in ("processes", "store_files", "store_bytes", "tasks", "actors", "workers",
                "queued"):
        assert after[key] <= before[key], (key, before, after)
    sizes = cluster.state_sizes()
    assert sizes["worker_fns"] <= protocol.FN_CACHE_SIZE * cluster.num_cpus
    assert sizes["lineage"] <= 600 and sizes["rebuilds"] == 0
