"""Exchanges under a memory budget a quarter of the data, and with workers killed.

Partition blocks are kept spillable as soon as they are written, so past the budget they
go to disk: results stay exact and the store's peak stays near the budget.
"""

from __future__ import annotations

import os
import signal
import sys

import cloudpickle
import numpy as np
import pytest

import engine as ed
from engine.aggregate import AggregateFn

cloudpickle.register_pickle_by_value(sys.modules[__name__])

MiB = 1 << 20
BUDGET = 8 * MiB
N = 4 * BUDGET // 8  # int64 rows: the data is four times the budget


CLUSTER_INIT = {"num_cpus": 2, "object_store_memory": BUDGET}
pytestmark = pytest.mark.usefixtures("module_cluster")


def _peak(ds: ed.Dataset) -> int:
    assert ds._last_executor is not None
    return int(ds._last_executor.summary()["peak_store_bytes"])


def _consume(ds: ed.Dataset, column: str = "id") -> tuple[int, int]:
    total = rows = 0
    for batch in ds.iter_batches(batch_size=None):
        total += int(batch[column].sum())
        rows += len(batch[column])
    return rows, total


@pytest.mark.slow
def test_shuffle_and_sort_over_budget_are_exact_and_bounded():
    expected = (N, N * (N - 1) // 2)
    shuffled = ed.range(N, override_num_blocks=32).random_shuffle(seed=3)
    assert _consume(shuffled) == expected
    assert _peak(shuffled) <= 1.5 * BUDGET
    ordered = ed.range(N, override_num_blocks=32).random_shuffle(seed=1).sort("id")
    last = -1
    count = 0
    for batch in ordered.iter_batches(batch_size=None):
        ids = batch["id"]
        if len(ids):
            assert ids[0] > last and (np.diff(ids) > 0).all()
            last = int(ids[-1])
            count += len(ids)
    assert count == N
    assert _peak(ordered) <= 1.5 * BUDGET


@pytest.mark.slow
def test_groupby_and_join_over_budget_are_exact_and_bounded():
    ds = ed.range(N, override_num_blocks=32).with_column("k", ed.col("id") % 1000)
    grouped = ds.groupby("k").sum("id")
    sums = {r["k"]: r["sum(id)"] for r in grouped.take_all()}
    ids = np.arange(N)
    expected = np.bincount(ids % 1000, weights=ids).astype(np.int64)
    assert sums == {k: int(v) for k, v in enumerate(expected)}
    assert _peak(grouped) <= 1.5 * BUDGET
    left = ed.range(N // 2, override_num_blocks=16)
    right = ed.range(N // 2, override_num_blocks=16).with_column("v", ed.col("id") * 2)
    joined = left.join(right, "inner", 8)
    assert _consume(joined, "v") == (N // 2, (N // 2) * (N // 2 - 1))
    assert _peak(joined) <= 1.5 * BUDGET


def _count_or_die(marker: str):
    def accumulate(state, block):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return state + block.num_rows

    return AggregateFn(init=lambda k: 0, accumulate_block=accumulate,
                       merge=lambda a, b: a + b, name="rows")


def test_worker_killed_during_the_reduce_gives_exact_results(tmp_path):
    marker = str(tmp_path / "died")
    ds = ed.range(10_000, override_num_blocks=8).with_column("k", ed.col("id") % 7)
    out = ds.groupby("k").aggregate(_count_or_die(marker)).take_all()
    assert os.path.exists(marker)
    assert sorted((r["k"], r["rows"]) for r in out) == \
        [(k, len(range(k, 10_000, 7))) for k in range(7)]


class _DieOnceMidMap:
    """Wraps a map callable: the first call anywhere streams half its partitions, then
    SIGKILLs its worker (a marker file makes the retry succeed)."""

    def __init__(self, inner, marker: str) -> None:
        self.inner = inner
        self.marker = marker

    def __call__(self, tables, seqs=()):
        outputs = self.inner(tables, seqs)
        if os.path.exists(self.marker):
            yield from outputs
            return
        open(self.marker, "w").close()
        for i, table in enumerate(outputs):
            if i == self.inner.num_partitions // 2:
                os.kill(os.getpid(), signal.SIGKILL)
            yield table


def test_worker_killed_during_the_map_gives_exact_results(tmp_path, monkeypatch):
    from engine.physical.exchange import plans

    marker = str(tmp_path / "died")
    original = plans.JoinPlan.map_fn
    monkeypatch.setattr(plans.JoinPlan, "map_fn",
                        lambda self, side: _DieOnceMidMap(original(self, side), marker))
    ctx = ed.DataContext.get_current()
    monkeypatch.setattr(ctx, "broadcast_join_threshold_bytes", 0)
    left = ed.range(20_000, override_num_blocks=8)
    right = ed.range(20_000, override_num_blocks=8).with_column("v", ed.col("id") * 3)
    rows, total = _consume(left.join(right, "inner", 6), "v")
    assert os.path.exists(marker)  # the kill happened
    assert (rows, total) == (20_000, 3 * 20_000 * 19_999 // 2)
