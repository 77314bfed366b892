"""Dataset.groupby end to end: hash-partitioned aggregations equal pandas; map_groups on
tasks and on actors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed
from engine.aggregate import AggregateFn, Count, Max, Mean, Min, Std, Sum

pytestmark = pytest.mark.usefixtures("module_cluster")


def _ds(n=100, parts=4):
    rng = np.random.default_rng(3)
    xs = rng.permutation(n)
    return ed.from_items([{"A": int(x % 3), "B": int(x)} for x in xs]).repartition(parts)


def test_count_and_sum_per_group():
    agg = _ds().groupby("A").count()
    assert agg.count() == 3
    assert agg.sort("A").take_all() == [{"A": 0, "count()": 34}, {"A": 1, "count()": 33},
                                       {"A": 2, "count()": 33}]
    assert _ds().groupby("A").sum("B").sort("A").take_all() == [
        {"A": 0, "sum(B)": 1683}, {"A": 1, "sum(B)": 1617}, {"A": 2, "sum(B)": 1650}]


def test_multiple_keys_and_none_key():
    ds = ed.from_items([{"A": x % 2, "B": x % 3} for x in range(100)]).repartition(7)
    rows = ds.groupby(["A", "B"]).count().sort(["A", "B"]).take_all()
    assert [r["count()"] for r in rows] == [17, 16, 17, 17, 17, 16]
    assert ed.range(10).groupby(None).min().take_all() == [{"min(id)": 0}]
    assert ed.range(10).groupby(None).max().take_all() == [{"max(id)": 9}]


def test_empty_input_and_errors():
    assert ed.range(10).filter(lambda r: r["id"] > 10).groupby("id").count().count() == 0
    with pytest.raises(ValueError):
        ed.range(10).groupby(lambda x: x % 2)
    with pytest.raises(ValueError, match="foo"):
        ed.range(10).groupby("foo").count().take_all()


def test_user_defined_aggregate_fn():
    agg = AggregateFn(init=lambda k: 0, accumulate_block=lambda a, b: a + len(b),
                      merge=lambda a, b: a + b, name="rows")
    out = _ds().groupby("A").aggregate(agg, Max("B")).sort("A").take_all()
    assert out == [{"A": 0, "rows": 34, "max(B)": 99}, {"A": 1, "rows": 33, "max(B)": 97},
                   {"A": 2, "rows": 33, "max(B)": 98}]


frames = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 3)),
                            st.one_of(st.none(), st.sampled_from(["x", "y"])),
                            st.one_of(st.none(), st.floats(-100, 100, allow_nan=False))),
                  min_size=0, max_size=60)


@given(frames, st.integers(1, 5), st.integers(1, 4), st.booleans())
@settings(max_examples=10, deadline=None)
def test_aggregates_equal_pandas(rows, blocks, partitions, upstream_map):
    df = pd.DataFrame({"k": pd.array([r[0] for r in rows], dtype="Int64"),
                       "s": pd.array([r[1] for r in rows], dtype="string"),
                       "v": pd.array([r[2] for r in rows], dtype="Float64")})
    table = pa.Table.from_pandas(df, preserve_index=False)
    ds = ed.from_arrow(table).repartition(blocks)
    if upstream_map:  # the partial aggregation then runs in the map's tasks
        ds = ds.map_batches(lambda b: b, batch_format="pyarrow")
    got = ds.groupby(["k", "s"], num_partitions=partitions).aggregate(
        Count(), Sum("v"), Min("v"), Max("v"), Mean("v"), Std("v")).to_pandas()
    expected = df.groupby(["k", "s"], dropna=False).agg(
        n=("v", "size"), sum=("v", "sum"), min=("v", "min"), max=("v", "max"),
        mean=("v", "mean"), std=("v", "std")).reset_index()
    assert len(got) == len(expected)
    if not len(rows):
        return

    def key(k, s):
        return (None if pd.isna(k) else int(k), None if pd.isna(s) else str(s))

    exp = {key(r.k, r.s): r for r in expected.itertuples()}
    for r in got.itertuples():
        e = exp[key(r.k, r.s)]
        assert r._3 == e.n  # count()
        no_values = pd.isna(e.min)
        for mine, theirs in ((r._4, e.sum), (r._5, e.min), (r._6, e.max),
                             (r._7, e.mean)):
            if no_values:
                assert mine is None or pd.isna(mine)
            else:
                assert math.isclose(float(mine), float(theirs), rel_tol=1e-9, abs_tol=1e-9)
        if not no_values and not pd.isna(e.std):
            assert math.isclose(float(r._8), float(e.std), rel_tol=1e-6, abs_tol=1e-9)


def test_partial_aggregation_runs_in_the_upstream_map_tasks():
    ds = ed.range(1000, override_num_blocks=8).with_column("k", ed.col("id") % 7)
    grouped = ds.groupby("k").aggregate(Sum("id"), Std("id"), Count())
    rows = grouped.take_all()
    ids = np.arange(1000)
    assert {r["k"]: r["sum(id)"] for r in rows} == \
        {k: int(ids[ids % 7 == k].sum()) for k in range(7)}
    assert {r["k"]: r["count()"] for r in rows} == \
        {k: int((ids % 7 == k).sum()) for k in range(7)}
    for r in rows:
        assert math.isclose(r["std(id)"], float(np.std(ids[ids % 7 == r["k"]], ddof=1)))
    # The read and the projection run in the exchange's map tasks, which aggregate before
    # partitioning: the 16 KB of (id, k) rows never cross, 8 tasks x 7 partial rows do.
    stats = grouped.stats()
    assert "ReadRange->Project(with_column k)->Aggregate" in stats
    assert "map tasks: 8" in stats
    shuffled = int(stats.split("bytes shuffled: ")[1].split()[0])
    assert 0 < shuffled < 16_000 // 2


def test_map_groups_with_a_function_and_batch_formats():
    ds = ed.from_items([{"A": x % 3, "B": x} for x in range(30)]).repartition(4)

    def total(group):
        return {"A": group["A"][:1], "total": [int(np.sum(group["B"]))]}

    out = ds.groupby("A").map_groups(total, batch_format="numpy").sort("A").take_all()
    assert out == [{"A": 0, "total": 135}, {"A": 1, "total": 145}, {"A": 2, "total": 155}]
    pdf = ds.groupby("A").map_groups(lambda g: g.assign(n=len(g)))  # default: pandas
    assert sorted({r["n"] for r in pdf.take_all()}) == [10]
    extra = ds.groupby("A").map_groups(
        lambda g, k, m=1: {"v": [len(g["B"]) * k * m]}, fn_args=(2,), fn_kwargs={"m": 3},
        batch_format="pyarrow")
    assert [r["v"] for r in extra.take_all()] == [60, 60, 60]


class _Scale:
    def __init__(self, factor):
        self.factor = factor

    def __call__(self, group):
        return {"A": group["A"][:1], "scaled": [int(group["B"].sum()) * self.factor]}


def test_map_groups_on_an_actor_pool():
    ds = ed.from_items([{"A": x % 3, "B": x} for x in range(30)]).repartition(3)
    out = ds.groupby("A").map_groups(_Scale, fn_constructor_args=(10,), concurrency=2,
                                     batch_format="numpy")
    assert out.sort("A").take_all() == [{"A": 0, "scaled": 1350}, {"A": 1, "scaled": 1450},
                                        {"A": 2, "scaled": 1550}]


def test_map_groups_null_and_nan_keys_form_groups():
    ds = ed.from_items([{"k": None, "v": 1}, {"k": None, "v": 2}, {"k": 1.0, "v": 3}])
    out = ds.groupby("k").map_groups(lambda g: {"n": [len(g["v"])]},
                                     batch_format="numpy").take_all()
    assert sorted(r["n"] for r in out) == [1, 2]


def test_map_groups_generator_of_dataframes():
    ds = ed.from_items([{"group": 1, "data": 10}, {"group": 1, "data": 20},
                        {"group": 2, "data": 30}])

    def twice(df):
        yield df.assign(data=df["data"] * 2)
        yield df.assign(data=df["data"] * 3)

    assert sorted(r["data"] for r in ds.groupby("group").map_groups(twice).take_all()) == \
        [20, 30, 40, 60, 60, 90]
