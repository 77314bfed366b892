"""Unit tests of the exchange's partitioning kernels (no workers)."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.physical.exchange.grouping import aggregate_table, group_bounds
from engine.physical.exchange.partition import (
    column_hash,
    hash_partition_ids,
    range_partition_ids,
    split_by_ids,
)
from engine.physical.exchange.tasks import join_tables, sort_table

values = st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=0, max_size=60)


def test_equal_values_hash_equal_across_types_and_blocks():
    a = column_hash(pa.array([1, 2, None, 3], type=pa.int32()))
    b = column_hash(pa.chunked_array([pa.array([3, 1], type=pa.int64()),
                                      pa.array([None, 2], type=pa.int64())]))
    assert a[0] == b[1] and a[1] == b[3] and a[2] == b[2] and a[3] == b[0]
    s1 = column_hash(pa.array(["x", "y", None]))
    s2 = column_hash(pa.array(["y", "x", None]).dictionary_encode())
    assert s1[0] == s2[1] and s1[1] == s2[0] and s1[2] == s2[2]
    f = column_hash(pa.array([0.0, -0.0, 1.5]))
    assert f[0] == f[1] != f[2]


@given(values, st.integers(1, 7))
@settings(max_examples=30, deadline=None)
def test_split_by_hash_keeps_every_row_and_puts_equal_keys_together(xs, n):
    table = pa.table({"k": pa.array(xs, type=pa.int64()), "i": np.arange(len(xs))})
    ids = hash_partition_ids(table, ["k"], n)
    parts = split_by_ids(table, ids, n)
    assert len(parts) == n
    assert sorted(pa.concat_tables(parts)["i"].to_pylist()) == list(range(len(xs)))
    owners: dict = {}
    for p, part in enumerate(parts):
        assert part.schema == table.schema
        for k in part["k"].to_pylist():
            assert owners.setdefault(k, p) == p
        assert part["i"].to_pylist() == sorted(part["i"].to_pylist())  # order kept


@given(values, st.lists(st.integers(-6, 6), min_size=1, max_size=4, unique=True),
       st.booleans())
@settings(max_examples=30, deadline=None)
def test_range_partitions_are_ordered_and_nulls_go_last(xs, bounds, descending):
    order = "descending" if descending else "ascending"
    table = pa.table({"k": pa.array(xs, type=pa.int64())})
    boundaries = pa.table({"k": sorted(bounds, reverse=descending)})
    ids = range_partition_ids(table, [("k", order)], boundaries)
    parts = split_by_ids(table, ids, len(bounds) + 1)
    flat = [v for p in parts for v in sort_table(p, [("k", order)])["k"].to_pylist()]
    assert flat == sort_table(table, [("k", order)])["k"].to_pylist()
    for p, part in enumerate(parts):  # ascending: bounds[p-1] <= x < bounds[p]
        for v in part["k"].to_pylist():
            if v is None:
                continue
            asc = sorted(bounds)
            position = sum(1 for b in asc if b <= v)
            assert p == (position if not descending else len(bounds) - position)


def test_float_boundaries_on_an_int_column():
    table = pa.table({"id": pa.array(range(10))})
    ids = range_partition_ids(table, [("id", "ascending")], pa.table({"id": [4.5]}))
    assert ids.tolist() == [0] * 5 + [1] * 5


def test_sort_table_is_stable_with_mixed_directions():
    table = pa.table({"a": [1, 1, 2, None, 2, 1], "b": [3, 3, 1, 0, None, 2],
                      "i": range(6)})
    out = sort_table(table, [("a", "descending"), ("b", "ascending")])
    assert out["i"].to_pylist() == [2, 4, 5, 0, 1, 3]


def test_group_bounds_treat_nulls_and_nans_as_one_group():
    table = pa.table({"k": [None, None, 1.0, float("nan"), float("nan")]})
    assert group_bounds(table, ["k"]) == [(0, 2), (2, 3), (3, 5)]


def test_aggregate_table_names_and_values():
    from engine.aggregate import Count, Mean, Sum

    table = pa.table({"k": ["a", "b", "a", None], "v": [1, 2, 3, 4]})
    out = aggregate_table(table, ["k"], [Count(), Sum("v"), Mean("v")])
    assert out.column_names == ["k", "count()", "sum(v)", "mean(v)"]
    assert out.to_pylist() == [{"k": "a", "count()": 2, "sum(v)": 4, "mean(v)": 2.0},
                               {"k": "b", "count()": 1, "sum(v)": 2, "mean(v)": 2.0},
                               {"k": None, "count()": 1, "sum(v)": 4, "mean(v)": 4.0}]


def test_null_join_keys_never_match():
    left = pa.table({"k": [1, None], "x": [1, 2]})
    right = pa.table({"k": [1, None], "y": [3, 4]})
    inner = join_tables(left, right, "inner", ["k"], ["k"], None, None)
    assert inner.to_pylist() == [{"k": 1, "x": 1, "y": 3}]
    anti = join_tables(left, right, "left_anti", ["k"], ["k"], None, None)
    assert pc.sum(anti["x"]).as_py() == 2


def test_partial_aggregates_merge_to_the_whole_table_result():
    from engine.aggregate import Count, Max, Mean, Min, Std, Sum
    from engine.physical.exchange.partial_agg import PartialAggregateReduce, partial_table

    rng = np.random.default_rng(5)
    table = pa.table({"k": rng.integers(0, 4, 300), "v": rng.normal(50, 3, 300)})
    aggs = [Count(), Sum("v"), Min("v"), Max("v"), Mean("v"), Std("v")]
    pieces = [partial_table(table.slice(i, 60), ["k"], aggs) for i in range(0, 300, 60)]
    merged = next(PartialAggregateReduce(["k"], aggs)(pieces, 0))
    whole = aggregate_table(table, ["k"], aggs)
    assert merged.column_names == whole.column_names
    for name in merged.column_names:
        assert np.allclose(merged[name].to_numpy(), whole[name].to_numpy(), rtol=1e-9)


@given(st.lists(st.integers(0, 5), min_size=0, max_size=50), st.integers(0, 12),
       st.booleans())
@settings(max_examples=40, deadline=None)
def test_top_k_equals_the_head_of_a_stable_sort(xs, k, descending):
    from engine.physical.exchange.tasks import top_k

    keys = [("x", "descending" if descending else "ascending")]
    table = pa.table({"x": pa.array(xs, type=pa.int64()), "i": np.arange(len(xs))})
    assert top_k(table, keys, k).to_pylist() == sort_table(table, keys).slice(0, k).to_pylist()


_numbers = st.one_of(
    st.lists(st.integers(-3, 3), max_size=80),  # many ties
    st.lists(st.integers(-(1 << 62), 1 << 62), max_size=80, unique=True),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=80),
    st.lists(st.floats(-1e6, 1e6), max_size=80, unique=True),
    st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), max_size=80))


@given(_numbers, st.booleans(), st.sampled_from(["int64", "uint64", "int8", "float64"]),
       st.integers(1, 4))
@settings(max_examples=120, deadline=None)
def test_sort_table_fast_path_equals_arrows_stable_sort(xs, descending, kind, chunks):
    """The numpy fast path (one numeric key) gives exactly Arrow's stable order, nulls and
    NaNs last, in both directions and over several chunks."""
    floats = any(isinstance(x, float) for x in xs)
    if kind == "uint64" and not floats:
        xs = [None if x is None else abs(x) for x in xs]
    if kind == "int8" and not floats:
        xs = [None if x is None else max(-128, min(127, x)) for x in xs]
    if kind == "float64":
        xs = [None if x is None else float(x) for x in xs]
    type_ = pa.float64() if floats or kind == "float64" else getattr(pa, kind)()
    column = pa.array(xs, type=type_)
    bounds = np.linspace(0, len(xs), chunks + 1).astype(int)
    table = pa.Table.from_batches(
        [pa.record_batch([column.slice(a, b - a), pa.array(np.arange(a, b))], ["k", "i"])
         for a, b in itertools.pairwise(bounds.tolist())],
        schema=pa.schema([("k", type_), ("i", pa.int64())]))
    keys = [("k", "descending" if descending else "ascending")]
    order = pc.sort_indices(table, sort_keys=[(*keys[0], "at_end")])
    expected = table.take(order).column("i").to_pylist()
    assert sort_table(table, keys).column("i").to_pylist() == expected
