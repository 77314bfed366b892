"""Splitting datasets: by rows of a materialized dataset, or as a stream to n consumers.

``split``/``split_at_indices``/``split_proportionately`` cut a materialized dataset's blocks
by row ranges (zero-copy slices; only a block cut in two is written again).
``streaming_split`` runs one execution and hands its blocks to n :class:`DataIterator`
consumers (trainer ranks, threads) as they ask; with ``equal=True`` every consumer gets
exactly ``total // n`` rows.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from engine.iteration import BatchIterable

if TYPE_CHECKING:
    from engine.dataset import Dataset, MaterializedDataset


# ----------------------------------------------------------------------------- row cuts


def _cut(refs: list[Any], bounds: list[int], put: Callable[[Any], Any]) -> list[list[Any]]:
    """Split consecutive blocks at row ``bounds`` (sorted); returns len(bounds)+1 lists."""
    pieces: list[list[Any]] = [[] for _ in range(len(bounds) + 1)]
    edges = [0, *bounds, sum(r.num_rows for r in refs)]
    offset = 0
    for ref in refs:
        start, stop = offset, offset + ref.num_rows
        offset = stop
        for i in range(len(pieces)):
            lo, hi = max(start, edges[i]), min(stop, edges[i + 1])
            if lo >= hi:
                continue
            if lo == start and hi == stop:
                pieces[i].append(ref)
            else:
                pieces[i].append(put(ref.get().slice(lo - start, hi - lo)))
    return pieces


def split_at_indices(ds: Dataset, indices: list[int]) -> list[MaterializedDataset]:
    from engine import session
    from engine.dataset import MaterializedDataset

    if not indices:
        raise ValueError("split_at_indices: indices must hold at least one index")
    if any(not isinstance(i, int) or isinstance(i, bool) for i in indices):
        raise TypeError(f"split_at_indices: indices must be ints; got {indices}")
    if any(i < 0 for i in indices):
        raise ValueError(f"split_at_indices: indices must be non-negative; got {indices}")
    if list(indices) != sorted(indices):
        raise ValueError(f"split_at_indices: indices must be sorted; got {indices}")
    refs = ds.materialize()._refs
    total = sum(r.num_rows for r in refs)
    bounds = [min(i, total) for i in indices]
    cluster = session.get_cluster()
    return [MaterializedDataset(p) for p in _cut(refs, bounds, cluster.put)]


def split(ds: Dataset, n: int, equal: bool) -> list[MaterializedDataset]:
    from engine.dataset import MaterializedDataset

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"split: n must be a positive int; got {n!r}")
    refs = ds.materialize()._refs
    total = sum(r.num_rows for r in refs)
    if equal:
        per = total // n
        parts = split_at_indices(MaterializedDataset(refs), [per * i for i in range(1, n + 1)])
        return parts[:n]
    # Whole blocks, balanced by rows (greedy): no block is cut.
    order = sorted(range(len(refs)), key=lambda i: -refs[i].num_rows)
    buckets: list[list[int]] = [[] for _ in range(n)]
    loads = [0] * n
    for i in order:
        k = loads.index(min(loads))
        buckets[k].append(i)
        loads[k] += refs[i].num_rows
    return [MaterializedDataset([refs[i] for i in sorted(b)]) for b in buckets]


def split_proportionately(ds: Dataset, proportions: list[float]) -> list[MaterializedDataset]:
    if not proportions or any(p <= 0 for p in proportions) or sum(proportions) >= 1:
        raise ValueError("split_proportionately: proportions must be positive and sum to "
                         f"less than 1; got {proportions}")
    mat = ds.materialize()
    total = mat.count()
    bounds, acc = [], 0.0
    for p in proportions:
        acc += p
        bounds.append(int(total * acc))
    # Like Ray Data: move earlier cuts down so that no split before the last is empty, and
    # refuse when that is impossible.
    shift = 0
    for i in range(len(bounds) - 2, -1, -1):
        bounds[i] -= shift
        if bounds[i] == bounds[i + 1]:
            shift += 1
            bounds[i] -= 1
    if any(b <= 0 for b in bounds):
        raise ValueError(f"split_proportionately: {proportions} of {total} rows would leave "
                         "a split empty")
    return split_at_indices(mat, bounds)


def train_test_split(ds: Dataset, test_size: float | int, shuffle: bool,
                     seed: int | None) -> tuple[MaterializedDataset, MaterializedDataset]:
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise TypeError(f"train_test_split: test_size must be a float or int; got "
                        f"{type(test_size).__name__}")
    if isinstance(test_size, float) and not 0 < test_size < 1:
        raise ValueError(f"train_test_split: a float test_size must be in (0, 1); got "
                         f"{test_size}")
    if shuffle:
        ds = ds.random_shuffle(seed=seed)
    mat = ds.materialize()
    if isinstance(test_size, float):
        # Ray Data's rounding: the train split gets int(total * (1 - test_size)) rows.
        train, test = split_proportionately(mat, [1 - test_size])
        return train, test
    total = mat.count()
    if not 0 < test_size < total:
        raise ValueError(f"train_test_split: an int test_size must be in (0, {total}); "
                         f"got {test_size}")
    train, test = split_at_indices(mat, [total - test_size])
    return train, test


# ----------------------------------------------------------------------------- streaming


class _SplitCoordinator:
    """Hands the blocks of one execution to ``n`` consumers (thread-safe)."""

    def __init__(self, ds: Dataset, n: int, equal: bool) -> None:
        self._ds = ds
        self.n = n
        self.equal = equal
        self._lock = threading.Condition()
        self._source: Iterator[Any] | None = None
        self._queues: list[deque[Any]] = [deque() for _ in range(n)]
        self._assigned = [0] * n
        self._delivered = [0] * n
        self._exhausted = False
        self._epoch_done = [False] * n
        self._final: list[deque[Any]] | None = None
        self.executor: Any = None

    def _start(self) -> None:
        if self._source is None:
            self._source = (r for r in self._ds.iter_internal_refs() if hasattr(r, "num_rows"))
            self.executor = self._ds._last_executor

    def _pull(self, target: int | None = None) -> bool:
        """Queue the next block for ``target`` (default: the consumer with the fewest rows
        so far); False once the execution is exhausted."""
        assert self._source is not None, "pull before start"
        try:
            ref = next(self._source)
        except StopIteration:
            self._exhausted = True
            return False
        k = self._assigned.index(min(self._assigned)) if target is None else target
        self._queues[k].append(ref)
        self._assigned[k] += ref.num_rows
        return True

    def next_block(self, index: int) -> Any | None:
        with self._lock:
            self._start()
            if not self.equal:
                if self._queues[index]:
                    return self._queues[index].popleft()
                while not self._exhausted:
                    if self._pull(index):
                        return self._queues[index].popleft()
                return None
            return self._next_equal(index)

    def _next_equal(self, index: int) -> Any | None:
        while True:
            if self._final is not None:
                queue = self._final[index]
                return queue.popleft() if queue else None
            queue = self._queues[index]
            safe = min(self._assigned)
            if queue and self._delivered[index] + queue[0].num_rows <= safe:
                ref = queue.popleft()
                self._delivered[index] += ref.num_rows
                return ref
            if not self._pull():
                self._finalize()

    def _finalize(self) -> None:
        """Execution over: give each consumer exactly total // n rows in all."""
        from engine import session

        total = sum(self._assigned)
        target = total // self.n
        pool = [ref for q in self._queues for ref in q]
        put = session.get_cluster().put
        final: list[deque[Any]] = [deque() for _ in range(self.n)]
        cursor = 0
        offset = 0  # rows of pool[cursor] already handed out
        for i in range(self.n):
            need = target - self._delivered[i]
            while need > 0 and cursor < len(pool):
                ref = pool[cursor]
                take = min(need, ref.num_rows - offset)
                if offset == 0 and take == ref.num_rows:
                    final[i].append(ref)
                else:
                    final[i].append(put(ref.get().slice(offset, take)))
                need -= take
                offset += take
                if offset == ref.num_rows:
                    cursor, offset = cursor + 1, 0
        self._final = final


class DataIterator(BatchIterable):
    """One consumer's view of a dataset (``streaming_split`` hands out n of these).

    Offers ``iter_batches``, ``iter_rows`` and ``iter_torch_batches`` like a Dataset.
    """

    def __init__(self, coordinator: _SplitCoordinator, index: int) -> None:
        self._coordinator = coordinator
        self._index = index

    def _block_refs(self) -> Iterator[Any]:
        while True:
            ref = self._coordinator.next_block(self._index)
            if ref is None:
                return
            yield ref

    def stats(self) -> str:
        from engine.physical.stats import format_stats

        ex = self._coordinator.executor
        return format_stats(ex.summary() if ex is not None else None)


def streaming_split(ds: Dataset, n: int, equal: bool) -> list[DataIterator]:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"streaming_split: n must be a positive int; got {n!r}")
    coordinator = _SplitCoordinator(ds, n, equal)
    return [DataIterator(coordinator, i) for i in range(n)]
