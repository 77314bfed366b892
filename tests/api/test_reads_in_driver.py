"""A dataset the driver iterates whose every task is the engine's own code runs those tasks
on the driver's threads (``DataContext.reads_in_driver``, ``engine.runtime.driver_tasks``):
its blocks never enter the shared store, tensors of an unshuffled pass are zero-copy and
writable, and everything else (errors, backpressure, early exit) behaves as on workers."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine
from engine import session
from engine.errors import UserCodeError
from engine.runtime.driver_tasks import DriverTasks

pytestmark = pytest.mark.usefixtures("module_cluster")

ROWS_PER_FILE = 100_000  # 1.6 MB a block: past the inline limit, so a worker stores it


@pytest.fixture
def parquet_dir(tmp_path):
    for i in range(6):
        ids = np.arange(i * ROWS_PER_FILE, (i + 1) * ROWS_PER_FILE)
        pq.write_table(pa.table({"id": ids, "x": ids * 0.5}), tmp_path / f"p{i}.parquet")
    return tmp_path


def _store_used() -> int:
    return session.get_cluster().store_usage().used_bytes


def _driver_task_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("engine-driver-task")]


@pytest.mark.parametrize("shuffle", [None, 50_000])
def test_blocks_of_a_driver_iterated_read_never_enter_the_store(parquet_dir, fresh_context,
                                                                 shuffle):
    ds = engine.read_parquet(str(parquet_dir))
    before = _store_used()
    stored = []
    ids = []
    for batch in ds.iter_batches(batch_size=10_000, local_shuffle_buffer_size=shuffle):
        stored.append(_store_used() - before)
        ids.append(batch["id"])
    assert sorted(np.concatenate(ids).tolist()) == list(range(6 * ROWS_PER_FILE))
    assert stored and max(stored) == 0
    assert isinstance(ds._last_executor.cluster, DriverTasks)


def test_with_reads_in_driver_off_the_workers_read_into_the_store(parquet_dir, fresh_context):
    fresh_context.reads_in_driver = False
    ds = engine.read_parquet(str(parquet_dir))
    before = _store_used()
    stored = [_store_used() - before for _ in ds.iter_batches(batch_size=10_000)]
    assert max(stored) > 0
    assert not isinstance(ds._last_executor.cluster, DriverTasks)


def test_a_pipeline_with_user_code_still_runs_on_workers(parquet_dir, fresh_context):
    import os

    ds = engine.read_parquet(str(parquet_dir)).map_batches(
        lambda b: {"pid": np.full(len(b["id"]), os.getpid())})
    pids = {int(p) for b in ds.iter_batches(batch_size=None) for p in b["pid"]}
    assert os.getpid() not in pids
    assert not isinstance(ds._last_executor.cluster, DriverTasks)


def test_unshuffled_torch_batches_are_zero_copy_and_writable(parquet_dir, fresh_context):
    pytest.importorskip("torch")
    ds = engine.read_parquet(str(parquet_dir))
    seen = 0
    shared = 0
    previous = None
    for batch in ds.iter_torch_batches(batch_size=10_000):
        ids = batch["id"]
        expected = ids.clone()
        ids += 1  # in place: must not fail, and must change only this batch
        assert (ids == expected + 1).all()
        if previous is not None and \
                ids.data_ptr() == previous.data_ptr() + previous.nbytes:
            shared += 1  # the next rows of the same block: views of it, not copies
        previous = ids
        seen += len(ids)
    assert seen == 6 * ROWS_PER_FILE
    assert shared > 0


def test_writing_to_batches_never_changes_a_materialized_dataset(parquet_dir, fresh_context):
    pytest.importorskip("torch")
    kept = engine.read_parquet(str(parquet_dir)).materialize()
    both = kept.union(engine.read_parquet(str(parquet_dir)))
    for batch in both.iter_torch_batches(batch_size=10_000):
        batch["id"].zero_()
    assert sorted(r["id"] for r in kept.take_all()) == list(range(6 * ROWS_PER_FILE))


def test_a_corrupt_file_fails_the_same_way_in_the_driver_as_on_a_worker(parquet_dir,
                                                                       fresh_context):
    (parquet_dir / "p3.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    errors = []
    for on in (True, False):
        fresh_context.reads_in_driver = on
        with pytest.raises(Exception) as info:
            for _ in engine.read_parquet(str(parquet_dir)).iter_batches():
                pass
        errors.append(info.value)
    assert type(errors[0]) is type(errors[1])
    assert "p3.parquet" in str(errors[0]) and "p3.parquet" in str(errors[1])
    assert not isinstance(errors[0], UserCodeError) or isinstance(errors[1], UserCodeError)


def test_a_slow_consumer_holds_driver_tasks_back(tmp_path, fresh_context):
    files = 20
    for i in range(files):
        ids = np.arange(i * ROWS_PER_FILE, (i + 1) * ROWS_PER_FILE)
        pq.write_table(pa.table({"id": ids, "x": ids * 0.5}), tmp_path / f"p{i}.parquet")
    fresh_context.memory_budget = 4 << 20  # output queue: one block
    fresh_context.task_output_credits = 1  # each task: one block waiting to be taken
    gc.collect()  # blocks earlier tests' tracebacks still hold
    tasks = session.driver_tasks()
    assert tasks is not None
    held_before = tasks.heap.used_bytes
    ds = engine.read_parquet(str(tmp_path))
    batches = iter(ds.iter_batches(batch_size=1000, prefetch_batches=0))
    first = next(batches)
    block = pq.read_table(tmp_path / "p0.parquet").nbytes
    time.sleep(1.0)  # time to run ahead, were nothing holding the tasks back
    held = tasks.heap.used_bytes - held_before
    rows = len(first["id"]) + sum(len(b["id"]) for b in batches)
    assert rows == files * ROWS_PER_FILE
    # The block being read, the output queue's, and one per task (at most twice as many
    # tasks as CPUs run when some wait on credits): far from all 20. (Task slots, credits
    # and the memory budget each bound this; the test holds the engine to the result.)
    assert held <= (2 + 2 * 2) * block, f"{held / block:.1f} blocks ahead of a waiting consumer"


def test_leaving_a_pass_early_stops_its_tasks_and_frees_their_blocks(parquet_dir, fresh_context):
    tasks = session.driver_tasks()
    assert tasks is not None
    gc.collect()  # blocks earlier tests' tracebacks still hold
    held_before = tasks.heap.used_bytes
    ds = engine.read_parquet(str(parquet_dir))
    batches = ds.iter_batches(batch_size=1000)
    next(iter(batches))
    batches.close()
    del batches
    deadline = time.monotonic() + 30
    while (_driver_task_threads() or tasks.heap.used_bytes > held_before) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _driver_task_threads()
    assert tasks.heap.used_bytes == held_before


def test_take_and_schema_of_a_read_run_in_the_driver(parquet_dir, fresh_context):
    ds = engine.read_parquet(str(parquet_dir))
    rows = ds.take(3)  # the first rows of whichever read finishes first (no order asked)
    first = rows[0]["id"]
    assert rows == [{"id": i, "x": i * 0.5} for i in range(first, first + 3)]
    assert ds.schema().names == ["id", "x"]
    ids = [r["id"] for r in ds.limit(5).iter_rows()]
    assert len(ids) == 5 and ids == list(range(ids[0], ids[0] + 5))
    fresh_context.execution_options.preserve_order = True
    assert ds.take(3) == [{"id": i, "x": i * 0.5} for i in range(3)]
