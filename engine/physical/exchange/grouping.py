"""Grouped work on one hash partition: aggregations (``groupby().sum()``...) and the group
splitting of ``map_groups``.

A partition holds every row of its groups, so each reduce task finishes its groups alone.
Built-in aggregations run on pyarrow's hash kernels (``Table.group_by``); user-defined
``AggregateFn``s run per group on zero-copy slices (see ``engine.aggregate``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.aggregate import (
    AggregateFn,
    accumulate_block,
    accumulate_groups,
    finalize_states,
    init_states,
    output_names,
)
from engine.block import number_array, one_array, python_scalar, to_numpy
from engine.errors import GroupTooLargeError
from engine.physical.exchange.acero import group_aggregate
from engine.physical.exchange.tasks import combine, sort_table


def _result_column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python types: keep as objects
        return pa.array([repr(v) if v is not None else None for v in values])


def aggregate_table(table: pa.Table, keys: Sequence[str], aggs: list[AggregateFn]) -> pa.Table:
    """One row per group of ``keys`` (every row when ``keys`` is empty): the key columns,
    then one column per aggregation named as Ray Data names it, sorted by the keys."""
    names = output_names(aggs)
    if not keys:
        states = accumulate_block(aggs, init_states(aggs), table)
        row = finalize_states(aggs, states)
        return pa.table({n: _result_column([row[n]]) for n in names})
    groups = accumulate_groups(aggs, table, list(keys))
    key_tuples = list(groups)
    columns: dict[str, Any] = {}
    for i, key in enumerate(keys):
        columns[key] = pa.array([k[i] for k in key_tuples], type=table.schema.field(key).type)
    finals = [finalize_states(aggs, groups[k]) for k in key_tuples]
    for name in names:
        columns[name] = _result_column([f[name] for f in finals])
    out = pa.table(columns)
    return sort_table(out, [(k, "ascending") for k in keys])


class AggregateReduce:
    """Aggregate every group of one hash partition."""

    def __init__(self, keys: Sequence[str], aggs: list[AggregateFn]) -> None:
        self.keys = list(keys)
        self.aggs = aggs

    def __call__(self, parts: list[pa.Table], index: int, extra: Any = None) -> \
            Iterator[pa.Table]:
        table = combine(parts)
        if table is None:
            return
        if not table.num_rows and self.keys:
            return  # no groups: nothing to report (Ray Data gives an empty dataset)
        yield aggregate_table(table, self.keys, self.aggs)


def group_starts(table: pa.Table, keys: Sequence[str]) -> np.ndarray:
    """The first row of each run of equal ``keys`` in a table sorted by them (nulls are
    equal to each other here, and NaN to NaN: each forms one group)."""
    n = table.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if not keys:
        return np.zeros(1, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        col = one_array(table.column(key))
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        a, b = col.slice(1), col.slice(0, n - 1)
        differ = pc.fill_null(pc.not_equal(a, b), True)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        if pa.types.is_floating(col.type):  # NaN == NaN for grouping
            both_nan = pc.and_(pc.fill_null(pc.is_nan(a), False),
                               pc.fill_null(pc.is_nan(b), False))
            both_null = pc.or_(both_null, both_nan)
        differ = pc.and_(differ, pc.invert(both_null))
        change[1:] |= np.asarray(to_numpy(differ), dtype=bool)
    return np.flatnonzero(change)


def group_bounds(table: pa.Table, keys: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of equal ``keys`` in a table sorted by them."""
    starts = group_starts(table, keys)
    stops = np.append(starts[1:], table.num_rows)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def row_bytes(table: pa.Table) -> np.ndarray:
    """About how many bytes each row of ``table`` takes: fixed-width values at their
    width, strings and binaries at their length (plus the offset), anything else at its
    column's average."""
    n = table.num_rows
    sizes = np.zeros(n, dtype=np.float64)
    for column in table.columns:
        t = column.type
        if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) \
                or pa.types.is_large_binary(t):
            lengths = pc.fill_null(pc.binary_length(column), python_scalar(0))
            sizes += to_numpy(lengths) + (8 if "large" in str(t) else 4)
        elif _bit_width(t):
            sizes += _bit_width(t) / 8
        elif n:
            sizes += column.nbytes / n
    return sizes


def _bit_width(t: pa.DataType) -> int:
    """The width of a fixed-width type's values in bits; 0 for any other type."""
    try:
        return int(t.bit_width)
    except ValueError:
        return 0


_BYTES = "__group_bytes"


def largest_group(tables: Sequence[pa.Table], keys: Sequence[str]) -> \
        tuple[dict[str, Any], int] | None:
    """The key values and size in bytes of the largest group over ``tables`` (the pieces
    of one hash partition), computed piece by piece without putting them together."""
    sums: list[pa.Table] = []
    for table in tables:
        if not table.num_rows:
            continue
        sized = table.select(list(keys)).append_column(_BYTES, number_array(row_bytes(table)))
        sums.append(_bytes_per_group(sized, keys) if keys else
                    pa.table({_BYTES: [pc.sum(sized.column(_BYTES))]}))
    if not sums:
        return None
    merged = pa.concat_tables(sums)
    if keys and len(sums) > 1:
        merged = _bytes_per_group(merged, keys)
    totals = merged.column(_BYTES)
    if not keys:
        return {}, int(pc.sum(totals).as_py())
    at = int(pc.index(totals, pc.max(totals)).as_py())
    row = merged.slice(at, 1).to_pylist()[0]
    return {k: row[k] for k in keys}, int(row[_BYTES])


def _bytes_per_group(sized: pa.Table, keys: Sequence[str]) -> pa.Table:
    return group_aggregate(sized, list(keys), [(_BYTES, "sum", None, _BYTES)])


class GroupPartitionReduce:
    """One hash partition of ``map_groups``: its rows sorted by the keys, cut into blocks
    at group boundaries (every group whole in one block, blocks of about
    ``max_block_bytes`` unless one group is larger). A group larger than
    ``budget_bytes`` fails with :class:`~engine.errors.GroupTooLargeError` before the
    pieces are put together."""

    def __init__(self, keys: Sequence[str], budget_bytes: int,
                 max_block_bytes: int | None) -> None:
        self.keys = list(keys)
        self.budget_bytes = budget_bytes
        self.max_block_bytes = max_block_bytes

    def __call__(self, parts: list[pa.Table], index: int, extra: Any = None) -> \
            Iterator[pa.Table]:
        real = [t for t in parts if t.num_columns or t.num_rows]
        largest = largest_group(real, self.keys)
        if largest is not None and largest[1] > self.budget_bytes:
            key, size = largest
            shown = ", ".join(f"{k}={v!r}" for k, v in key.items()) or "(every row)"
            raise GroupTooLargeError(
                f"map_groups: the group {shown} is about {_mib(size)} ({size} bytes), more "
                f"than the memory budget of {_mib(self.budget_bytes)} "
                f"({self.budget_bytes} bytes); map_groups needs each group whole in memory. "
                "Raise DataContext.memory_budget or group by finer keys")
        table = combine(real)
        if table is None:
            return
        if self.keys:
            table = sort_table(table, [(k, "ascending") for k in self.keys])
        if self.max_block_bytes is None or table.nbytes <= self.max_block_bytes:
            yield table
            return
        starts = group_starts(table, self.keys)
        before = np.concatenate([[0.0], np.cumsum(row_bytes(table))])  # bytes before row i
        at_starts = before[starts]
        n = table.num_rows
        pos = 0
        while pos < n:
            limit = before[pos] + self.max_block_bytes
            if before[n] <= limit:
                cut = n
            else:  # the last group start within the limit, or else the next one
                j = int(np.searchsorted(at_starts, limit, side="right")) - 1
                cut = int(starts[j]) if j >= 0 and starts[j] > pos else -1
                if cut < 0:
                    nxt = int(np.searchsorted(starts, pos, side="right"))
                    cut = int(starts[nxt]) if nxt < len(starts) else n
            yield table.slice(pos, cut - pos)
            pos = cut


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.1f} MiB"
