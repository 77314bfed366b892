"""Splits: ``split``, ``split_at_indices``, ``split_proportionately``, ``train_test_split``
and ``streaming_split``.

Row splits are checked for exact rows and order on small data, for their errors (naming the
argument) and on empty datasets, against what Ray Data 2.60 returns, plus property tests
that they partition the rows exactly. ``streaming_split`` is checked with consumers on
threads and in child processes (``fork`` and ``spawn``) draining one execution per epoch:
every row delivered exactly once, the upstream UDF run once per block (counted through a
file, a side effect every process sees), exact shares with ``equal=True``, and consumers
that stop early hanging nobody.

These tests start workers. None depends on timing.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import pickle
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed
from engine import session

# A generous bound on joins, so that a bug hangs one test instead of the suite. Never an
# assertion on how long anything took.
JOIN_S = 120


@pytest.fixture(autouse=True)
def _in_order(fresh_context: ed.DataContext) -> None:
    """Row splits keep order; compare exact rows in input order."""
    fresh_context.execution_options.preserve_order = True


def ids(ds: ed.Dataset) -> list[int]:
    return [r["id"] for r in ds.take_all()]


def blocks_of(sizes: list[int]) -> ed.MaterializedDataset:
    """A dataset of consecutive ids whose blocks have exactly these row counts."""
    tables, start = [], 0
    for size in sizes:
        tables.append(pa.table({"id": pa.array(range(start, start + size), pa.int64())}))
        start += size
    return ed.from_arrow(tables)


# ====================================================================== split


def test_split_returns_materialized_datasets_of_whole_blocks_in_order() -> None:
    parts = blocks_of([3, 3, 4]).split(3)
    assert all(type(p) is ed.MaterializedDataset for p in parts)
    assert [ids(p) for p in parts] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]  # as Ray Data


def test_split_balances_rows_over_uneven_blocks() -> None:
    # Ray Data cuts equal block *counts* here: [[0..5], [6, 7, 8], [9]]. This engine cuts at
    # the block boundaries nearest to equal row counts (same runs for equal blocks).
    assert [ids(p) for p in blocks_of([3, 3, 3, 1]).split(3)] == \
        [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert [p.count() for p in blocks_of([1, 1, 1, 1, 6]).split(2)] == [4, 6]


def test_split_into_more_parts_than_blocks_leaves_empty_parts() -> None:
    parts = blocks_of([3, 3, 3, 1]).split(6)
    assert [ids(p) for p in parts] == [[0, 1, 2], [], [3, 4, 5], [], [6, 7, 8], [9]]
    assert all(p.take_all() == [] for p in parts if p.count() == 0)


def test_split_equal_gives_equal_counts_and_drops_the_remainder() -> None:
    parts = ed.range(10, override_num_blocks=3).split(3, equal=True)
    assert [ids(p) for p in parts] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # as Ray Data
    parts = ed.range(10, override_num_blocks=3).split(12, equal=True)
    assert [p.count() for p in parts] == [0] * 12  # as Ray Data: 10 // 12 rows each


def test_split_of_an_empty_dataset() -> None:
    assert [p.count() for p in ed.range(0).split(3)] == [0, 0, 0]
    assert [p.take_all() for p in ed.range(0).split(2, equal=True)] == [[], []]


@pytest.mark.parametrize(("n", "error", "message"), [
    (0, ValueError, "n must be a positive int; got 0"),
    (-2, ValueError, "n must be a positive int; got -2"),
    (1.5, TypeError, "n must be an int; got float"),
    (True, TypeError, "n must be an int; got bool"),
])
def test_split_rejects_a_bad_number_of_splits(n: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        ed.range(10).split(n)


# ====================================================================== split_at_indices


def test_split_at_indices() -> None:
    ds = ed.range(10, override_num_blocks=3)
    assert [ids(p) for p in ds.split_at_indices([2, 5])] == \
        [[0, 1], [2, 3, 4], [5, 6, 7, 8, 9]]
    # Indices past the end and repeated indices give empty splits (as Ray Data).
    assert [ids(p) for p in ds.split_at_indices([5, 20])] == [[0, 1, 2, 3, 4],
                                                              [5, 6, 7, 8, 9], []]
    assert [ids(p) for p in ds.split_at_indices([0, 0])] == [[], [], list(range(10))]
    assert all(type(p) is ed.MaterializedDataset for p in ds.split_at_indices([1]))


def test_split_at_indices_cuts_inside_blocks_and_keeps_other_columns() -> None:
    ds = ed.from_items([{"id": i, "sq": i * i} for i in range(7)], override_num_blocks=2)
    first, second = ds.split_at_indices([2])
    assert first.take_all() == [{"id": 0, "sq": 0}, {"id": 1, "sq": 1}]
    assert [r["sq"] for r in second.take_all()] == [4, 9, 16, 25, 36]


def test_split_at_indices_of_an_empty_dataset() -> None:
    assert [p.count() for p in ed.range(0).split_at_indices([1, 2])] == [0, 0, 0]


@pytest.mark.parametrize(("indices", "error", "message"), [
    ([5, 2], ValueError, "must be sorted"),
    ([-1], ValueError, "non-negative"),
    ([], ValueError, "at least one index"),
    ([2.5], TypeError, "must be ints"),
])
def test_split_at_indices_errors(indices: list[Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        ed.range(10).split_at_indices(indices)


# ====================================================================== split_proportionately


def test_split_proportionately() -> None:
    parts = ed.range(10, override_num_blocks=3).split_proportionately([0.2, 0.5])
    assert [ids(p) for p in parts] == [[0, 1], [2, 3, 4, 5, 6], [7, 8, 9]]
    assert [p.count() for p in ed.range(10).split_proportionately([0.3])] == [3, 7]


@pytest.mark.parametrize(("proportions", "message"), [
    ([0.5, 0.5], "sum to less than 1"),
    ([0.7, 0.5], "sum to less than 1"),
    ([0], "positive"),
    ([-0.1], "positive"),
    ([], "positive"),
    ([0.05], "would leave a split empty"),  # int(10 * 0.05) == 0 rows, as Ray Data refuses
    ([0.01, 0.01, 0.9], "would leave a split empty"),
])
def test_split_proportionately_errors(proportions: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ed.range(10).split_proportionately(proportions)


def test_split_proportionately_of_an_empty_dataset_is_refused_like_ray() -> None:
    with pytest.raises(ValueError, match="would leave a split empty"):
        ed.range(0).split_proportionately([0.5])


# ====================================================================== train_test_split


def test_train_test_split_with_a_fraction_or_a_count() -> None:
    ds = ed.range(10, override_num_blocks=3)
    train, test = ds.train_test_split(0.25)
    assert (ids(train), ids(test)) == ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])  # int(10 * .75)
    train, test = ds.train_test_split(3)
    assert (ids(train), ids(test)) == ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    assert [p.count() for p in ds.train_test_split(1)] == [9, 1]
    assert [p.count() for p in ds.train_test_split(0.01)] == [9, 1]  # as Ray Data
    assert all(type(p) is ed.MaterializedDataset for p in ds.train_test_split(0.5))


def test_train_test_split_shuffles_reproducibly_with_a_seed() -> None:
    ds = ed.range(50, override_num_blocks=4)
    train, test = ds.train_test_split(0.3, shuffle=True, seed=11)
    again = ds.train_test_split(0.3, shuffle=True, seed=11)
    assert (ids(train), ids(test)) == (ids(again[0]), ids(again[1]))
    assert (train.count(), test.count()) == (35, 15)
    assert sorted(ids(train) + ids(test)) == list(range(50))
    assert ids(train) != list(range(35))  # shuffled, not the first 35 rows


@pytest.mark.parametrize(("test_size", "error", "message"), [
    (0, ValueError, r"int test_size must be in \(0, 10\); got 0"),
    (10, ValueError, r"int test_size must be in \(0, 10\); got 10"),
    (11, ValueError, r"int test_size must be in \(0, 10\); got 11"),
    (-1, ValueError, r"int test_size must be in \(0, 10\); got -1"),
    (0.0, ValueError, r"float test_size must be in \(0, 1\); got 0.0"),
    (1.0, ValueError, r"float test_size must be in \(0, 1\); got 1.0"),
    (0.99, ValueError, "would leave a split empty"),  # 0 test rows: Ray Data refuses too
    ("a", TypeError, "test_size must be a float or int; got str"),
    # Ray Data takes True as 1 row; a bool is almost surely a mistake, so it is refused.
    (True, TypeError, "got bool"),
])
def test_train_test_split_errors(test_size: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        ed.range(10).train_test_split(test_size)


def test_train_test_split_of_an_empty_dataset_is_refused_like_ray() -> None:
    with pytest.raises(ValueError, match="would leave a split empty"):
        ed.range(0).train_test_split(0.5)
    with pytest.raises(ValueError, match=r"in \(0, 0\)"):
        ed.range(0).train_test_split(1)


# ====================================================================== row split properties

block_sizes = st.lists(st.integers(0, 7), min_size=0, max_size=7)


@settings(deadline=None, max_examples=25)
@given(sizes=block_sizes, n=st.integers(1, 5))
def test_split_partitions_rows_in_order(sizes: list[int], n: int) -> None:
    ds = blocks_of(sizes)
    total = sum(sizes)
    parts = ds.split(n)
    assert len(parts) == n
    assert [i for p in parts for i in ids(p)] == list(range(total))  # each row exactly once
    equal = ds.split(n, equal=True)
    per = total // n
    assert [ids(p) for p in equal] == [list(range(k * per, (k + 1) * per)) for k in range(n)]
    assert total - n * per < n  # at most n - 1 rows dropped


@settings(deadline=None, max_examples=25)
@given(sizes=block_sizes, cuts=st.lists(st.integers(0, 40), min_size=1, max_size=4))
def test_split_at_indices_gives_the_slices(sizes: list[int], cuts: list[int]) -> None:
    cuts = sorted(cuts)
    total = sum(sizes)
    parts = blocks_of(sizes).split_at_indices(cuts)
    edges = [0, *[min(c, total) for c in cuts], total]
    assert [ids(p) for p in parts] == [list(range(a, b)) for a, b in itertools.pairwise(edges)]


@settings(deadline=None, max_examples=25)
@given(total=st.integers(0, 30),
       proportions=st.lists(st.floats(0.01, 0.6), min_size=1, max_size=3))
def test_split_proportionately_partitions_into_non_empty_splits(
        total: int, proportions: list[float]) -> None:
    ds = ed.range(total, override_num_blocks=3)
    if sum(proportions) >= 1:
        with pytest.raises(ValueError, match="sum to less than 1"):
            ds.split_proportionately(proportions)
        return
    try:
        parts = ds.split_proportionately(proportions)
    except ValueError as exc:
        assert "would leave a split empty" in str(exc)
        # Refused only when the plain cuts int(total * cumulative) leave a split empty.
        raw = [int(total * sum(proportions[:i + 1])) for i in range(len(proportions))]
        assert raw[0] == 0 or any(a == b for a, b in itertools.pairwise(raw))
        return
    counts = [p.count() for p in parts]
    assert len(parts) == len(proportions) + 1
    assert all(c > 0 for c in counts[:-1])
    assert [i for p in parts for i in ids(p)] == list(range(total))


# ====================================================================== streaming_split


class CountCalls:
    """A UDF that appends a line to ``path`` per block it sees: a call counter that every
    process (workers, consumers) can read."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.__name__ = "count_calls"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with open(self.path, "a") as f:
            f.write(f"{len(batch['id'])}\n")
        return batch


def calls(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def drain_on_threads(iterators: list[Any], stop_after: dict[int, int] | None = None) -> \
        list[list[int]]:
    """Each iterator drained by its own thread, all at once; consumer ``i`` breaks after
    ``stop_after[i]`` batches of 4 rows."""
    results: list[list[int]] = [[] for _ in iterators]
    errors: list[BaseException] = []
    stop_after = stop_after or {}

    def consume(i: int) -> None:
        try:
            for k, batch in enumerate(iterators[i].iter_batches(batch_size=4)):
                results[i].extend(int(x) for x in batch["id"])
                if k + 1 == stop_after.get(i):
                    break
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(iterators))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "a consumer hung"
    if errors:
        raise errors[0]
    return results


def store_blocks() -> list[str]:
    """Block files in the store (not its lock, spill record or sockets)."""
    store = session.get_cluster().store
    return [n for n in os.listdir(store.dir) if not n.startswith((".", "split-"))]


def test_streaming_split_returns_data_iterators() -> None:
    its = ed.range(10).streaming_split(3)
    assert len(its) == 3
    assert all(type(it) is ed.DataIterator for it in its)
    for it in its:
        assert callable(it.iter_batches) and callable(it.iter_rows)
        assert callable(it.iter_torch_batches)
    assert its[0].world_size() == 3


@pytest.mark.parametrize(("n", "error"), [(0, ValueError), (-1, ValueError),
                                          (1.5, TypeError), (True, TypeError)])
def test_streaming_split_rejects_a_bad_n(n: Any, error: type) -> None:
    # Ray Data accepts 0 and -1 here and fails later; this engine says so at once.
    with pytest.raises(error, match="streaming_split: n must be"):
        ed.range(10).streaming_split(n)


def test_threads_drain_one_execution_each_row_once(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    ds = ed.range(200, override_num_blocks=8).map_batches(CountCalls(log))
    results = drain_on_threads(ds.streaming_split(3))
    assert sorted(i for r in results for i in r) == list(range(200))
    assert sorted(calls(log)) == [25] * 8  # one execution: each block through the UDF once


def test_equal_split_gives_exact_shares(tmp_path: Path) -> None:
    ds = ed.range(100, override_num_blocks=7).map_batches(CountCalls(tmp_path / "calls"))
    results = drain_on_threads(ds.streaming_split(3, equal=True))
    assert [len(r) for r in results] == [33, 33, 33]  # 100 // 3, as Ray Data
    delivered = [i for r in results for i in r]
    assert len(set(delivered)) == 99 and set(delivered) <= set(range(100))
    assert sum(calls(tmp_path / "calls")) == 100


def test_equal_split_of_one_block_cuts_it_like_ray() -> None:
    results = drain_on_threads(ed.range(10, override_num_blocks=1).streaming_split(
        3, equal=True))
    assert results == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_streaming_split_of_an_empty_dataset() -> None:
    assert drain_on_threads(ed.range(0).streaming_split(2, equal=True)) == [[], []]
    assert drain_on_threads(ed.range(0).streaming_split(2)) == [[], []]


def test_each_pass_is_a_new_execution(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    its = ed.range(60, override_num_blocks=6).map_batches(CountCalls(log)).streaming_split(
        2, equal=True)
    for epoch in range(1, 3):
        results = drain_on_threads(its)
        assert [len(r) for r in results] == [30, 30]
        assert sorted(results[0] + results[1]) == list(range(60))
        assert len(calls(log)) == 6 * epoch


def test_iterators_consumed_one_after_another_in_one_thread() -> None:
    # Ray Data hangs here: its next epoch waits for every consumer to begin it.
    its = ed.range(40, override_num_blocks=4).streaming_split(2, equal=True)
    for _ in range(2):
        rows = [[r["id"] for r in it.iter_rows()] for it in its]
        assert [len(r) for r in rows] == [20, 20]
        assert sorted(rows[0] + rows[1]) == list(range(40))


def padded(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows of 16 KiB: blocks go to the shared store, not inline in messages."""
    return {"id": batch["id"], "pad": np.zeros((len(batch["id"]), 2048))}


@pytest.mark.parametrize("equal", [False, True])
def test_a_consumer_that_stops_early_hangs_nobody_and_leaks_nothing(equal: bool) -> None:
    before = set(store_blocks())
    its = ed.range(400, override_num_blocks=10).map_batches(padded).streaming_split(
        2, equal=equal)
    results = drain_on_threads(its, stop_after={0: 1})
    assert len(results[0]) == 4
    assert not set(results[0]) & set(results[1])
    if equal:
        assert len(results[1]) == 200  # still its exact share, as in Ray Data
    else:
        # The rest of the block it stopped in is lost to it (and prefetch may take one more)
        assert len(results[1]) >= 400 - 2 * 40
    # The one that stopped is done with the first epoch, so the next one starts.
    again = drain_on_threads(its)
    both = again[0] + again[1]
    assert len(set(both)) == len(both) and set(both) <= set(range(400))  # no row twice
    if not equal:
        assert sorted(both) == list(range(400))
    if equal:
        assert [len(r) for r in again] == [200, 200]
    del its
    gc.collect()
    assert set(store_blocks()) <= before


def test_a_stopped_consumer_holds_at_most_one_block_while_the_others_read() -> None:
    its = ed.range(2000, override_num_blocks=40).map_batches(padded).streaming_split(
        2, equal=True)
    coordinator = its[0]._coordinator
    held: list[int] = []
    for k, _ in enumerate(its[0].iter_batches(batch_size=4)):
        if k == 1:
            break  # consumer 0 stops; consumer 1 (this thread) then reads its share
    for _ in its[1].iter_batches(batch_size=4):
        epoch = coordinator._epoch
        if epoch is not None and epoch.final is None:
            held.append(len(epoch.queues[0]))
    assert held and max(held) <= 1  # not 1/n of the stream kept for a reader that left
    again = drain_on_threads(its)
    assert [len(r) for r in again] == [1000, 1000]


def test_every_consumer_stopping_cancels_the_execution() -> None:
    ds = ed.range(2000, override_num_blocks=40).map_batches(lambda b: b)
    its = ds.streaming_split(2)
    drain_on_threads(its, stop_after={0: 1, 1: 1})
    executor = its[0]._coordinator.executor
    executor._thread.join(JOIN_S)
    assert not executor._thread.is_alive()


def _fail_on_block_two(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if 20 <= batch["id"][0] < 30:
        raise ValueError("bad block")
    return batch


def test_a_failing_udf_reaches_every_consumer() -> None:
    its = ed.range(100, override_num_blocks=10).map_batches(_fail_on_block_two) \
        .streaming_split(2, equal=True)
    errors: list[BaseException] = []

    def consume(it: Any) -> None:
        try:
            for _ in it.iter_rows():
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(it,)) for it in its]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 2
    assert all(isinstance(e, ValueError) and "bad block" in str(e) for e in errors)
    assert all(isinstance(e, ed.UserCodeError) for e in errors)


@settings(deadline=None, max_examples=20)
@given(sizes=block_sizes, n=st.integers(1, 4), equal=st.booleans())
def test_streaming_split_partitions_rows_exactly(sizes: list[int], n: int,
                                                equal: bool) -> None:
    total = sum(sizes)
    results = drain_on_threads(blocks_of(sizes).streaming_split(n, equal=equal))
    delivered = [i for r in results for i in r]
    assert len(delivered) == len(set(delivered))  # no row twice
    if equal:
        assert [len(r) for r in results] == [total // n] * n
        assert set(delivered) <= set(range(total))  # at most n - 1 rows dropped
    else:
        assert sorted(delivered) == list(range(total))  # every row exactly once


def test_a_pickled_iterator_is_served_over_the_coordinator_socket() -> None:
    its = ed.range(50, override_num_blocks=5).streaming_split(2, equal=True)
    copies = [pickle.loads(pickle.dumps(it)) for it in its]
    assert all(c._coordinator is None for c in copies)  # the copies go through the socket
    results = drain_on_threads(copies)
    assert [len(r) for r in results] == [25, 25]
    assert sorted(results[0] + results[1]) == list(range(50))


def test_the_coordinator_socket_goes_with_the_iterators() -> None:
    store_dir = session.get_cluster().store.dir
    its = ed.range(10).streaming_split(2)
    socket_name = os.path.basename(its[0]._address)
    assert socket_name in os.listdir(store_dir)
    orphan = pickle.loads(pickle.dumps(its[1]))
    del its
    gc.collect()
    assert socket_name not in os.listdir(store_dir)
    with pytest.raises(RuntimeError, match="the coordinator is gone"):
        list(orphan.iter_rows())


# ---------------------------------------------------------------------- consumers in processes


def consume_in_child(it: Any, out: Any, epochs: int, stop_after: int | None) -> None:
    """Child process: drain ``it`` for ``epochs`` passes (or stop after some batches) and
    report ``(pid, rows per pass)`` or the error."""
    try:
        passes = []
        for _ in range(epochs):
            rows: list[int] = []
            for k, batch in enumerate(it.iter_batches(batch_size=8)):
                rows.extend(int(x) for x in batch["id"])
                if stop_after is not None and k + 1 == stop_after:
                    break
            passes.append(rows)
        out.put((os.getpid(), passes, None))
    except BaseException as exc:
        out.put((os.getpid(), [], f"{type(exc).__name__}: {exc}"))


def run_children(method: str, its: list[Any], epochs: int,
                 stop_after: dict[int, int] | None = None) -> list[Any]:
    ctx = multiprocessing.get_context(method)
    out = ctx.Queue()
    stop_after = stop_after or {}
    procs = [ctx.Process(target=consume_in_child, args=(it, out, epochs, stop_after.get(i)))
             for i, it in enumerate(its)]
    for p in procs:
        p.start()
    try:
        reports = [out.get(timeout=JOIN_S) for _ in procs]
    except queue.Empty:
        pytest.fail("a consumer process hung")
    finally:
        for p in procs:
            p.join(JOIN_S)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    by_pid = {pid: (passes, error) for pid, passes, error in reports}
    return [by_pid[p.pid] for p in procs]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_processes_drain_one_execution_per_epoch(method: str, tmp_path: Path) -> None:
    log = tmp_path / "calls"
    ds = ed.range(240, override_num_blocks=6).map_batches(CountCalls(log))
    reports = run_children(method, ds.streaming_split(2, equal=True), epochs=2)
    assert [error for _, error in reports] == [None, None]
    for epoch in range(2):
        shares = [passes[epoch] for passes, _ in reports]
        assert [len(s) for s in shares] == [120, 120]
        assert sorted(shares[0] + shares[1]) == list(range(240))
    assert sorted(calls(log)) == [40] * 12  # two epochs, each one execution of 6 blocks


def test_a_process_that_stops_early_hangs_nobody() -> None:
    its = ed.range(400, override_num_blocks=10).streaming_split(2, equal=True)
    reports = run_children("fork", its, epochs=1, stop_after={0: 1})
    (first, error0), (second, error1) = reports
    assert (error0, error1) == (None, None)
    assert len(first[0]) == 8 and len(second[0]) == 200
    assert not set(first[0]) & set(second[0])


def test_a_udf_error_reaches_a_consumer_process() -> None:
    its = ed.range(100, override_num_blocks=10).map_batches(_fail_on_block_two) \
        .streaming_split(1)
    [(_, error)] = run_children("fork", its, epochs=1)
    # Still both a UserCodeError and a ValueError after the trip through the socket.
    assert error is not None and error.startswith("UserCodeError(ValueError)")
    assert "bad block" in error


def test_user_code_errors_keep_their_original_type_through_pickling() -> None:
    from engine.errors import user_code_error

    error = user_code_error(KeyError, "no such key", "MapBatches(f)", "Traceback ...")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, KeyError) and isinstance(copy, ed.UserCodeError)
    assert (copy.operator, copy.remote_traceback) == ("MapBatches(f)", "Traceback ...")


def test_iterators_and_threads_and_processes_share_one_execution(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    its = ed.range(90, override_num_blocks=9).map_batches(CountCalls(log)).streaming_split(
        2, equal=True)
    thread_rows: list[int] = []
    thread = threading.Thread(target=lambda: thread_rows.extend(
        r["id"] for r in its[0].iter_rows()))
    thread.start()
    [(passes, error)] = run_children("spawn", [its[1]], epochs=1)
    thread.join(JOIN_S)
    assert error is None
    assert len(thread_rows) == 45 and len(passes[0]) == 45
    assert sorted(thread_rows + passes[0]) == list(range(90))
    assert len(calls(log)) == 9
