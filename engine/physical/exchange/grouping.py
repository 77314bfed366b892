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


def group_bounds(table: pa.Table, keys: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of equal ``keys`` in a table sorted by them (nulls
    are equal to each other here: they form one group)."""
    n = table.num_rows
    if n == 0:
        return []
    if not keys:
        return [(0, n)]
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        col = table.column(key).combine_chunks()
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
        change[1:] |= np.asarray(differ.to_numpy(zero_copy_only=False), dtype=bool)
    starts = np.flatnonzero(change)
    stops = np.append(starts[1:], n)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))
