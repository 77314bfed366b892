"""``engine.init()`` returns while the worker processes start, and a parquet read's first
batches come from the driver lane meanwhile; a UDF stage waits for the workers. The zygote
here forks only once the test lets it, so "the workers are still starting" is held, not
raced."""

from __future__ import annotations

import os
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine
from engine import session
from engine.runtime import zygote as zygote_module


class _GatedZygote(zygote_module.Zygote):
    gate = threading.Event()

    def fork(self, request):
        self.gate.wait(120)
        return super().fork(request)


@pytest.fixture
def gated(monkeypatch):
    engine.shutdown()
    _GatedZygote.gate = threading.Event()
    monkeypatch.setattr(zygote_module, "Zygote", _GatedZygote)
    yield _GatedZygote.gate
    _GatedZygote.gate.set()
    engine.shutdown()


def test_a_parquet_read_streams_before_any_worker_is_up(gated, tmp_path):
    for i in range(3):
        ids = np.arange(i * 10_000, (i + 1) * 10_000)
        pq.write_table(pa.table({"id": ids, "x": ids * 0.5}), tmp_path / f"p{i}.parquet")
    cluster = engine.init(num_cpus=2)  # returns: nothing waits for the gated forks
    assert cluster.worker_pids() == []
    batches = engine.read_parquet(str(tmp_path)).iter_batches(batch_size=1000)
    first = next(iter(batches))
    assert len(first["id"]) == 1000 and cluster.worker_pids() == []
    rows = 1000 + sum(len(b["id"]) for b in batches)
    assert rows == 30_000 and cluster.worker_pids() == []  # all of it read by the lane

    def pid_of(batch):
        return {"pid": np.full(len(batch["id"]), os.getpid())}

    mapped = engine.read_parquet(str(tmp_path)).map_batches(pid_of)
    waiting = threading.Thread(target=lambda: results.extend(mapped.take_all()))
    results: list[dict] = []
    waiting.start()
    try:
        assert cluster.worker_pids() == [] and not results  # the UDF waits for a worker
    finally:
        gated.set()
    waiting.join(120)
    assert len(results) == 30_000
    assert {row["pid"] for row in results} <= set(cluster.worker_pids())
    assert os.getpid() not in {row["pid"] for row in results}
    assert session.get_cluster() is cluster
