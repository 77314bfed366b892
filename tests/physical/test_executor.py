"""The streaming executor end to end: bounded memory under a slow consumer, limits that stop
upstream work, no deadlock with actor pools as large as the machine, deterministic order,
and failures that cancel work and leave the cluster usable.

These tests start workers. None asserts on timing: sleeps only slow a consumer or a UDF
down so that the executor has to make the decision under test.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import engine as ed
from engine import session
from engine.physical.operators.map_operator import ActorPoolMapOperator, MapOperator

MiB = 1 << 20


_started: dict[str, object] = {}  # the configuration of the cluster this module started


def _cluster_with(num_cpus: int, budget: int | None = None):
    """A cluster of ``num_cpus`` (and store ``budget``), restarted only when it differs."""
    config = (num_cpus, budget)
    if not session.is_initialized() or _started.get("config") != config:
        ed.shutdown()
        ed.init(num_cpus=num_cpus, object_store_memory=budget)
        _started["config"] = config
    return session.get_cluster()


@pytest.fixture(scope="module", autouse=True)
def _shutdown_after_module():
    ed.shutdown()
    yield
    ed.shutdown()
    _started.clear()


@pytest.fixture
def two_cpus():
    """A 2-CPU cluster, for tests whose point depends on the number of CPUs."""
    return _cluster_with(2)


def _wait_idle(cluster, timeout: float = 30.0) -> None:
    """Poll until the cluster runs no task (a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while cluster._tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cluster._tasks, f"tasks still running: {list(cluster._tasks)}"


def _map_ops(ds) -> list[MapOperator]:
    return [op for op in ds._last_executor.ops if isinstance(op, MapOperator)]


# ------------------------------------------------------------------------ memory bounds


def _plus_one(batch):
    return {"id": batch["id"] + 1}


def _times_two(batch):
    return {"id": batch["id"] * 2}


@pytest.fixture
def small_store(fresh_context):
    budget = 32 * MiB
    fresh_context.memory_budget = budget
    return _cluster_with(2, budget)


def test_slow_consumer_keeps_store_within_budget(small_store, fresh_context):
    cluster = small_store
    budget = cluster.store.budget_bytes
    assert budget == 32 * MiB
    rows_per_block = MiB // 8  # int64: 1 MiB per block
    num_blocks = 200
    ds = (ed.range(num_blocks * rows_per_block, override_num_blocks=num_blocks)
          .map_batches(_plus_one, num_cpus=1)
          .map_batches(_times_two, num_cpus=0.5))  # different num_cpus: not fused
    credits = fresh_context.task_output_credits
    block_bytes = 1.05 * MiB  # an IPC file of 1 MiB of data plus its header
    rows = 0
    checksum = 0
    peak = 0
    batches = ds.iter_batches(batch_size=None, prefetch_batches=1)
    for batch in batches:
        rows += len(batch["id"])
        checksum += int(batch["id"].sum())
        executor = ds._last_executor
        running = sum(op.num_running for op in executor.ops)
        used = cluster.store.used_bytes
        peak = max(peak, used)
        assert used <= budget + running * credits * block_bytes, (
            f"store holds {used} bytes with {running} tasks running; budget {budget}")
        # every queue stays within its cap, give or take the one item that crossed it
        cap = executor.queue_cap + block_bytes
        assert executor.output_bytes <= cap
        for op in executor.ops:
            assert all(b <= cap for b in op.inqueue_bytes), (op.name, op.inqueue_bytes)
        time.sleep(0.005)  # a slow consumer: the pipeline must wait for it
    n = num_blocks * rows_per_block
    assert rows == n
    assert checksum == 2 * (n * (n - 1) // 2 + n)
    assert [type(op).__name__ for op in ds._last_executor.ops] == [
        "InputDataOperator", "TaskPoolMapOperator", "TaskPoolMapOperator"]
    assert ds._last_executor.summary()["spilled_bytes"] == 0  # a stream never spills
    assert peak > 0


# ------------------------------------------------------------------------ limit


def test_limit_stops_upstream_tasks(two_cpus):
    ds = ed.range(10_000, override_num_blocks=100).map_batches(_plus_one)
    limited = ds.limit(5)
    rows = limited.take_all()
    assert len(rows) == 5
    assert all(1 <= r["id"] <= 10_000 for r in rows)
    (map_op,) = _map_ops(limited)
    assert map_op.stats.tasks_submitted < 20, map_op.stats
    summary = limited._last_executor.summary()
    assert summary["operators"][-1].rows_out == 5


# ------------------------------------------------------------------------ no deadlock


class AddOne:
    def __init__(self, amount: int = 1):
        self.amount = amount

    def __call__(self, batch):
        return {"id": batch["id"] + self.amount}


N = 10**6
EXPECTED_SUM = N * (N - 1) // 2 + N


def _sum_ids(ds) -> tuple[int, int]:
    rows = total = 0
    for batch in ds.iter_batches(batch_size=65536):
        rows += len(batch["id"])
        total += int(batch["id"].sum())
    return rows, total


@pytest.mark.parametrize("optimizer", ["on", "off", "no-fusion"])
def test_actor_pool_as_large_as_machine_does_not_deadlock(two_cpus, fresh_context, optimizer):
    if optimizer == "off":
        fresh_context.optimizer_enabled = False
    elif optimizer == "no-fusion":
        fresh_context.disabled_rules = frozenset({"FuseMaps"})
    ds = ed.range(N).map_batches(AddOne, concurrency=2)
    assert _sum_ids(ds) == (N, EXPECTED_SUM)
    (pool,) = [op for op in ds._last_executor.ops if isinstance(op, ActorPoolMapOperator)]
    assert pool.stats.extra["actors_started"] == 2


@pytest.mark.parametrize("optimizer", ["on", "no-fusion"])
def test_task_stage_before_full_actor_pool_does_not_deadlock(two_cpus, fresh_context,
                                                             optimizer):
    if optimizer == "no-fusion":
        fresh_context.disabled_rules = frozenset({"FuseMaps"})
    ds = (ed.range(N, override_num_blocks=20).map_batches(_times_two)
          .map_batches(AddOne, concurrency=2, batch_size=4096))
    rows, total = _sum_ids(ds)
    assert rows == N
    assert total == 2 * (N * (N - 1) // 2) + N


def _wide_rows(batch):
    return {"id": batch["id"], "x": np.ones((len(batch["id"]), 1024), dtype=np.uint8)}


def test_more_task_stages_than_cpus_do_not_deadlock(two_cpus, fresh_context):
    # Unfused, six task stages share two CPUs; each task streams far more blocks than its
    # credits, so upstream tasks sit waiting on full queues while downstream stages need
    # slots. A stage count above the CPU count once starved every stage of a slot.
    fresh_context.optimizer_enabled = False
    ds = ed.range(100_000, override_num_blocks=4)
    for _ in range(6):
        ds = ds.map_batches(_wide_rows, batch_size=1000)
    rows = sum(len(b["id"]) for b in ds.iter_batches(batch_size=1000))
    assert rows == 100_000
    assert len([op for op in ds._last_executor.ops if isinstance(op, MapOperator)]) >= 6


def test_autoscaling_actor_pool(two_cpus):
    ds = ed.range(N, override_num_blocks=20).map_batches(AddOne, concurrency=(1, 2))
    assert _sum_ids(ds) == (N, EXPECTED_SUM)
    (pool,) = [op for op in ds._last_executor.ops if isinstance(op, ActorPoolMapOperator)]
    assert (pool.min_size, pool.max_size) == (1, 2)
    assert 1 <= pool.stats.extra["actors_started"] <= 2
    assert not pool.actors  # idle actors are released at the end


# ------------------------------------------------------------------------ order


def _slow_early_blocks(batch):
    # earlier blocks finish later: without preserve_order they would come out last
    first = int(batch["id"][0]) if len(batch["id"]) else 0
    time.sleep(0.002 * max(0, 20 - first // 50))
    return {"id": batch["id"]}


def test_preserve_order_is_deterministic(fresh_context):
    fresh_context.execution_options.preserve_order = True
    ds = (ed.range(1000, override_num_blocks=20).map_batches(_slow_early_blocks)
          .filter(lambda r: r["id"] % 7 != 0).map(lambda r: {"id": r["id"] * 3}))
    expected = [i * 3 for i in range(1000) if i % 7 != 0]
    for _ in range(2):
        assert [r["id"] for r in ds.take_all()] == expected
    batches = list(ds.iter_batches(batch_size=100))
    assert np.concatenate([b["id"] for b in batches]).tolist() == expected


def test_preserve_order_through_actor_pool(fresh_context):
    fresh_context.execution_options.preserve_order = True
    ds = (ed.range(2000, override_num_blocks=16).map_batches(_slow_early_blocks)
          .map_batches(AddOne, concurrency=2, batch_size=100))
    assert [r["id"] for r in ds.take_all()] == list(range(1, 2001))


def test_without_preserve_order_same_rows():
    ds = ed.range(1000, override_num_blocks=20).map_batches(_slow_early_blocks)
    assert sorted(r["id"] for r in ds.take_all()) == list(range(1000))


# ------------------------------------------------------------------------ failures


def _fail_first_block_then_stream_slowly(batch):
    if batch["id"][0] == 0:
        raise ValueError("block zero is bad")
    for _ in range(50):  # a long task that yields often: cancellable between outputs
        time.sleep(0.02)
        yield {"id": batch["id"]}


def test_error_cancels_work_and_cluster_stays_usable(two_cpus):
    ds = ed.range(20, override_num_blocks=20).map_batches(_fail_first_block_then_stream_slowly)
    with pytest.raises(ValueError, match="block zero is bad"):
        ds.take_all()
    (map_op,) = _map_ops(ds)
    assert map_op.stats.tasks_submitted < 20  # the rest never started
    _wait_idle(two_cpus)
    assert two_cpus.store.used_bytes == 0
    assert ed.range(100).map_batches(_plus_one).sum("id") == sum(range(1, 101))


def test_error_in_iter_batches_stops_execution(two_cpus):
    ds = ed.range(20, override_num_blocks=20).map_batches(_fail_first_block_then_stream_slowly)
    with pytest.raises(ValueError, match="block zero is bad"):
        for _ in ds.iter_batches(batch_size=1):
            pass
    _wait_idle(two_cpus)
    assert ed.range(10).take_all() == [{"id": i} for i in range(10)]


def test_actor_constructor_error_fails_fast_and_cluster_stays_usable(two_cpus):
    class Broken:
        def __init__(self):
            raise RuntimeError("cannot build the model")

        def __call__(self, batch):
            return batch

    with pytest.raises(RuntimeError, match="cannot build the model"):
        ed.range(100).map_batches(Broken, concurrency=2).take_all()
    _wait_idle(two_cpus)
    assert ed.range(5).map_batches(AddOne, concurrency=1).take_all() == [
        {"id": i} for i in range(1, 6)]


def test_early_break_stops_execution(two_cpus):
    ds = ed.range(2000, override_num_blocks=40).map_batches(_slow_early_blocks)
    for i, _ in enumerate(ds.iter_batches(batch_size=10)):
        if i == 2:
            break
    executor = ds._last_executor
    deadline = time.monotonic() + 30
    while executor._thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not executor._thread.is_alive()
    (map_op,) = _map_ops(ds)
    assert map_op.stats.tasks_submitted < 40
    _wait_idle(two_cpus)


# ------------------------------------------------------------------------ bundling


def test_vectorized_stages_over_existing_blocks_take_several_blocks_a_task(two_cpus):
    ds = ed.range(16_000, override_num_blocks=16).materialize()
    assert ds.num_blocks() == 16
    kept = ds.filter(expr=ed.col("id") % 2 == 0).with_column("h", ed.col("id") / 2)
    assert kept.sum("h") == sum(i / 2 for i in range(0, 16_000, 2))
    (stage,) = _map_ops(kept)
    assert stage.stats.tasks_finished == 4  # two tasks a CPU, four blocks each
    # A Python UDF keeps one task per block, as in Ray Data.
    udf = ds.map_batches(lambda b: {"id": b["id"] + 1})
    assert udf.sum("id") == sum(range(1, 16_001))
    assert _map_ops(udf)[0].stats.tasks_finished == 16
