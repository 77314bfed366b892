"""Tasks on a LocalCluster: round trips, streamed and value outputs, the per-worker function
cache, zero-copy reads, user errors, and credit-based backpressure."""

from __future__ import annotations

import gc
import os
import pickle
import sys
import time
import uuid

import cloudpickle
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import engine
from engine.runtime.interfaces import BlockRef, RemoteError, ValueOutput

# Ship this module's functions by value: workers never import the test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

BIG_ROWS = 20_000  # 160 KB of int64: above the 64 KiB inline limit, so stored
ENGINE_DIR = os.path.dirname(os.path.abspath(engine.__file__))


def int_table(value: int, rows: int) -> pa.Table:
    return pa.table({"i": pa.array(np.full(rows, value, dtype=np.int64))})


# ---------------------------------------------------------------- functions run on workers


def add(a, b):
    return a + b


def add_one(table):
    return table.set_column(0, "i", pc.add(table["i"], 1))


def stream_tables(sizes):
    for i, rows in enumerate(sizes):
        yield int_table(i, rows)


def stream_chunked(sizes):
    for i, rows in enumerate(sizes):
        half = int_table(i, rows // 2)
        yield pa.concat_tables([half, half, int_table(i, rows - 2 * (rows // 2))])


def stream_values(n):
    for i in range(n):
        yield {"partial": i, "pid": os.getpid()}


def return_nothing():
    return None


class TokenFn:
    """A callable whose unpickling draws a fresh token: one token per copy in a worker."""

    def __init__(self) -> None:
        self.token = "driver"

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.token = uuid.uuid4().hex

    def __call__(self, i):
        return (os.getpid(), self.token, i)


def mapped_ranges(path):
    """Address ranges of this process's mappings of ``path``."""
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].strip() == path:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                ranges.append((lo, hi))
    return ranges


def buffer_in_mapping(table, path):
    address = table.column(0).chunk(0).buffers()[1].address
    return any(lo <= address < hi for lo, hi in mapped_ranges(path))


class CustomError(Exception):
    pass


def raise_value_error(attempts_file):
    with open(attempts_file, "a") as f:
        f.write("attempt\n")
    raise ValueError("bad value 42")


def raise_mid_stream():
    yield int_table(0, 3)
    yield int_table(1, 3)
    raise CustomError("stream broke after two blocks")


def fail_to_load():
    raise RuntimeError("this value cannot be loaded in the driver")


class LoadsOnlyInWorkers:
    def __reduce__(self):
        return (fail_to_load, ())


def yield_unloadable_value():
    yield int_table(0, 3)
    yield LoadsOnlyInWorkers()
    yield int_table(1, 3)


def produce(n, rows, log_file):
    for i in range(n):
        with open(log_file, "a") as f:
            f.write(f"{i}\n")
        yield int_table(i, rows)


def wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def blocked(release_file):
    wait_for_file(release_file)
    return "released"


# ---------------------------------------------------------------- 1. round trips


def test_task_round_trip_returns_value(cluster):
    handle = cluster.submit(add, (2, 40))
    outputs = list(handle.iter_outputs(timeout=60))
    assert len(outputs) == 1 and isinstance(outputs[0], ValueOutput)
    assert outputs[0].value == 42
    assert handle.done and handle.error is None


def test_task_takes_block_refs_and_returns_a_block(cluster):
    small, big = cluster.put(int_table(1, 5)), cluster.put(int_table(7, BIG_ROWS))
    assert not small.in_store and big.in_store
    for ref, value, rows in ((small, 2, 5), (big, 8, BIG_ROWS)):
        (out,) = cluster.submit(add_one, (ref,)).iter_outputs(timeout=60)
        assert isinstance(out, BlockRef) and out.num_rows == rows
        assert out.get()["i"].to_pylist() == [value] * rows


def test_streamed_outputs_arrive_in_order_inline_or_stored(cluster, rt):
    sizes = [1, BIG_ROWS, 10, 2 * BIG_ROWS, 3, BIG_ROWS + 1]
    refs = list(cluster.submit(stream_tables, (sizes,)).iter_outputs(timeout=60))
    assert [r.num_rows for r in refs] == sizes
    for i, (ref, rows) in enumerate(zip(refs, sizes, strict=True)):
        assert isinstance(ref, BlockRef)
        stored = rows * 8 > cluster.inline_max_bytes
        assert ref.in_store is stored, (i, ref)
        if stored:
            assert os.path.dirname(ref.path) == cluster.store.dir and os.path.exists(ref.path)
        else:
            assert ref.inline is not None
        assert ref.get()["i"].to_pylist() == [i] * rows
        assert ref.schema == pa.schema([("i", pa.int64())])
    stored_refs = [r for r in refs if r.in_store]
    assert len(rt.block_files(cluster)) == len(stored_refs) == 3
    assert cluster.store.used_bytes == sum(r.size_bytes for r in stored_refs)


def test_many_tasks_complete_on_the_same_workers(cluster, rt):
    notified = []
    handles = [cluster.submit(add, (i, i), notify=lambda: notified.append(1))
               for i in range(100)]
    assert [next(h.iter_outputs(timeout=60)).value for h in handles] == [2 * i for i in
                                                                         range(100)]
    assert all(h.wait(60) and h.error is None for h in handles)
    rt.wait_until(lambda: len(notified) == 200, what="a notification per output and per end")
    assert cluster.workers_started == cluster.num_cpus and cluster.tasks_retried == 0


def test_chunked_tables_arrive_as_single_chunk_blocks(cluster):
    sizes = [4, 2 * BIG_ROWS]
    refs = list(cluster.submit(stream_chunked, (sizes,)).iter_outputs(timeout=60))
    assert [r.in_store for r in refs] == [False, True]
    for i, (ref, rows) in enumerate(zip(refs, sizes, strict=True)):
        column = ref.get()["i"]
        assert column.num_chunks == 1, ref  # zero-copy to numpy needs one chunk
        assert column.chunk(0).to_numpy(zero_copy_only=True).tolist() == [i] * rows


def test_value_outputs_and_empty_result(cluster):
    values = list(cluster.submit(stream_values, (4,)).iter_outputs(timeout=60))
    assert all(isinstance(v, ValueOutput) and v.size_bytes > 0 for v in values)
    assert [v.value["partial"] for v in values] == [0, 1, 2, 3]
    assert len({v.value["pid"] for v in values}) == 1
    handle = cluster.submit(return_nothing)
    assert list(handle.iter_outputs(timeout=60)) == []
    assert handle.done and handle.error is None


# ---------------------------------------------------------------- 2. function cache


def test_function_is_shipped_once_per_worker(cluster):
    fn = TokenFn()
    handles = [cluster.submit(fn, (i,)) for i in range(10)]
    results = [next(h.iter_outputs(timeout=60)).value for h in handles]
    assert sorted(r[2] for r in results) == list(range(10))
    tokens_by_pid: dict[int, set[str]] = {}
    for pid, token, _ in results:
        tokens_by_pid.setdefault(pid, set()).add(token)
    assert "driver" not in {r[1] for r in results}  # it really was unpickled remotely
    assert all(len(tokens) == 1 for tokens in tokens_by_pid.values()), tokens_by_pid
    assert len({r[1] for r in results}) <= cluster.num_cpus
    assert set(tokens_by_pid) <= set(cluster.worker_pids())


# ---------------------------------------------------------------- 3. zero-copy reads


def test_stored_block_reads_are_zero_copy_memory_maps(cluster):
    ref = cluster.put(int_table(3, BIG_ROWS))
    table = ref.get()
    assert buffer_in_mapping(table, ref.path)
    arr = table["i"].chunk(0).to_numpy(zero_copy_only=True)
    assert not arr.flags.writeable  # a UDF cannot scribble on a shared block
    # A worker reading the block as a task argument maps the same file.
    (out,) = cluster.submit(buffer_in_mapping, (ref, ref.path)).iter_outputs(timeout=60)
    assert out.value is True
    # So does the driver for a block a worker wrote.
    (produced,) = cluster.submit(stream_tables, ([BIG_ROWS],)).iter_outputs(timeout=60)
    assert produced.in_store and buffer_in_mapping(produced.get(), produced.path)


# ---------------------------------------------------------------- 7. user exceptions


def test_user_exception_is_not_retried_and_keeps_type_message_traceback(cluster, tmp_path):
    attempts = tmp_path / "attempts"
    handle = cluster.submit(raise_value_error, (str(attempts),), max_retries=3)
    assert handle.wait(60)
    error = handle.error
    assert isinstance(error, RemoteError)
    assert error.type_name == "ValueError" and error.exc_type is ValueError
    assert error.message == "bad value 42"
    assert "raise_value_error" in error.traceback and "bad value 42" in error.traceback
    assert ENGINE_DIR not in error.traceback, error.traceback
    assert attempts.read_text().splitlines() == ["attempt"]
    try:
        list(handle.iter_outputs(timeout=60))
    except RemoteError as raised:
        assert raised is error
    else:
        raise AssertionError("iter_outputs did not raise the task's error")
    assert cluster.tasks_retried == 0
    assert pickle.loads(pickle.dumps(error)).message == "bad value 42"  # errors travel
    assert error in {error}  # exceptions hash by identity
    # The cluster stays usable, on both workers.
    results = [cluster.submit(add, (i, 1)) for i in range(4)]
    assert [next(h.iter_outputs(timeout=60)).value for h in results] == [1, 2, 3, 4]


def test_error_mid_stream_keeps_outputs_before_it(cluster):
    handle = cluster.submit(raise_mid_stream)
    received = []
    try:
        for ref in handle.iter_outputs(timeout=60):
            received.append(ref.get()["i"][0].as_py())
    except RemoteError as error:
        assert error.type_name == "CustomError"
        assert error.message == "stream broke after two blocks"
        assert error.exc_type is not None and error.exc_type.__name__ == "CustomError"
    else:
        raise AssertionError("the stream's error was not raised")
    assert received == [0, 1]


def test_output_the_driver_cannot_unpickle_fails_only_its_task(cluster, rt):
    handle = cluster.submit(yield_unloadable_value)
    assert handle.wait(60), "the task never ended"
    assert isinstance(handle.error, RemoteError)
    assert "cannot be loaded in the driver" in str(handle.error)
    rt.wait_until(lambda: len(cluster._idle) == cluster.num_cpus, what="the worker to be idle")
    handles = [cluster.submit(add, (i, 1)) for i in range(4)]
    assert [next(h.iter_outputs(timeout=60)).value for h in handles] == [1, 2, 3, 4]


# ---------------------------------------------------------------- 9. backpressure


def buffered(handle) -> int:
    return len(handle._outputs)


def test_credits_bound_unconsumed_outputs(cluster, rt, tmp_path):
    credits, n = 3, 50
    log = tmp_path / "produced"
    handle = cluster.submit(produce, (n, BIG_ROWS, str(log)), credits=credits)
    rt.wait_until(lambda: buffered(handle) >= credits, what="the first outputs")
    assert rt.wait_stable(lambda: buffered(handle)) == credits
    assert not handle.done
    block_size = max(r.size_bytes for r in list(handle._outputs))
    assert cluster.store.used_bytes <= credits * block_size
    assert len(rt.block_files(cluster)) == credits

    taken = handle.take(2)
    assert [r.get()["i"][0].as_py() for r in taken] == [0, 1]
    rt.wait_until(lambda: buffered(handle) >= credits, what="outputs after take()")
    assert rt.wait_stable(lambda: buffered(handle)) == credits
    assert len(rt.block_files(cluster)) == credits + len(taken)

    handle.cancel()
    assert handle.wait(60) and handle.error is None
    assert buffered(handle) == 0  # outputs nobody took are dropped, their blocks freed
    produced = len(log.read_text().splitlines())
    assert produced < n
    assert rt.wait_stable(lambda: len(log.read_text().splitlines())) == produced
    held = sorted(r.block_id for r in taken)
    rt.wait_until(lambda: rt.block_files(cluster) == held, what="untaken blocks to be freed")
    del taken
    gc.collect()
    rt.wait_until(lambda: cluster.store.used_bytes == 0 and not rt.block_files(cluster),
                  what="every block to be freed")
    assert next(cluster.submit(add, (1, 1)).iter_outputs(timeout=60)).value == 2


def test_task_queued_behind_credit_blocked_workers_still_runs(cluster, rt, tmp_path):
    producers = [cluster.submit(produce, (50, BIG_ROWS, str(tmp_path / f"log{k}")),
                                credits=2) for k in range(cluster.num_cpus)]
    for handle in producers:  # every worker now waits for a consumer that never comes
        rt.wait_until(lambda h=handle: buffered(h) >= 2, what="producers to block")
    queued = cluster.submit(add, (1, 2))
    assert next(queued.iter_outputs(timeout=60)).value == 3  # an extra worker ran it
    for handle in producers:
        handle.cancel()
        assert handle.wait(60)
    rt.wait_until(lambda: len(rt.live_workers(cluster)) == cluster.num_cpus,
                  what="the extra worker to retire")
    rt.wait_until(lambda: cluster.store.used_bytes == 0, what="cancelled outputs freed")


def test_cancel_before_start(cluster, rt, tmp_path):
    release = str(tmp_path / "release")
    busy = [cluster.submit(blocked, (release,)) for _ in range(cluster.num_cpus)]
    queued = cluster.submit(add, (1, 2))
    queued.cancel()
    assert queued.wait(60) and queued.error is None
    assert list(queued.iter_outputs(timeout=60)) == []
    open(release, "w").close()
    assert [next(h.iter_outputs(timeout=60)).value for h in busy] == ["released"] * 2
