"""Splitting a dataset by rows into materialized datasets.

``split``/``split_at_indices``/``split_proportionately``/``train_test_split`` materialize
the dataset and cut its blocks by row ranges, keeping row order (split ``i`` holds rows
before those of split ``i + 1``). A block cut in two is written again as two slices; every
other block is shared, not copied. Streaming to ``n`` consumers without materializing is
``streaming_split`` (:mod:`engine.splits.streaming`, re-exported here).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.arguments import check_count, check_seed
from engine.splits.streaming import DataIterator, streaming_split  # re-exported

__all__ = ["DataIterator", "split", "split_at_indices", "split_proportionately",
           "streaming_split", "train_test_split"]

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
    mat = ds.materialize()
    refs, files = mat._refs, mat.input_files()
    total = sum(r.num_rows for r in refs)
    bounds = [min(i, total) for i in indices]
    cluster = session.get_cluster()
    return [MaterializedDataset(p, input_files=files) for p in _cut(refs, bounds, cluster.put)]


def split(ds: Dataset, n: int, equal: bool) -> list[MaterializedDataset]:
    from engine.dataset import MaterializedDataset

    check_count(n, "split")
    mat = ds.materialize()
    refs = mat._refs
    total = sum(r.num_rows for r in refs)
    if equal:
        per = total // n
        parts = split_at_indices(mat, [per * i for i in range(1, n + 1)])
        return parts[:n]
    files = mat.input_files()
    return [MaterializedDataset(part, input_files=files) for part in _whole_block_runs(refs, n)]


def _whole_block_runs(refs: list[Any], n: int) -> list[list[Any]]:
    """Cut the blocks, in order and never inside one, into ``n`` runs of about equal rows:
    run ``i`` ends at the block boundary nearest to ``(i + 1) * total / n`` rows.

    Ray Data cuts the list into runs of equal block counts (``np.array_split``); both give
    the same runs when blocks have equal rows, and this one stays balanced when they do not.
    Blocks without rows go with their neighbours; splits beyond the blocks are empty.
    """
    ends = [0]
    for ref in refs:
        ends.append(ends[-1] + ref.num_rows)
    total = ends[-1]
    cuts = [0]
    for i in range(1, n):
        ideal = i * total / n
        above = bisect.bisect_left(ends, ideal)  # first boundary at or past the ideal
        below = max(above - 1, 0)
        while below > 0 and ends[below - 1] == ends[below]:
            below -= 1  # the first of equal boundaries: empty blocks go to the next run
        best = below if above > len(refs) or ideal - ends[below] <= ends[above] - ideal \
            else above
        cuts.append(max(best, cuts[-1]))
    cuts.append(len(refs))
    return [refs[cuts[i]:cuts[i + 1]] for i in range(n)]


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
    seed = check_seed(seed, "train_test_split")
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
