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


# ---------------------------------------------------------------- system failures


def test_actor_pool_pipeline_after_the_zygote_was_killed(tmp_path):
    cluster = ed.init()
    old = cluster.zygote_pid()
    os.kill(old, signal.SIGKILL)
    ds = (ed.range(N, override_num_blocks=BLOCKS)
          .map_batches(DoubleOrDie, fn_constructor_args=(str(tmp_path / "never"),),
                       concurrency=2, batch_size=5000))
    (tmp_path / "never").write_text("")  # no kills: only the zygote is gone
    _check_exact(ds)
    assert cluster.zygote_pid() != old


def _arm_write_failure(marker: str, always: bool) -> None:
    """Make this worker's next block write fail with ENOSPC (once overall, or always: while
    ``marker``, which the test creates and removes, exists)."""
    import errno

    import engine.runtime.worker as worker_module

    if always:
        if not os.path.exists(marker):
            return  # disarmed: a task still running after the test never re-arms it
    elif os.path.exists(marker):
        return
    else:
        open(marker, "w").close()
    real = worker_module.write_block_file

    def disk_full(path, table):
        if not always or not os.path.exists(marker):
            worker_module.write_block_file = real
            if always:  # disarmed
                return real(path, table)
        raise OSError(errno.ENOSPC, "No space left on device")

    worker_module.write_block_file = disk_full


def _double_with_full_disk(batch, marker, always):
    _arm_write_failure(marker, always)
    return {"id": batch["id"], "pad": np.zeros((len(batch["id"]), 8))}  # stored, not inline


def test_failed_block_write_is_retried_not_skipped(tmp_path, fresh_context):
    fresh_context.max_errored_blocks = -1  # a user error would be dropped: this must not be
    marker = str(tmp_path / "armed")
    ds = (ed.range(N, override_num_blocks=BLOCKS)
          .map_batches(_double_with_full_disk, fn_kwargs={"marker": marker, "always": False},
                       batch_size=N // BLOCKS))
    _check_exact(ds)
    assert os.path.exists(marker)


def test_block_write_failing_for_good_is_a_store_write_error(tmp_path, fresh_context):
    from engine.errors import StoreWriteError, UserCodeError

    fresh_context.max_errored_blocks = -1
    marker = tmp_path / "m"
    marker.touch()  # armed until removed below
    ds = (ed.range(N, override_num_blocks=BLOCKS)
          .map_batches(_double_with_full_disk, fn_kwargs={"marker": str(marker), "always": True},
                       batch_size=N // BLOCKS, max_retries=1))
    try:
        with pytest.raises(StoreWriteError, match="No space left on device") as info:
            ds.materialize()
        assert not isinstance(info.value, UserCodeError)
    finally:
        marker.unlink()  # the workers' disks are "freed": later writes work again
    assert ed.range(N, override_num_blocks=BLOCKS).sum("id") == N * (N - 1) // 2


def test_lost_block_is_rebuilt_from_its_lineage(fresh_context):
    fresh_context.max_errored_blocks = -1
    mat = ed.range(N, override_num_blocks=BLOCKS).materialize()
    stored = [r for r in mat._refs if r.in_store]
    assert stored, "the materialized blocks are in the store"
    rebuilt = ed.init().blocks_rebuilt
    os.unlink(stored[1].path)
    assert mat.map_batches(lambda b: {"id": b["id"] + 1}).sum("id") == N * (N + 1) // 2
    os.unlink(stored[2].path)
    _check_exact(mat)  # read in the driver: rebuilt as well
    assert ed.init().blocks_rebuilt == rebuilt + 2


def test_lost_block_without_lineage_is_an_object_lost_error_not_a_skipped_block(
        fresh_context):
    import pyarrow as pa

    from engine.errors import ObjectLostError

    fresh_context.max_errored_blocks = -1  # a user error would be dropped: this must not be
    ds = ed.from_arrow([pa.table({"id": np.arange(k * 50_000, (k + 1) * 50_000)})
                        for k in range(4)])  # put by the driver: no task can rebuild them
    victim = [r for r in ds._refs if r.in_store][1]
    os.unlink(victim.path)
    with pytest.raises(ObjectLostError, match=victim.block_id):
        ds.map_batches(lambda b: {"id": b["id"] + 1}).materialize()
    with pytest.raises(ObjectLostError, match=victim.block_id):
        list(ds.iter_batches())


def test_dead_worker_is_not_a_skippable_block(tmp_path, fresh_context):
    fresh_context.max_errored_blocks = -1  # UDF errors would be dropped; a crash must not be
    ds = ed.range(N, override_num_blocks=BLOCKS).map_batches(
        _double_or_die, fn_kwargs={"marker": str(tmp_path / "died")}, batch_size=5000,
        max_retries=0)
    with pytest.raises(WorkerCrashedError, match="died"):
        ds.materialize()
