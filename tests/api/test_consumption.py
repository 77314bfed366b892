"""Consuming a Dataset end to end: ``materialize``, ``iter_batches``, ``iter_rows``, ``take``,
``take_all``, ``take_batch``, ``count``, ``sum``/``min``/``max``/``mean``, ``schema``,
``columns``, ``show``, ``to_pandas``, ``num_blocks``, ``stats`` and ``explain``, on small
data and on empty datasets (``range(0)``, ``from_items([])``, a filter that drops all).

Expected values come from numpy/pandas or closed forms and match Ray Data 2.60 unless a
comment says why not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed


def _plus_one(batch):
    return {"id": batch["id"] + 1}


@pytest.fixture
def ordered(fresh_context):
    """Keep output order, for checks of exact row sequences across several blocks."""
    fresh_context.execution_options.preserve_order = True
    return fresh_context


# ============================================================================ materialize


def test_materialize_keeps_blocks_and_rows(ordered):
    ds = ed.range(30, override_num_blocks=3).map_batches(_plus_one)
    mat = ds.materialize()
    assert isinstance(mat, ed.MaterializedDataset)
    assert mat.count() == 30 and mat.num_blocks() == 3
    assert mat.materialize() is mat
    expected = [{"id": i} for i in range(1, 31)]
    assert mat.take_all() == expected
    assert mat.take_all() == expected  # iterating again reads the same blocks
    assert mat.map_batches(_plus_one).sum("id") == sum(range(2, 32))
    assert "MapBatches(_plus_one)" in mat.stats()  # the stats of its production


# ============================================================================ iter_batches


def test_iter_batches_exact_sizes_across_blocks(ordered):
    ds = ed.range(10, override_num_blocks=3)
    batches = list(ds.iter_batches(batch_size=4))
    assert [len(b["id"]) for b in batches] == [4, 4, 2]
    assert np.concatenate([b["id"] for b in batches]).tolist() == list(range(10))
    assert all(b["id"].dtype == np.int64 for b in batches)
    dropped = list(ds.iter_batches(batch_size=4, drop_last=True))
    assert [b["id"].tolist() for b in dropped] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [len(b["id"]) for b in ds.iter_batches(batch_size=5, drop_last=True)] == [5, 5]


@settings(deadline=None, max_examples=25)
@given(n=st.integers(0, 120), blocks=st.integers(1, 7), batch_size=st.integers(1, 50),
       drop_last=st.booleans())
def test_iter_batches_sizes_follow_the_closed_form(n, blocks, batch_size, drop_last):
    ctx = ed.DataContext.get_current()
    saved, ctx.execution_options.preserve_order = ctx.execution_options.preserve_order, True
    try:
        batches = list(ed.range(n, override_num_blocks=blocks).iter_batches(
            batch_size=batch_size, drop_last=drop_last))
    finally:
        ctx.execution_options.preserve_order = saved
    full, rest = divmod(n, batch_size)
    expected = [batch_size] * full + ([rest] if rest and not drop_last else [])
    assert [len(b["id"]) for b in batches] == expected
    kept = sum(expected)
    got = np.concatenate([b["id"] for b in batches]).tolist() if batches else []
    assert got == list(range(kept))


def test_iter_batches_default_size_and_whole_blocks():
    assert [len(b["id"]) for b in ed.range(600).iter_batches()] == [256, 256, 88]
    blocks = ed.range(10, override_num_blocks=2).iter_batches(batch_size=None)
    assert sorted(len(b["id"]) for b in blocks) == [5, 5]


@pytest.mark.parametrize(("batch_format", "kind"), [
    ("default", dict), ("numpy", dict), ("pandas", pd.DataFrame), ("pyarrow", pa.Table),
    (None, pa.Table)])
def test_iter_batches_formats(batch_format, kind, ordered):
    batches = list(ed.range(6, override_num_blocks=2).iter_batches(
        batch_size=4, batch_format=batch_format))
    assert all(isinstance(b, kind) for b in batches)
    assert [len(b) if kind is not dict else len(b["id"]) for b in batches] == [4, 2]
    if kind is pd.DataFrame:
        # Arrow-backed dtypes, Ray Data 2.60's default
        pd.testing.assert_frame_equal(batches[0], pd.DataFrame(
            {"id": pd.array([0, 1, 2, 3], dtype="int64[pyarrow]")}))
    elif kind is pa.Table:
        assert batches[1].equals(pa.table({"id": pa.array([4, 5], pa.int64())}))


@pytest.mark.parametrize("prefetch_batches", [0, 1, 4])
def test_iter_batches_prefetch_gives_same_batches(prefetch_batches, ordered):
    ds = ed.range(50, override_num_blocks=5).map_batches(_plus_one)
    batches = list(ds.iter_batches(batch_size=8, prefetch_batches=prefetch_batches))
    assert [len(b["id"]) for b in batches] == [8] * 6 + [2]
    assert np.concatenate([b["id"] for b in batches]).tolist() == list(range(1, 51))


def test_iter_batches_tensor_shapes():
    ds = ed.range_tensor(7, shape=(3, 2))
    shapes = [b["data"].shape for b in ds.iter_batches(batch_size=3)]
    assert shapes == [(3, 3, 2), (3, 3, 2), (1, 3, 2)]


def test_iter_batches_early_break_then_reuse():
    ds = ed.range(1000, override_num_blocks=10).map_batches(_plus_one)
    for i, _ in enumerate(ds.iter_batches(batch_size=10)):
        if i == 1:
            break
    assert ds.sum("id") == sum(range(1, 1001))


# ============================================================================ rows


def test_iter_rows_and_take(ordered):
    ds = ed.range(5, override_num_blocks=2)
    rows = list(ds.iter_rows())
    assert rows == [{"id": i} for i in range(5)]
    assert all(type(r["id"]) is int for r in rows)  # Python ints, as in Ray Data
    assert ds.take(3) == [{"id": 0}, {"id": 1}, {"id": 2}]
    assert ds.take() == rows  # default limit 20
    assert ds.take(0) == []
    assert len(ed.range(100).take()) == 20


def test_take_all_and_its_limit():
    ds = ed.range(10)
    assert sorted(r["id"] for r in ds.take_all()) == list(range(10))
    assert len(ds.take_all(limit=10)) == 10
    with pytest.raises(ValueError, match="more than the given limit of 5"):
        ds.take_all(limit=5)


def test_take_batch_per_format(ordered):
    ds = ed.range(10, override_num_blocks=3)
    batch = ds.take_batch(3)
    assert list(batch) == ["id"]
    np.testing.assert_array_equal(batch["id"], np.array([0, 1, 2]))
    assert batch["id"].dtype == np.int64
    pd.testing.assert_frame_equal(ds.take_batch(3, batch_format="pandas"),  # Arrow-backed
                                  pd.DataFrame({"id": [0, 1, 2]}).convert_dtypes(
                                      dtype_backend="pyarrow"))
    table = ds.take_batch(3, batch_format="pyarrow")
    assert isinstance(table, pa.Table) and table.equals(pa.table({"id": [0, 1, 2]}))
    assert isinstance(ds.take_batch(3, batch_format=None), pa.Table)
    assert len(ds.take_batch()["id"]) == 10  # default 20, fewer rows exist
    assert len(ed.range(100).take_batch()["id"]) == 20


def test_show_prints_rows_like_ray(capsys, ordered):
    ed.range(10, override_num_blocks=2).show(3)
    assert capsys.readouterr().out == "{'id': 0}\n{'id': 1}\n{'id': 2}\n"
    ed.from_items([{"a": 1, "s": "x", "f": 0.5}]).show()
    assert capsys.readouterr().out == "{'a': 1, 's': 'x', 'f': 0.5}\n"
    ed.range_tensor(1, shape=(2,)).show()
    assert capsys.readouterr().out == "{'data': array([0, 0])}\n"


# ============================================================================ aggregates


def test_count_and_column_aggregates_match_numpy():
    values = np.array([3.5, -1.0, 7.25, 0.0, 2.0])
    ds = ed.from_items([{"x": float(v), "i": i} for i, v in enumerate(values)])
    assert ds.count() == 5
    assert ds.sum("x") == pytest.approx(values.sum())
    assert ds.min("x") == values.min() and ds.max("x") == values.max()
    assert ds.mean("x") == pytest.approx(values.mean())
    r = ed.range(101, override_num_blocks=4)
    assert r.sum("id") == 5050 and type(r.sum("id")) is int
    assert (r.min("id"), r.max("id"), r.mean("id")) == (0, 100, 50.0)
    assert ds.sum(["x", "i"]) == {"sum(x)": pytest.approx(values.sum()), "sum(i)": 10}
    assert ds.mean(["i"]) == 2.0  # one column in a list gives a scalar, as in Ray Data


def test_count_after_filter_and_flat_map():
    assert ed.range(100).filter(lambda r: r["id"] % 4 == 0).count() == 25
    assert ed.range(10).flat_map(lambda r: [r, r]).count() == 20


# ============================================================================ schema, pandas


def test_schema_and_columns():
    df = pd.DataFrame({"a": [1, 2], "f": [0.5, 1.5], "b": [True, False]})
    ds = ed.from_pandas(df).map_batches(lambda b: b)
    schema = ds.schema()
    assert schema.names == ["a", "f", "b"]
    assert schema.types == [pa.int64(), pa.float64(), pa.bool_()]
    assert ds.columns() == ["a", "f", "b"]
    assert "a       int64" in repr(schema)  # printed as a table, like Ray Data's Schema


def test_to_pandas_matches_pandas():
    ds = ed.from_items([{"a": i, "f": i / 2} for i in range(6)], override_num_blocks=3)
    expected = pd.DataFrame({"a": range(6), "f": [i / 2 for i in range(6)]})
    got = ds.to_pandas().sort_values("a").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.convert_dtypes(dtype_backend="pyarrow"))
    with pytest.raises(ValueError, match="more than limit=5"):
        ds.to_pandas(limit=5)


# ============================================================================ stats, explain


def test_stats_mention_every_operator():
    ds = ed.range(100, override_num_blocks=4).map_batches(_plus_one, batch_size=10)
    assert ds.stats().startswith("No execution yet")
    ds = ds.filter(lambda r: r["id"] % 2 == 0).map(lambda r: {"id": r["id"] * 3})
    assert len(ds.take_all()) == 50
    stats = ds.stats()
    for name in ("ReadRange", "MapBatches(_plus_one)", "Filter(<lambda>)", "Map(<lambda>)"):
        assert name in stats, stats
    assert "rows out: 50" in stats


def test_stats_after_take_report_that_run():
    ds = ed.range(100, override_num_blocks=4).map_batches(_plus_one)
    ds.take(5)  # runs ds.limit(5): Ray Data reports it on ds too
    assert "MapBatches(_plus_one)" in ds.stats() and "Limit[5]" in ds.stats()


def test_stats_after_iter_batches_include_the_iterator_breakdown():
    ds = ed.range(1000, override_num_blocks=4).map_batches(_plus_one)
    batches = list(ds.iter_batches(batch_size=100))
    assert len(batches) == 10
    stats = ds.stats()
    assert "MapBatches(_plus_one)" in stats  # the execution's stats come first
    assert stats.index("Dataset iterator time breakdown") > stats.index("MapBatches")
    assert "User thread blocked per batch (10 batches)" in stats
    assert "Total time user thread is blocked by iter_batches" in stats


def test_stats_show_the_breakdown_of_the_latest_pass_only():
    ds = ed.range(1000, override_num_blocks=4).map_batches(_plus_one)
    assert sum(len(b["id"]) for b in ds.iter_batches(batch_size=100)) == 1000
    assert ds.count() == 1000  # a later run that no iterator consumed
    assert "Dataset iterator time breakdown" not in ds.stats()
    assert sum(len(b["id"]) for b in ds.iter_batches(batch_size=250)) == 1000
    assert "(4 batches)" in ds.stats()


def test_materialized_stats_add_the_breakdown_of_a_pass_over_its_blocks():
    mat = ed.range(1000, override_num_blocks=4).map_batches(_plus_one).materialize()
    assert "Dataset iterator time breakdown" not in mat.stats()
    assert sum(len(b["id"]) for b in mat.iter_batches(batch_size=500)) == 1000
    stats = mat.stats()
    assert "MapBatches(_plus_one)" in stats  # its production
    assert "User thread blocked per batch (2 batches)" in stats


def test_explain_prints_plans(capsys):
    ds = ed.range(10).map_batches(_plus_one).filter(lambda r: r["id"] > 2).limit(3)
    out = ds.explain()
    printed = capsys.readouterr().out
    assert printed.strip() == out.strip()
    logical, optimized, physical = (printed.split(f"-------- {t} --------")[1] for t in (
        "Logical Plan", "Logical Plan (Optimized)", "Physical Plan"))
    for name in ("ReadRange", "MapBatches(_plus_one)", "Filter(<lambda>)", "Limit[3]"):
        assert name in logical.split("--------")[0]
    assert "ReadRange->MapBatches(_plus_one)->Filter(<lambda>)" in optimized
    assert "TaskPoolMapOperator" in physical and "Limit" in physical


# ============================================================================ empty datasets


# Built inside the tests, never at collection: a source starts the cluster, whose workers
# would then miss the test directories pytest adds to sys.path later.
_EMPTY = {
    "range(0)": lambda: ed.range(0),
    "from_items([])": lambda: ed.from_items([]),
    "filter drops all": lambda: ed.range(10, override_num_blocks=2).filter(lambda r: False),
    "map_batches of range(0)": lambda: ed.range(0).map_batches(_plus_one),
    "limit(0)": lambda: ed.range(10).limit(0),
}


@pytest.mark.parametrize("name", list(_EMPTY))
def test_empty_dataset_consumption(name):
    ds = _EMPTY[name]()
    assert ds.count() == 0
    assert ds.take_all() == [] and ds.take(5) == []
    assert list(ds.iter_batches()) == [] and list(ds.iter_rows()) == []
    assert list(ds.iter_batches(batch_format="pandas")) == []
    assert len(ds.to_pandas()) == 0
    assert ds.materialize().count() == 0
    with pytest.raises(ValueError, match="empty"):
        ds.take_batch()


@pytest.mark.parametrize("name", ["range(0)", "filter drops all", "limit(0)"])
def test_empty_dataset_aggregates_are_none(name):
    ds = _EMPTY[name]()
    assert (ds.sum("id"), ds.min("id"), ds.max("id"), ds.mean("id")) == (None,) * 4


def test_empty_dataset_schemas():
    assert ed.from_items([]).schema() is None  # Ray Data: None
    assert ed.from_items([]).columns() is None
    assert ed.from_items([]).sum("x") is None
    # A filter that drops everything keeps its input's schema (as in Ray Data).
    dropped = ed.range(10).filter(lambda r: False)
    assert dropped.schema().names == ["id"] and dropped.columns() == ["id"]
    # Ray Data 2.60 says None for range(0): its schema is known, so the engine gives it.
    assert ed.range(0).schema().names == ["id"]


def test_empty_batches_reach_no_udf():
    calls = ed.range(10).filter(lambda r: False).map_batches(
        lambda b: {"n": np.array([len(b["id"])])})
    assert calls.take_all() == []


def test_projections_of_empty_datasets():
    # Without columns there is nothing to check against: an empty result, as in Ray Data.
    assert ed.from_items([]).select_columns(["id"]).take_all() == []
    # With a schema, a projection is still checked as written: no rows is no excuse.
    empty = ed.range(10).filter(expr=ed.col("id") > 100)
    assert empty.select_columns(["id"]).take_all() == []
    with pytest.raises(ValueError, match=r"column\(s\) \['typo'\] not found"):
        empty.select_columns(["typo"]).take_all()
    with pytest.raises(TypeError, match="cannot evaluate"):
        empty.with_column("z", ed.col("id") + ed.lit("x")).take_all()
