"""LocalCluster implements the runtime contract (engine/runtime/interfaces.py)."""

from __future__ import annotations

import os
import signal

import pyarrow as pa

from engine.runtime.interfaces import (
    BlockRef,
    FailureEvent,
    NodeResources,
    StoreUsage,
    ValueOutput,
    is_block,
)


def _big_table(rows: int = 100_000) -> pa.Table:
    return pa.table({"x": pa.array(range(rows), pa.int64())})


def _yield_block_and_value():
    yield _big_table(10)
    yield {"a": 1}


def test_put_get_free_and_usage(cluster):
    before = cluster.store_usage()
    assert isinstance(before, StoreUsage)
    ref = cluster.put(_big_table())
    assert is_block(ref) and isinstance(ref, BlockRef) and ref.in_store
    assert cluster.store_usage().used_bytes >= before.used_bytes + ref.size_bytes
    assert cluster.get([ref])[0].num_rows == 100_000
    cluster.free([ref])
    assert cluster.store_usage().used_bytes == before.used_bytes


def test_keep_lets_a_block_spill(make_cluster):
    small = make_cluster(num_cpus=1, memory_budget=1 << 20)
    refs = [small.put(_big_table(100_000)) for _ in range(3)]  # 800 KB each
    for ref in refs:
        small.keep(ref)
    usage = small.store_usage()
    assert usage.used_bytes <= usage.budget_bytes
    assert usage.spilled_bytes_total > 0
    assert [r.get().num_rows for r in refs] == [100_000] * 3  # read back from disk


def test_outputs_are_typed(cluster):
    outputs = list(cluster.submit(_yield_block_and_value).iter_outputs())
    assert is_block(outputs[0]) and outputs[0].num_rows == 10
    assert isinstance(outputs[1], ValueOutput) and outputs[1].value == {"a": 1}
    assert not is_block(outputs[1])


def test_nodes_and_resources(cluster):
    (node,) = cluster.nodes()
    assert isinstance(node, NodeResources)
    assert node.total["CPU"] == cluster.num_cpus
    assert cluster.cluster_resources()["object_store_memory"] > 0


def _sleep_then_yield(path):
    import time

    open(path, "w").close()
    time.sleep(60)
    yield 1


def test_failure_listener_hears_a_dead_worker(cluster, rt, tmp_path):
    events: list[FailureEvent] = []
    remove = cluster.add_failure_listener(events.append)
    started = str(tmp_path / "started")
    handle = cluster.submit(_sleep_then_yield, (started,), max_retries=1)
    rt.wait_until(lambda: os.path.exists(started))
    victim = next(w for w in cluster._workers.values() if w.tasks)
    os.kill(victim.pid, signal.SIGKILL)
    rt.wait_until(lambda: any(e.kind == "worker_died" for e in events))
    assert any(e.kind == "task_retried" for e in events)
    handle.cancel()
    remove()
    count = len(events)
    victim = next(w for w in cluster._workers.values() if w.actor_id is None)
    os.kill(victim.pid, signal.SIGKILL)
    rt.wait_until(lambda: victim.worker_id not in cluster._workers)
    assert len(events) == count  # removed listeners hear nothing
