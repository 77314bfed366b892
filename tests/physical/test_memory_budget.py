"""A hard memory budget for every execution: what the store holds stays within 1.5x of the
budget plus one block per running task, whatever the pipeline keeps or how many run."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import engine
from engine import session

MiB = 1 << 20
BUDGET = 64 * MiB
ROW = MiB  # bytes per row


def _rows_of_one_mib(batch):
    ids = batch["id"]
    data = np.repeat(ids.astype(np.uint8)[:, None], ROW, axis=1)  # each row: 1 MiB of id % 256
    return {"id": ids, "data": data}


@pytest.fixture
def small_store():
    """A 2-CPU cluster whose store holds 64 MiB (restarted after the test)."""
    engine.shutdown()
    engine.init(num_cpus=2, object_store_memory=BUDGET)
    cluster = session.get_cluster()
    yield cluster
    engine.shutdown()


def _reset_peak(cluster) -> None:
    cluster.store.peak_bytes = cluster.store.used_bytes


def _bound(block_bytes: int, running_tasks: int) -> float:
    return 1.5 * BUDGET + running_tasks * block_bytes


def _check_rows(ids: np.ndarray, data: np.ndarray) -> None:
    assert np.array_equal(data[:, 0], ids.astype(np.uint8))
    assert np.array_equal(data[:, -1], ids.astype(np.uint8))


@pytest.mark.slow
def test_materialize_four_times_the_budget_spills_as_it_goes(small_store):
    _reset_peak(small_store)
    rows = 4 * BUDGET // ROW  # 256 MiB
    ds = engine.range(rows, override_num_blocks=rows // 4).map_batches(_rows_of_one_mib)
    mat = ds.materialize()
    peak = small_store.store.peak_bytes
    assert peak <= _bound(4 * MiB, small_store.num_cpus), peak / MiB
    assert small_store.store_usage().spilled_bytes_total > 0
    assert "Spilled to disk" in mat.stats()
    seen = []
    for batch in mat.iter_batches(batch_size=16):  # spilled blocks read back transparently
        _check_rows(batch["id"], batch["data"])
        seen.extend(batch["id"].tolist())
    assert sorted(seen) == list(range(rows))
    assert small_store.store.peak_bytes <= _bound(4 * MiB, small_store.num_cpus)


@pytest.mark.slow
def test_a_block_larger_than_the_budget_goes_straight_to_disk(small_store):
    rows = BUDGET // ROW + 8  # one block of 72 MiB
    ds = engine.range(rows, override_num_blocks=1).map_batches(_rows_of_one_mib, batch_size=None)
    total = 0
    for batch in ds.iter_batches(batch_size=8):
        _check_rows(batch["id"], batch["data"])
        total += len(batch["id"])
    assert total == rows
    assert small_store.store_usage().spilled_bytes_total >= rows * ROW


@pytest.mark.slow
def test_concurrent_pipelines_share_one_budget(small_store):
    """4 streaming pipelines and 8 small ones, at once from threads: all exact."""
    _reset_peak(small_store)
    results: dict[str, int] = {}
    errors: list[BaseException] = []

    # Every streaming consumer stalls after its first batch until all four have started:
    # meanwhile each execution fills its queues, which must share one budget.
    stalled = threading.Barrier(4)

    def streaming(name: str) -> None:
        ds = engine.range(96, override_num_blocks=24).map_batches(_rows_of_one_mib)
        total = 0
        for i, batch in enumerate(ds.iter_batches(batch_size=4, prefetch_batches=0)):
            if i == 1:
                stalled.wait()
            _check_rows(batch["id"], batch["data"])
            total += int(batch["id"].sum())
        results[name] = total

    def small(name: str) -> None:
        results[name] = engine.range(1000).map_batches(lambda b: {"id": b["id"] * 2}).sum("id")

    def run(fn, name):
        try:
            fn(name)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(streaming, f"s{i}")) for i in range(4)]
    threads += [threading.Thread(target=run, args=(small, f"m{i}")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(results[f"s{i}"] == sum(range(96)) for i in range(4))
    assert all(results[f"m{i}"] == 2 * sum(range(1000)) for i in range(8))
    running_cap = small_store.num_cpus + small_store.max_extra_workers
    peak = small_store.store.peak_bytes
    assert peak <= _bound(4 * MiB, running_cap), peak / MiB


@pytest.mark.slow
def test_an_execution_budget_below_the_store_spills_kept_blocks(fresh_context):
    """DataContext.memory_budget smaller than the store's: materialize() stays within it."""
    budget = 32 * MiB
    fresh_context.memory_budget = budget
    cluster = session.get_cluster()
    base = cluster.store_usage().used_bytes
    _reset_peak(cluster)
    rows = 4 * budget // ROW
    mat = engine.range(rows, override_num_blocks=rows // 4).map_batches(_rows_of_one_mib) \
        .materialize()
    assert cluster.store.peak_bytes - base <= 1.5 * budget + cluster.num_cpus * 4 * MiB
    assert sorted(mat.to_pandas()["id"]) == list(range(rows))
    del mat


class _GpuModel:
    def __init__(self) -> None:
        import os

        self.device = os.environ.get("CUDA_VISIBLE_DEVICES")

    def __call__(self, batch):
        return {"id": batch["id"], "device": [self.device] * len(batch["id"])}


@pytest.fixture
def one_gpu():
    """A cluster that hands out one (pretend) GPU through CUDA_VISIBLE_DEVICES."""
    engine.shutdown()
    engine.init(num_cpus=2, num_gpus=1)
    yield session.get_cluster()
    engine.shutdown()


@pytest.mark.slow
def test_autoscaling_gpu_pool_never_grows_past_the_gpus(one_gpu):
    ds = engine.range(400, override_num_blocks=40).map_batches(
        _GpuModel, concurrency=(1, 3), num_gpus=1, batch_size=10)
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == list(range(400))
    assert {r["device"] for r in rows} == {"0"}
    assert "actors_started: 1" in ds.stats()


def _slow(batch):
    import time

    time.sleep(0.02)
    return batch


def test_stats_show_time_waiting_on_cpus(fresh_context):
    fresh_context.execution_options.resource_limits.cpu = 1
    ds = engine.range(40, override_num_blocks=8).map_batches(_slow)
    assert ds.sum("id") == sum(range(40))
    assert "on CPUs" in ds.stats()


@pytest.mark.slow
def test_a_lagging_split_rank_stays_within_the_budget(small_store):
    """streaming_split(2, equal=True), the second rank starting late: its share is spilled
    or the first rank waits; the store never holds the stream."""
    _reset_peak(small_store)
    rows = 4 * BUDGET // ROW
    ds = engine.range(rows, override_num_blocks=rows // 4).map_batches(_rows_of_one_mib)
    first, second = ds.streaming_split(2, equal=True)
    halfway = threading.Event()
    seen: dict[int, list[int]] = {0: [], 1: []}

    def consume(rank: int, it) -> None:
        for batch in it.iter_batches(batch_size=4):
            _check_rows(batch["id"], batch["data"])
            seen[rank].extend(batch["id"].tolist())
            if rank == 0 and len(seen[0]) >= rows // 4:
                halfway.set()

    late = threading.Thread(target=lambda: (halfway.wait(), consume(1, second)))
    late.start()
    consume(0, first)
    late.join()
    assert len(seen[0]) == len(seen[1]) == rows // 2
    assert sorted(seen[0] + seen[1]) == list(range(rows))
    peak = small_store.store.peak_bytes
    assert peak <= _bound(4 * MiB, small_store.num_cpus), peak / MiB


def test_custom_resources_the_cluster_lacks_fail_when_the_plan_is_built():
    from engine.errors import ResourceUnavailableError

    ds = engine.range(4).map_batches(lambda b: b, resources={"accelerator_x": 1})
    with pytest.raises(ResourceUnavailableError, match=r"resources=\{'accelerator_x': 1\}"):
        ds.take_all()
    with pytest.raises(ValueError, match="non-negative"):
        engine.range(4).map(lambda r: r, resources={"x": -1})


class _Echo:
    def __call__(self, batch):
        return batch


def test_actor_pools_pass_memory_and_resources_to_the_runtime(monkeypatch):
    cluster = session.get_cluster()
    seen: list[dict] = []
    create = cluster.create_actor

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return create(*args, **{k: v for k, v in kwargs.items() if k != "resources"})

    monkeypatch.setattr(cluster, "create_actor", spy)
    monkeypatch.setattr(cluster, "cluster_resources",
                        lambda: {"CPU": 2.0, "GPU": 0.0, "object_store_memory": 1e9,
                                 "accelerator_x": 4.0})
    out = engine.range(8).map_batches(_Echo, concurrency=1, memory=1 << 20,
                                      resources={"accelerator_x": 1}).take_all()
    assert sorted(r["id"] for r in out) == list(range(8))
    assert seen and seen[0]["memory"] == 1 << 20
    assert seen[0]["resources"] == {"accelerator_x": 1.0}
