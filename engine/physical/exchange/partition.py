"""Partitioning kernels: which partition each row of a block goes to, and the split.

All work is vectorized (numpy and pyarrow kernels); a block is reordered with one ``take``
and cut into zero-copy slices, one per partition, in partition order. Rows keep their
relative order inside a partition, which keeps sorts stable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.block import one_array, take_rows, to_numpy

_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_COMPARE_BOUNDS = 48  # range ids by comparisons up to this many boundaries


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the output (wrapping uint64)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def column_hash(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A uint64 hash per value that depends only on the value: equal values hash equal in
    every block and on both sides of a join (integers of any width, floats of any width,
    strings and binaries; nulls share one hash)."""
    arr = one_array(column)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    valid = None if arr.null_count == 0 else \
        to_numpy(arr.is_valid())
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        filled = pc.fill_null(arr.cast(pa.int64()), 0) if valid is not None else \
            arr.cast(pa.int64())
        raw = to_numpy(filled).view(np.uint64)
    elif pa.types.is_floating(t):
        filled = arr.cast(pa.float64())
        if valid is not None:
            filled = pc.fill_null(filled, 0.0)
        values = to_numpy(filled) + 0.0  # -0.0 == 0.0
        raw = values.view(np.uint64)
    elif pa.types.is_temporal(t) and t.bit_width == 64:
        filled = arr.view(pa.int64())
        if valid is not None:
            filled = pc.fill_null(filled, 0)
        raw = to_numpy(filled).view(np.uint64)
    else:
        import pandas as pd

        values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
        raw = pd.util.hash_array(values, categorize=False).astype(np.uint64, copy=False)
    h = _mix(raw.copy())
    if valid is not None:
        h[~valid] = _NULL_HASH
    return h


def hash_partition_ids(table: pa.Table, keys: Sequence[str], num_partitions: int) -> np.ndarray:
    """The partition (``0..num_partitions-1``) of each row by the hash of its ``keys``."""
    if num_partitions == 1 or not keys:
        return np.zeros(table.num_rows, dtype=np.int64)
    h = np.zeros(table.num_rows, dtype=np.uint64)
    for key in keys:
        h = _mix(h * np.uint64(31) + column_hash(table.column(key)))
    return (h % np.uint64(num_partitions)).astype(np.int64)


def random_partition_ids(num_rows: int, num_partitions: int,
                         rng: np.random.Generator) -> np.ndarray:
    """A uniformly random partition for each of ``num_rows`` rows (in the narrowest
    unsigned type: cheaper to draw and to sort by)."""
    dtype = np.uint8 if num_partitions <= 1 << 8 else \
        np.uint16 if num_partitions <= 1 << 16 else np.int64
    return rng.integers(0, num_partitions, num_rows, dtype=dtype)


def range_partition_ids(table: pa.Table, sort_keys: Sequence[tuple[str, str]],
                        boundaries: pa.Table) -> np.ndarray:
    """The partition of each row given ``boundaries``: ``len(boundaries)`` rows in sort
    order of ``sort_keys`` (``[(column, "ascending"|"descending")...]``, nulls last).

    A row goes to partition ``i`` where ``i`` boundaries sort before it. A row equal to a
    boundary goes to the partition above it when the first key ascends and below it when it
    descends, so ``boundaries=[b]`` puts ``x < b`` first either way (as Ray Data does), and
    equal keys always share one partition.
    """
    n = table.num_rows
    if boundaries.num_rows == 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    fast = _numeric_range_ids(table, sort_keys, boundaries)
    if fast is not None:
        return fast
    names = [name for name, _ in sort_keys]
    rows = table.select(names)
    bounds = boundaries.select(names)
    rows, bounds = _common_types(rows, bounds)
    ascending_first = sort_keys[0][1] == "ascending"
    # A stable sort keeps ties in concatenation order: boundaries before rows (ascending)
    # or after them (descending).
    parts = [bounds, rows] if ascending_first else [rows, bounds]
    combined = pa.concat_tables(parts)
    order = pc.sort_indices(combined, sort_keys=nulls_last(sort_keys))
    order_np = to_numpy(order)
    b = bounds.num_rows
    is_bound = order_np < b if ascending_first else order_np >= n
    bounds_before = np.cumsum(is_bound)
    is_row = ~is_bound
    row_index = order_np[is_row] - (b if ascending_first else 0)
    ids = np.empty(n, dtype=np.int64)
    ids[row_index] = bounds_before[is_row]
    return ids


def _numeric_range_ids(table: pa.Table, sort_keys: Sequence[tuple[str, str]],
                       boundaries: pa.Table) -> np.ndarray | None:
    """``range_partition_ids`` for one numeric key without nulls or NaNs: a binary search
    per row (``numpy.searchsorted``) instead of a sort. None where it does not apply."""
    if len(sort_keys) != 1:
        return None
    name, order = sort_keys[0]
    column = table.column(name)
    bound_col = boundaries.column(name)
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t)
               for t in (column.type, bound_col.type)]
    if not all(numeric) or column.null_count or bound_col.null_count:
        return None
    values = to_numpy(column)
    if values.dtype.kind == "f" and np.isnan(values).any():
        return None
    bounds = np.sort(to_numpy(bound_col))
    if bounds.dtype.kind == "f" and np.isnan(bounds).any():
        return None
    if len(bounds) <= _COMPARE_BOUNDS and values.dtype == bounds.dtype:
        # A few boundaries: one vectorized comparison each beats a binary search per row
        # (whose branches a CPU cannot predict).
        above: np.ndarray = np.zeros(len(values), dtype=np.uint8)
        for bound in bounds:
            above += values >= bound
    else:
        above = np.searchsorted(bounds, values, side="right")  # boundaries <= value
    if order == "ascending":
        return above.astype(np.int64)
    return (len(bounds) - above).astype(np.int64)  # boundaries > value


def sort_order(table: pa.Table, sort_keys: Sequence[tuple[str, str]]) -> np.ndarray | pa.Array:
    """The stable sort order of ``table`` by ``sort_keys`` (nulls last), as row indices.

    One numeric key without nulls or NaNs (the common case) sorts with numpy's unstable
    introsort, several times faster than a stable sort, and keeps that order only where no
    two keys are equal (then it is the stable order too); ties and every other case take a
    stable sort.
    """
    if len(sort_keys) == 1:
        name, order = sort_keys[0]
        column = table.column(name)
        t = column.type
        if (pa.types.is_integer(t) or pa.types.is_floating(t)) and not column.null_count:
            values = to_numpy(column)
            if values.dtype.kind != "f" or not np.isnan(values).any():
                if order == "descending":  # a decreasing map that cannot overflow
                    values = -values if values.dtype.kind == "f" else ~values
                quick = np.argsort(values)
                ranked = values[quick]
                if not (ranked[1:] == ranked[:-1]).any():
                    return quick
                return np.argsort(values, kind="stable")
    return pc.sort_indices(table, sort_keys=nulls_last(sort_keys))


def nulls_last(sort_keys: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Arrow's sort keys with nulls after every value, whatever the direction."""
    return [(name, order, "at_end") for name, order in sort_keys]


def _common_types(rows: pa.Table, bounds: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Cast so both tables share a schema (a float boundary on an int column compares the
    column as floats)."""
    if rows.schema.equals(bounds.schema):
        return rows, bounds
    fields = []
    for rf, bf in zip(rows.schema, bounds.schema, strict=True):
        if rf.type == bf.type or pa.types.is_null(bf.type):
            fields.append(rf)
        elif pa.types.is_integer(rf.type) and pa.types.is_floating(bf.type):
            fields.append(pa.field(rf.name, bf.type))
        else:
            fields.append(rf)
    schema = pa.schema(fields)
    return rows.cast(schema), bounds.cast(schema)


def split_by_ids(table: pa.Table, ids: np.ndarray, num_partitions: int) -> list[pa.Table]:
    """``table`` cut into ``num_partitions`` tables by the partition id of each row (rows
    keep their order within a partition); empty partitions are empty tables with the
    schema."""
    if num_partitions == 1:
        return [table]
    counts = np.bincount(ids, minlength=num_partitions)
    # numpy sorts 8- and 16-bit integers stably by radix: linear time.
    keys = ids if ids.dtype.itemsize <= 2 else \
        ids.astype(np.uint16) if num_partitions <= 1 << 16 else ids
    order = np.argsort(keys, kind="stable")
    ordered = take_rows(table, order)
    out = []
    start = 0
    for count in counts.tolist():
        out.append(ordered.slice(start, count))
        start += count
    return out


