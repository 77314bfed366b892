"""The map and reduce callables of exchanges: picklable, run on the workers.

A map callable takes a bundle of input blocks and the task index and yields exactly
``num_partitions`` tables, partition ``i`` as its ``i``-th output (empty partitions are
empty tables that keep the schema). A reduce callable takes, per input side, the list of
that partition's pieces in input order, the partition index and a per-partition extra, and
yields the output blocks of the partition.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.block import (
    concat_tables,
    number_array,
    split_by_size,
    take_rows,
    to_numpy,
)
from engine.physical.exchange.acero import hash_join
from engine.physical.exchange.partition import (
    hash_partition_ids,
    random_partition_ids,
    range_partition_ids,
    sort_order,
    split_by_ids,
)

SortKeys = Sequence[tuple[str, str]]


def _real(tables: Sequence[pa.Table]) -> list[pa.Table]:
    """Tables that carry a schema (``from_items([])`` blocks have none)."""
    return [t for t in tables if t.num_columns or t.num_rows]


def combine(tables: Sequence[pa.Table]) -> pa.Table | None:
    """One table of ``tables`` in order (None when none has a schema)."""
    real = _real(tables)
    if not real:
        return None
    return real[0] if len(real) == 1 else concat_tables(real)


def sort_table(table: pa.Table, sort_keys: SortKeys) -> pa.Table:
    """``table`` sorted by ``sort_keys``: stable, nulls last."""
    if table.num_rows <= 1:
        return table
    if any(c.num_chunks > 1 for c in table.columns):
        table = table.combine_chunks()  # sorting and taking over chunks cost more
    return take_rows(table, sort_order(table, sort_keys))


def task_seed(seed: int | None, *parts: int) -> np.random.Generator:
    """A generator for one task: fixed by ``(seed, parts)`` when seeded, fresh otherwise."""
    return np.random.default_rng(None if seed is None else [seed, *parts])


# ---------------------------------------------------------------- map side


class PartitionMap:
    """Cut each bundle into ``num_partitions`` pieces with ``partitioner``; ``columns`` (if
    set) keeps only those columns (a projection pushed below the exchange)."""

    def __init__(self, partitioner: Any, num_partitions: int,
                 columns: Sequence[str] | None = None) -> None:
        self.partitioner = partitioner
        self.num_partitions = num_partitions
        self.columns = list(columns) if columns is not None else None

    def __call__(self, tables: list[pa.Table], seqs: Sequence[int] = ()) -> \
            Iterator[pa.Table]:
        """``seqs`` numbers the input blocks in input order: a seeded partitioner draws
        each block's ids from its number, so results do not depend on the bundling."""
        real = [(t, s) for t, s in zip(tables, seqs or range(len(tables)), strict=True)
                if t.num_columns or t.num_rows]
        table = combine([t for t, _ in real])
        if table is None:
            table = pa.table({})
        elif self.columns is not None:
            table = table.select(self.columns)
        if len(real) <= 1:
            ids = self.partitioner.ids(table, self.num_partitions, real[0][1] if real else 0)
        else:
            ids = np.concatenate([self.partitioner.ids(t, self.num_partitions, s)
                                  for t, s in real])
        yield from split_by_ids(table, ids, self.num_partitions)


class HashPartitioner:
    """By the hash of ``keys`` (groupby, join, repartition by keys)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)

    def ids(self, table: pa.Table, n: int, task_idx: int) -> np.ndarray:
        if not table.num_rows:
            return np.zeros(0, dtype=np.int64)
        missing = [k for k in self.keys if k not in table.column_names]
        if missing:
            raise ValueError(f"key column(s) {missing} not found; the dataset has columns "
                             f"{table.column_names}")
        return hash_partition_ids(table, self.keys, n)


class RandomPartitioner:
    """Uniformly at random (random_shuffle); seeded per task."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def ids(self, table: pa.Table, n: int, task_idx: int) -> np.ndarray:
        return random_partition_ids(table.num_rows, n, task_seed(self.seed, task_idx, 0))


class RangePartitioner:
    """By sorted ranges between ``boundaries`` (sort)."""

    def __init__(self, sort_keys: SortKeys, boundaries: pa.Table) -> None:
        self.sort_keys = list(sort_keys)
        self.boundaries = boundaries

    def ids(self, table: pa.Table, n: int, task_idx: int) -> np.ndarray:
        if not table.num_rows:
            return np.zeros(0, dtype=np.int64)
        keys = self.sort_keys[:self.boundaries.num_columns]
        return range_partition_ids(table, keys, self.boundaries)


class TopKMap:
    """The first ``k`` rows of each bundle in sort order (one partition)."""

    def __init__(self, sort_keys: SortKeys, k: int) -> None:
        self.sort_keys = list(sort_keys)
        self.k = k

    def __call__(self, tables: list[pa.Table], seqs: Sequence[int] = ()) -> \
            Iterator[pa.Table]:
        table = combine(tables)
        if table is None:
            yield pa.table({})
            return
        yield top_k(table, self.sort_keys, self.k)


def top_k(table: pa.Table, sort_keys: SortKeys, k: int) -> pa.Table:
    """The first ``k`` rows of ``table`` in stable sort order. One key: a linear selection
    of the ``k``-th value, then a sort of at most ``k`` rows (rows tied with it keep their
    input order); several keys: a full sort."""
    if k <= 0 or table.num_rows <= k or len(sort_keys) != 1:
        return sort_table(table, sort_keys).slice(0, k)
    name, order = sort_keys[0]
    column = table.column(name)
    has_nan = pa.types.is_floating(column.type) and bool(pc.any(pc.is_nan(column)).as_py())
    if column.null_count or has_nan:
        return sort_table(table, sort_keys).slice(0, k)
    kth_index = pc.select_k_unstable(table.select([name]), k, sort_keys=[(name, order)])
    kth = column.take(kth_index).combine_chunks()
    bound = pc.max(kth) if order == "ascending" else pc.min(kth)
    better = pc.less(column, bound) if order == "ascending" else pc.greater(column, bound)
    tied = pc.equal(column, bound)
    need = k - pc.sum(better).as_py()
    tied_rows = np.flatnonzero(to_numpy(tied))[:need]
    better_rows = np.flatnonzero(to_numpy(better))
    rows = np.sort(np.concatenate([better_rows, tied_rows]))
    return sort_table(table.take(number_array(rows)), sort_keys)


# ---------------------------------------------------------------- reduce side


def _shaped(table: pa.Table, max_bytes: int | None) -> Iterator[pa.Table]:
    if max_bytes is None or table.nbytes <= max_bytes:
        yield table
    else:
        yield from split_by_size(table, max_bytes)


class SortReduce:
    """Sort one range partition (or keep the first ``limit`` rows of it: top-k)."""

    def __init__(self, sort_keys: SortKeys, max_block_bytes: int | None = None,
                 limit: int | None = None) -> None:
        self.sort_keys = list(sort_keys)
        self.max_block_bytes = max_block_bytes
        self.limit = limit

    def __call__(self, parts: list[pa.Table], index: int, extra: Any = None) -> \
            Iterator[pa.Table]:
        table = combine(parts)
        if table is None:
            return
        table = sort_table(table, self.sort_keys)
        if self.limit is not None:
            table = table.slice(0, self.limit)
        yield from _shaped(table, self.max_block_bytes)


class ConcatReduce:
    """Concatenate a partition's pieces (repartition by keys), sorted by ``sort_keys`` if
    given."""

    def __init__(self, sort_keys: SortKeys | None = None,
                 max_block_bytes: int | None = None) -> None:
        self.sort_keys = list(sort_keys) if sort_keys else None
        self.max_block_bytes = max_block_bytes

    def __call__(self, parts: list[pa.Table], index: int, extra: Any = None) -> \
            Iterator[pa.Table]:
        table = combine(parts)
        if table is None:
            return
        if self.sort_keys:
            table = sort_table(table, self.sort_keys)
        yield from _shaped(table, self.max_block_bytes)


class ShuffleReduce:
    """Concatenate a partition's pieces and permute its rows (random_shuffle)."""

    def __init__(self, seed: int | None, max_block_bytes: int | None = None) -> None:
        self.seed = seed
        self.max_block_bytes = max_block_bytes

    def __call__(self, parts: list[pa.Table], index: int, extra: Any = None) -> \
            Iterator[pa.Table]:
        table = combine(parts)
        if table is None:
            return
        order = task_seed(self.seed, index, 1).permutation(table.num_rows)
        shuffled = take_rows(table, order)  # over the pieces' chunks as they are
        yield from _shaped(shuffled, self.max_block_bytes)


class SliceReduce:
    """Rows ``[start, start + length)`` of each side's pieces, side by side (``extra`` is
    ``[(start, length)]`` per side): repartition without a shuffle (one side) and zip."""

    def __call__(self, *args: Any) -> Iterator[pa.Table]:
        *sides, _index, extra = args
        out: pa.Table | None = None
        for parts, (start, length) in zip(sides, extra, strict=True):
            table = combine(parts)
            if table is None:
                continue
            piece = table.slice(start, length)
            out = piece if out is None else _zip_columns(out, piece)
        if out is not None:
            yield out


def _zip_columns(left: pa.Table, right: pa.Table) -> pa.Table:
    """``right``'s columns appended to ``left``'s; a taken name gets the first free suffix
    ``_1``, ``_2``... (as Ray Data's zip)."""
    left = left.combine_chunks() if left.num_rows else left
    for name, column in zip(right.column_names, right.columns, strict=True):
        new_name, suffix = name, 1
        while new_name in left.column_names:
            new_name = f"{name}_{suffix}"
            suffix += 1
        left = left.append_column(new_name, column)
    return left


class JoinReduce:
    """Join one hash partition of each side with Arrow's hash join (null keys never
    match)."""

    def __init__(self, join_type: str, left_on: Sequence[str], right_on: Sequence[str],
                 left_suffix: str | None, right_suffix: str | None,
                 max_block_bytes: int | None = None) -> None:
        self.join_type = join_type
        self.left_on = list(left_on)
        self.right_on = list(right_on)
        self.left_suffix = left_suffix
        self.right_suffix = right_suffix
        self.max_block_bytes = max_block_bytes

    def __call__(self, left_parts: list[pa.Table], right_parts: list[pa.Table], index: int,
                 extra: Any = None) -> Iterator[pa.Table]:
        left = combine(left_parts)
        right = combine(right_parts)
        if left is None or right is None:
            kept = self._one_side(left, right)
            if kept is not None:
                yield kept
            return
        joined = join_tables(left, right, self.join_type, self.left_on, self.right_on,
                             self.left_suffix, self.right_suffix)
        yield from _shaped(joined, self.max_block_bytes)

    def _one_side(self, left: pa.Table | None, right: pa.Table | None) -> pa.Table | None:
        """A side without any schema (an empty dataset): only the other side's unmatched
        rows can appear."""
        if left is not None and self.join_type in ("left_outer", "full_outer", "left_anti"):
            return left
        if right is not None and self.join_type in ("right_outer", "full_outer",
                                                     "right_anti"):
            return right
        return None


def join_tables(left: pa.Table, right: pa.Table, join_type: str, left_on: Sequence[str],
                right_on: Sequence[str], left_suffix: str | None,
                right_suffix: str | None) -> pa.Table:
    """Arrow's hash join with Ray Data's join type names (see ``acero.hash_join``)."""
    return hash_join(left, right, join_type, left_on, right_on, left_suffix, right_suffix)
