"""Two executions consumed in lockstep must not deadlock on workers blocked by credits."""

from __future__ import annotations

import time

import numpy as np
import pytest

import engine as ed


@pytest.fixture
def small_store(fresh_context):
    ed.shutdown()
    fresh_context.memory_budget = 64 << 20
    ed.init(num_cpus=2)
    yield
    ed.shutdown()


def _wide(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"x": np.ones((len(batch["id"]), 1024), dtype=np.uint8)}


def test_two_datasets_iterated_in_lockstep_complete(small_store):
    # Each task yields ~50 blocks: far more than its credits, and more than the queues
    # hold, so the first execution's tasks wait on credits while holding every worker.
    left = ed.range(200_000, override_num_blocks=4).map_batches(_wide, batch_size=1000)
    right = ed.range(200_000, override_num_blocks=4).map_batches(_wide, batch_size=1000)
    rows = 0
    for a, b in zip(left.iter_batches(batch_size=1000), right.iter_batches(batch_size=1000),
                    strict=True):
        assert len(a["x"]) == len(b["x"])
        rows += len(a["x"])
    assert rows == 200_000
    # The extra workers started to break the wait are retired once idle.
    cluster = ed.init()
    deadline = time.monotonic() + 30
    while len(cluster.worker_pids()) != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(cluster.worker_pids()) == 2
