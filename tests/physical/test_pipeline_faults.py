"""Fault injection through the Dataset API: a task worker or an actor SIGKILLed in the
middle of a pipeline is replaced, its work is retried, and the result is exact (no row lost,
none counted twice). The UDFs kill their own process once, coordinated by a marker file, so
the retry succeeds."""

from __future__ import annotations

import os
import signal
import sys

import cloudpickle
import numpy as np
import pytest

import engine as ed
from engine.errors import WorkerCrashedError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

N = 200_000
BLOCKS = 8


@pytest.fixture(scope="module", autouse=True)
def _cluster():
    ed.shutdown()
    ed.init(num_cpus=2)
    yield
    ed.shutdown()


def _die_once(marker: str, batch: dict[str, np.ndarray]) -> None:
    """SIGKILL this process the first time any task reaches the batch holding row 100000."""
    ids = batch["id"]
    if len(ids) and ids[0] <= N // 2 <= ids[-1] and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


def _double_or_die(batch, marker):
    _die_once(marker, batch)
    return {"id": batch["id"], "twice": batch["id"] * 2}


class DoubleOrDie:
    def __init__(self, marker):
        self.marker = marker

    def __call__(self, batch):
        _die_once(self.marker, batch)
        return {"id": batch["id"], "twice": batch["id"] * 2}


def _check_exact(ds: ed.Dataset) -> None:
    ids = np.sort(np.concatenate([b["id"] for b in ds.iter_batches(batch_size=None)]))
    assert np.array_equal(ids, np.arange(N))  # each row exactly once


def test_task_worker_killed_mid_pipeline_gives_exact_result(tmp_path):
    marker = str(tmp_path / "died")
    ds = (ed.range(N, override_num_blocks=BLOCKS)
          .map_batches(_double_or_die, fn_kwargs={"marker": marker}, batch_size=5000))
    _check_exact(ds)
    assert os.path.exists(marker)  # the kill really happened
    assert ed.init().tasks_retried >= 1


def test_actor_killed_mid_pipeline_is_restarted_and_result_is_exact(tmp_path):
    marker = str(tmp_path / "died")
    ds = (ed.range(N, override_num_blocks=BLOCKS)
          .map_batches(DoubleOrDie, fn_constructor_args=(marker,), concurrency=2,
                       batch_size=5000))
    _check_exact(ds)
    assert os.path.exists(marker)
    assert ds.sum("twice") == N * (N - 1)  # re-executes; the marker keeps it alive


def _row_or_die(row, marker):
    if row["id"] == N // 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return row


@pytest.mark.parametrize("call", ["map_batches", "map"])
def test_worker_killed_with_no_retries_left_fails_clearly(tmp_path, call):
    marker = str(tmp_path / "died")
    ds = ed.range(N, override_num_blocks=BLOCKS)
    if call == "map_batches":
        ds = ds.map_batches(_double_or_die, fn_kwargs={"marker": marker}, batch_size=5000,
                            max_retries=0)
    else:  # max_retries comes among the remote args, as in Ray Data
        ds = ds.map(_row_or_die, fn_kwargs={"marker": marker}, max_retries=0)
    with pytest.raises(WorkerCrashedError, match="died"):
        ds.materialize()
    # The cluster replaced the worker and keeps working.
    assert ed.range(1000).map_batches(lambda b: {"id": b["id"] + 1}).sum("id") == 500500
