"""``RayCluster`` keeps the runtime contract (engine/runtime/interfaces.py) on Ray: typed
outputs, block accounting, backpressure, cancellation, retries and typed system errors."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
import ray

from engine import session
from engine.errors import ActorDiedError, WorkerCrashedError
from engine.runtime.interfaces import BlockRef, RemoteError, StoreUsage, ValueOutput, is_block

pytestmark = pytest.mark.ray


@pytest.fixture
def rt(ray_single):
    return session.get_cluster()


def _table(rows: int) -> pa.Table:
    return pa.table({"x": pa.array(range(rows), pa.int64())})


def _block_and_value():
    yield _table(10)
    yield {"a": 1}


def test_outputs_are_typed_and_metadata_needs_no_fetch(rt):
    block, value = list(rt.submit(_block_and_value).iter_outputs())
    assert is_block(block) and isinstance(block, BlockRef)
    assert (block.num_rows, block.schema.names) == (10, ["x"])
    assert isinstance(value, ValueOutput) and value.value == {"a": 1}
    assert block.get().column("x").to_pylist() == list(range(10))


def _sum_blocks(tables: list[pa.Table]):
    yield {"rows": sum(t.num_rows for t in tables)}


def test_block_arguments_arrive_as_tables_and_usage_is_counted(rt):
    before = rt.store_usage()
    assert isinstance(before, StoreUsage) and before.budget_bytes > 0
    refs = [rt.put(_table(1000)) for _ in range(3)]
    assert rt.store_usage().used_bytes == before.used_bytes + sum(r.size_bytes for r in refs)
    (out,) = list(rt.submit(_sum_blocks, (refs,)).iter_outputs())
    assert out.value == {"rows": 3000}
    rt.free(refs)
    assert rt.store_usage().used_bytes == before.used_bytes


@ray.remote(num_cpus=0)
class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self) -> None:
        self.n += 1

    def get(self) -> int:
        return self.n


def _counted_stream(counter, n: int):
    for i in range(n):
        ray.get(counter.add.remote())
        yield _table(1 + i)


def test_outputs_nobody_takes_stop_the_producer(rt):
    counter = _Counter.remote()
    handle = rt.submit(_counted_stream, (counter, 100), credits=1)
    assert handle.wait(timeout=0) is False
    while not handle.waiting_for_credit:  # a handshake: the handle holds its one output
        handle.wait(timeout=0.05)
    # one output in the handle, at most 2 * credits + 1 objects (one more output) ahead
    # in Ray's generator buffer, and the one the producer is blocked on yielding
    assert ray.get(counter.get.remote()) <= 4
    taken = []
    while not handle.finished:
        taken += handle.take()
        handle.wait(timeout=0.05)
    taken += handle.take()
    assert [t.num_rows for t in taken] == list(range(1, 101))


def _endless():
    while True:
        yield _table(5)


def test_cancel_stops_the_task(rt):
    handle = rt.submit(_endless, credits=1)
    next(iter(handle.iter_outputs()))
    handle.cancel()
    assert handle.wait(timeout=60) and handle.error is None
    assert handle.take() == []


def _crash_once(marker: str):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the worker process dies mid-task
    yield _table(7)


def test_a_crashed_worker_is_retried(rt, tmp_path):
    outputs = list(rt.submit(_crash_once, (str(tmp_path / "crashed"),),
                             max_retries=2).iter_outputs())
    assert [o.num_rows for o in outputs] == [7]


def _always_crash():
    os._exit(1)
    yield


def test_a_crash_past_max_retries_is_a_typed_error(rt):
    events = []
    remove = rt.add_failure_listener(events.append)
    handle = rt.submit(_always_crash, max_retries=0, name="crasher")
    assert handle.wait(timeout=120)
    remove()
    assert isinstance(handle.error, WorkerCrashedError), repr(handle.error)
    assert [e.kind for e in events] == ["worker_died"] and "crasher" in events[0].detail


def _raise_value_error():
    raise ValueError("bad row 3")
    yield


def test_a_udf_error_is_a_remote_error_with_its_type(rt):
    handle = rt.submit(_raise_value_error)
    assert handle.wait(timeout=120)
    assert isinstance(handle.error, RemoteError)
    assert handle.error.exc_type is ValueError and handle.error.message == "bad row 3"
    assert "_raise_value_error" in handle.error.traceback


class _Holder:
    def __init__(self, base: int) -> None:
        self.base = base


def _add_base(holder: _Holder, x: int):
    yield {"value": holder.base + x}


def _die(holder: _Holder):
    os._exit(1)
    yield


def test_actor_calls_run_in_order_and_a_dead_actor_is_typed(rt):
    actor = rt.create_actor(_Holder, (100,), num_cpus=0.5, max_restarts=0)
    assert actor.ready.wait(60) and actor.alive
    handles = [actor.submit(_add_base, (i,)) for i in range(5)]
    assert [[o.value["value"] for o in h.iter_outputs()] for h in handles] == \
        [[100], [101], [102], [103], [104]]
    dead = actor.submit(_die)
    assert dead.wait(timeout=120)
    assert isinstance(dead.error, ActorDiedError), repr(dead.error)
    actor.kill()
    assert not actor.alive


def test_resources_and_nodes(rt):
    totals = rt.cluster_resources()
    assert totals["CPU"] == 2 and totals["object_store_memory"] > 0 and rt.num_cpus == 2
    actor = rt.create_actor(_Holder, (0,), num_cpus=1)
    assert rt.available_resources()["CPU"] == 1
    actor.kill()
    assert rt.available_resources()["CPU"] == 2
    (node,) = rt.nodes()
    assert node.total["CPU"] == 2


def test_store_usage_reports_rays_spilled_bytes(ray_instances):
    """A 100 MiB object store holding a 240 MiB materialized dataset must spill; the
    runtime reports Ray's count of spilled bytes, and the data reads back exact."""
    import time

    import numpy as np

    import engine as ed

    ray_instances.single(object_store_memory=100 * 1024 * 1024)
    ed.shutdown()
    ed.init(address="auto")
    try:
        cluster = session.get_cluster()
        start = cluster.store_usage().spilled_bytes_total
        rows = 240
        mat = ed.range(rows, override_num_blocks=24).map_batches(
            lambda b: {"id": b["id"], "v": np.repeat(b["id"][:, None], 128 * 1024, axis=1)},
            batch_size=4).materialize()
        # Ray spills while the objects are created; its raylet counts them by then. The
        # runtime refreshes the count in the background: poll it (no timing assumed).
        deadline = time.monotonic() + 120
        while cluster.store_usage().spilled_bytes_total - start < 20 * 1024 * 1024:
            assert time.monotonic() < deadline, cluster.store_usage()
            time.sleep(0.2)
        total = mat.map_batches(lambda b: {"s": b["v"].sum(axis=1)}).sum("s")
        assert total == 128 * 1024 * sum(range(rows))  # spilled blocks restored exact
    finally:
        ed.shutdown()
