"""Expressions and column operations through the Dataset API, end to end.

``filter(expr=)``/``filter(fn)``, ``with_column``, ``add_column``, ``select_columns``,
``drop_columns``, ``rename_columns``, ``random_sample``, ``randomize_block_order``,
``union`` and ``zip``: results on small data (shapes checked against Ray Data 2.60), errors
on bad arguments (naming the column), empty datasets, and a property test that expressions
evaluated by the engine equal the same expressions evaluated with pandas.

These tests start workers; none depends on timing.
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed
from engine import col, lit

ROWS = [
    {"a": 1, "b": 2.0, "s": "Ab"},
    {"a": None, "b": 3.0, "s": None},
    {"a": 5, "b": None, "s": "xyz"},
    {"a": -2, "b": 0.5, "s": "x"},
]


@pytest.fixture(autouse=True)
def _in_order(fresh_context: ed.DataContext) -> None:
    """Compare rows in input order (the default lets blocks finish in any order)."""
    fresh_context.execution_options.preserve_order = True


@pytest.fixture
def ds() -> ed.Dataset:
    return ed.from_items(ROWS, override_num_blocks=2)


@pytest.fixture
def empty(ds: ed.Dataset) -> ed.Dataset:
    """A dataset with the columns of ``ds`` and no rows."""
    return ds.filter(expr=col("a") > 100)


def rows_of(dataset: ed.Dataset) -> list[dict[str, Any]]:
    return dataset.take_all()


def column(dataset: ed.Dataset, name: str) -> list[Any]:
    return [r[name] for r in dataset.take_all()]


# ---------------------------------------------------------------- filter


def test_filter_by_expression(ds: ed.Dataset) -> None:
    assert column(ds.filter(expr=col("a") > 0), "a") == [1, 5]
    assert column(ds.filter(expr=(col("a") > 0) & (col("b") > 1)), "a") == [1]
    assert column(ds.filter(expr=(col("a") < 0) | col("b").is_null()), "a") == [5, -2]
    assert column(ds.filter(expr=~(col("a") > 0)), "a") == [-2]  # null stays out
    assert column(ds.filter(expr=col("a").is_null()), "b") == [3.0]
    assert column(ds.filter(expr=col("a").is_not_null()), "a") == [1, 5, -2]
    assert column(ds.filter(expr=col("a").is_in([1, -2])), "a") == [1, -2]
    assert column(ds.filter(expr=col("s").str.starts_with("x")), "s") == ["xyz", "x"]
    assert column(ds.filter(expr=col("s") == "Ab"), "s") == ["Ab"]


def test_filter_by_function(ds: ed.Dataset) -> None:
    assert column(ds.filter(lambda r: r["s"] is not None and len(r["s"]) > 1), "s") == \
        ["Ab", "xyz"]


def test_filter_arguments(ds: ed.Dataset) -> None:
    with pytest.raises(ValueError, match="exactly one of fn or expr"):
        ds.filter()
    with pytest.raises(ValueError, match="exactly one of fn or expr"):
        ds.filter(lambda r: True, expr=col("a") > 1)
    with pytest.raises(TypeError, match="not a string"):
        ds.filter(expr="a > 1")
    with pytest.raises(ValueError, match="must be a UserDefinedFunction"):
        ds.filter(5)  # type: ignore[arg-type]  # Ray Data's ValueError


def test_filter_errors_name_the_column_or_the_type(ds: ed.Dataset) -> None:
    with pytest.raises(ValueError, match="column 'zz' not found"):
        ds.filter(expr=col("zz") > 1).take_all()
    with pytest.raises(TypeError, match="must give booleans"):
        ds.filter(expr=col("a") + 1).take_all()
    # Like Ray Data, any truthy value keeps a row (None drops it); only a value without a
    # truth value is an error.
    assert [r["a"] for r in ds.filter(lambda r: r["a"]).take_all()] == [1, 5, -2]
    with pytest.raises(TypeError, match="must return a bool"):
        ds.filter(lambda r: pd.Series([r["a"], r["a"]])).take_all()


def test_filter_on_empty_dataset(empty: ed.Dataset) -> None:
    assert empty.filter(expr=col("a") > 0).take_all() == []
    assert empty.filter(lambda r: True).count() == 0


# ---------------------------------------------------------------- with_column


def test_with_column_arithmetic_and_nulls(ds: ed.Dataset) -> None:
    out = ds.with_column("c", col("a") * 2 + col("b"))
    assert out.columns() == ["a", "b", "s", "c"]
    assert column(out, "c") == [4.0, None, None, -3.5]
    assert column(ds.with_column("c", col("a") - 1), "c") == [0, None, 4, -3]
    assert column(ds.with_column("c", col("a") / 2), "c") == [0.5, None, 2.5, -1.0]
    assert column(ds.with_column("c", col("a") // 2), "c") == [0, None, 2, -1]
    assert column(ds.with_column("c", col("a") % 2), "c") == [1, None, 1, 0]
    assert column(ds.with_column("c", -col("a")), "c") == [-1, None, -5, 2]
    assert column(ds.with_column("c", lit(7)), "c") == [7, 7, 7, 7]


def test_with_column_comparisons_and_booleans(ds: ed.Dataset) -> None:
    assert column(ds.with_column("c", col("a") >= 1), "c") == [True, None, True, False]
    assert column(ds.with_column("c", col("a") != 5), "c") == [True, None, False, True]
    # Kleene logic: null | true is true, null & false is false.
    assert column(ds.with_column("c", (col("a") > 0) | (col("b") > 2)), "c") == \
        [True, True, True, False]
    assert column(ds.with_column("c", (col("a") > 0) & (col("b") > 2)), "c") == \
        [False, None, None, False]
    assert column(ds.with_column("c", col("b").is_null()), "c") == [False, False, True, False]
    assert column(ds.with_column("c", col("a").is_in([5, 1])), "c") == [True, False, True, False]


def test_with_column_replaces_an_existing_column(ds: ed.Dataset) -> None:
    out = ds.with_column("a", col("a") + 1)
    assert out.columns() == ["a", "b", "s"]
    assert column(out, "a") == [2, None, 6, -1]


def test_with_column_takes_the_given_name_over_an_alias(ds: ed.Dataset) -> None:
    out = ds.with_column("c", (col("a") + 1).alias("other"))
    assert out.columns() == ["a", "b", "s", "c"]


def test_with_column_string_helpers(ds: ed.Dataset) -> None:
    assert column(ds.with_column("c", col("s").str.upper()), "c") == ["AB", None, "XYZ", "X"]
    assert column(ds.with_column("c", col("s").str.len()), "c") == [2, None, 3, 1]
    assert column(ds.with_column("c", col("s").str.contains("y")), "c") == \
        [False, None, True, False]


def test_with_column_datetime_helpers() -> None:
    ds = ed.from_items([{"t": datetime.datetime(2024, 3, 5, 10, 30)},
                        {"t": datetime.datetime(1999, 12, 31, 23, 59)}])
    out = (ds.with_column("y", col("t").dt.year()).with_column("m", col("t").dt.month())
           .with_column("h", col("t").dt.hour())
           .with_column("f", col("t").dt.strftime("%Y/%m")))
    assert [(r["y"], r["m"], r["h"], r["f"]) for r in out.take_all()] == \
        [(2024, 3, 10, "2024/03"), (1999, 12, 23, "1999/12")]


def test_with_column_errors(ds: ed.Dataset) -> None:
    with pytest.raises(TypeError, match="needs an expression"):
        ds.with_column("c", 5)
    with pytest.raises(TypeError, match="needs an expression"):
        ds.with_column("c", lambda b: b)
    with pytest.raises(ValueError, match="column 'zz' not found"):
        ds.with_column("c", col("zz") + 1).take_all()
    with pytest.raises(TypeError, match="string"):
        ds.with_column("c", col("s") + col("a")).take_all()


def test_with_column_on_empty_dataset(empty: ed.Dataset) -> None:
    out = empty.with_column("c", col("a") * 2)
    assert out.take_all() == []
    assert out.columns() == ["a", "b", "s", "c"]


# ---------------------------------------------------------------- add_column


def test_add_column_from_a_batch_function(ds: ed.Dataset) -> None:
    out = ds.add_column("c", lambda df: df["b"].fillna(0) * 10)
    assert out.columns() == ["a", "b", "s", "c"]
    assert column(out, "c") == [20.0, 30.0, 0.0, 5.0]
    pyarrow_out = ds.add_column("n", lambda t: [len(t)] * len(t), batch_format="pyarrow")
    assert sorted(set(column(pyarrow_out, "n"))) == [2]  # one call per block of 2 rows


def test_add_column_replaces_an_existing_column(ds: ed.Dataset) -> None:
    out = ds.add_column("b", lambda df: df["b"].fillna(-1))
    assert out.columns() == ["a", "b", "s"]
    assert column(out, "b") == [2.0, 3.0, -1.0, 0.5]


def test_add_column_errors(ds: ed.Dataset) -> None:
    with pytest.raises(TypeError, match="add_column needs a function"):
        ds.add_column("c", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_format"):
        ds.add_column("c", lambda df: df["a"], batch_format="xml")
    with pytest.raises(ValueError, match=r"'c'.*returned 1 values for a batch of 2 rows"):
        ds.add_column("c", lambda df: [1]).take_all()
    with pytest.raises(KeyError, match="zz"):
        ds.add_column("c", lambda df: df["zz"]).take_all()


def test_add_column_on_empty_dataset(empty: ed.Dataset) -> None:
    assert empty.add_column("c", lambda df: df["a"] * 2).take_all() == []


# ---------------------------------------------------------------- select / drop / rename


def test_select_columns_keeps_and_orders(ds: ed.Dataset) -> None:
    assert ds.select_columns(["s", "a"]).take(1) == [{"s": "Ab", "a": 1}]
    assert ds.select_columns("b").columns() == ["b"]


def test_drop_columns(ds: ed.Dataset) -> None:
    assert ds.drop_columns(["a", "s"]).take(1) == [{"b": 2.0}]
    assert ds.drop_columns("b").columns() == ["a", "s"]


def test_rename_columns_with_a_dict_or_a_list(ds: ed.Dataset) -> None:
    assert ds.rename_columns({"a": "x"}).columns() == ["x", "b", "s"]
    assert ds.rename_columns({"a": "b", "b": "a"}).take(1) == [{"b": 1, "a": 2.0, "s": "Ab"}]
    assert ds.rename_columns(["x", "y", "z"]).take(1) == [{"x": 1, "y": 2.0, "z": "Ab"}]


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda d: d.select_columns(["a", "zz"]), ValueError, r"select_columns.*\['zz'\]"),
    (lambda d: d.drop_columns(["zz"]), ValueError, r"drop_columns.*\['zz'\]"),
    (lambda d: d.rename_columns({"zz": "q"}), ValueError, r"rename_columns.*\['zz'\]"),
    (lambda d: d.rename_columns({"a": "b"}), ValueError, r"rename_columns.*\['b'\].*taken"),
])
def test_column_operations_name_a_missing_column(ds: ed.Dataset, call: Any, error: type,
                                                 message: str) -> None:
    with pytest.raises(error, match=message):
        call(ds).take_all()


def test_column_operations_reject_bad_arguments_eagerly(ds: ed.Dataset) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        ds.select_columns(["a", "a"])
    with pytest.raises(ValueError, match="duplicate"):
        ds.drop_columns(["a", "a"])
    with pytest.raises(ValueError, match="unique"):
        ds.rename_columns({"a": "x", "b": "x"})
    with pytest.raises(ValueError, match="got 2 names for 3 columns"):
        ds.rename_columns(["x", "y"])
    with pytest.raises(TypeError, match="dict or a list"):
        ds.rename_columns("a")  # type: ignore[arg-type]


def test_column_operations_on_empty_dataset(empty: ed.Dataset) -> None:
    assert empty.select_columns(["s"]).columns() == ["s"]
    assert empty.drop_columns(["s"]).columns() == ["a", "b"]
    assert empty.rename_columns({"s": "t"}).columns() == ["a", "b", "t"]
    assert empty.rename_columns({"s": "t"}).take_all() == []


# ---------------------------------------------------------------- sampling and order


def test_random_sample_is_seeded_and_bounded() -> None:
    ds = ed.range(1000, override_num_blocks=4)
    first = [r["id"] for r in ds.random_sample(0.3, seed=7).take_all()]
    again = [r["id"] for r in ds.random_sample(0.3, seed=7).take_all()]
    assert sorted(first) == sorted(again)
    assert len(set(first)) == len(first)
    assert 150 < len(first) < 450  # binomial(1000, 0.3): ten standard deviations wide
    # Each block draws its own mask (one seed shared by every block would repeat it).
    offsets = [{i % 250 for i in first if lo <= i < lo + 250} for lo in range(0, 1000, 250)]
    assert len({frozenset(o) for o in offsets}) == 4
    assert ds.random_sample(0.0).count() == 0
    assert ds.random_sample(1.0).count() == 1000


def test_random_sample_errors_and_empty() -> None:
    with pytest.raises(ValueError, match="fraction must be in"):
        ed.range(10).random_sample(1.5)
    with pytest.raises(ValueError, match="fraction must be in"):
        ed.range(10).random_sample(-0.1)
    assert ed.range(0).random_sample(0.5, seed=1).take_all() == []


def test_randomize_block_order_moves_whole_blocks() -> None:
    ds = ed.range(20, override_num_blocks=5)
    ids = [r["id"] for r in ds.randomize_block_order(seed=3).take_all()]
    assert sorted(ids) == list(range(20))
    runs = [ids[i:i + 4] for i in range(0, 20, 4)]
    assert all(run == list(range(run[0], run[0] + 4)) for run in runs)  # blocks stay whole
    assert ids == [r["id"] for r in ds.randomize_block_order(seed=3).take_all()]
    assert ed.range(0).randomize_block_order(seed=1).take_all() == []


# ---------------------------------------------------------------- union and zip


def test_union_concatenates_rows() -> None:
    a, b, c = ed.range(3), ed.range(2).map(lambda r: {"id": r["id"] + 10}), ed.range(1)
    assert sorted(r["id"] for r in a.union(b, c).take_all()) == [0, 0, 1, 2, 10, 11]
    assert a.union(b).count() == 5
    assert a.union().count() == 3
    assert sorted(r["id"] for r in a.union(a).take_all()) == [0, 0, 1, 1, 2, 2]


def test_union_errors_and_empty() -> None:
    with pytest.raises(TypeError, match="union takes datasets; got int"):
        ed.range(3).union(5)  # type: ignore[arg-type]
    assert ed.range(0).union(ed.range(2)).count() == 2


def test_zip_puts_columns_side_by_side_with_suffixes() -> None:
    left = ed.from_items([{"a": i, "b": -i} for i in range(10)], override_num_blocks=3)
    right = ed.range(10, override_num_blocks=4).rename_columns({"id": "a"})
    zipped = left.zip(right)
    assert zipped.columns() == ["a", "b", "a_1"]
    assert zipped.take_all() == [{"a": i, "b": -i, "a_1": i} for i in range(10)]


def test_zip_with_itself_and_several_datasets() -> None:
    ds = ed.from_items([{"a": i} for i in range(6)], override_num_blocks=2)
    # The same logical operator reached twice used to hang the executor.
    assert ds.zip(ds).take(2) == [{"a": 0, "a_1": 0}, {"a": 1, "a_1": 1}]
    assert ds.zip(ds, ds.with_column("b", col("a") * 2)).columns() == \
        ["a", "a_1", "a_2", "b"]


def test_zip_errors_and_empty() -> None:
    with pytest.raises(TypeError, match="zip takes datasets; got int"):
        ed.range(3).zip(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="at least one"):
        ed.range(3).zip()
    with pytest.raises(ValueError, match="equal row counts"):
        ed.range(3).zip(ed.range(4)).take_all()
    assert ed.range(0).zip(ed.range(0)).take_all() == []


# ---------------------------------------------------------------- property: expressions


_COLS = ("x", "y", "z")


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    values = st.one_of(st.none(), st.integers(-20, 20))
    data = {c: draw(st.lists(values, min_size=n, max_size=n)) for c in _COLS}
    return pd.DataFrame({c: pd.array(v, dtype="Int64") for c, v in data.items()})


def _ints(depth: int) -> st.SearchStrategy[tuple[Any, Any]]:
    """(engine expression, pandas function) pairs of integer type."""
    leaves = st.one_of(
        st.sampled_from(_COLS).map(lambda c: (col(c), lambda df, c=c: df[c])),
        st.integers(-5, 5).map(lambda k: (lit(k), lambda df, k=k: pd.Series(
            [k] * len(df), dtype="Int64", index=df.index))))
    if depth == 0:
        return leaves
    sub = _ints(depth - 1)
    ops = {"+": (lambda a, b: a + b), "-": (lambda a, b: a - b), "*": (lambda a, b: a * b)}
    binary = st.tuples(st.sampled_from(sorted(ops)), sub, sub).map(
        lambda t: (ops[t[0]](t[1][0], t[2][0]),
                   lambda df, t=t: ops[t[0]](t[1][1](df), t[2][1](df))))
    return st.one_of(leaves, binary)


def _bools(depth: int) -> st.SearchStrategy[tuple[Any, Any]]:
    """(engine expression, pandas function) pairs of boolean type (nullable, Kleene)."""
    cmps = {"<": (lambda a, b: a < b), ">=": (lambda a, b: a >= b),
            "==": (lambda a, b: a == b), "!=": (lambda a, b: a != b)}
    ints = _ints(1)
    compare = st.tuples(st.sampled_from(sorted(cmps)), ints, ints).map(
        lambda t: (cmps[t[0]](t[1][0], t[2][0]),
                   lambda df, t=t: cmps[t[0]](t[1][1](df), t[2][1](df))))
    null = ints.map(lambda e: (e[0].is_null(), lambda df, e=e: e[1](df).isna()))
    member = st.tuples(ints, st.lists(st.integers(-5, 5), min_size=1, max_size=3)).map(
        lambda t: (t[0][0].is_in(t[1]),
                   lambda df, t=t: t[0][1](df).isin(t[1]).astype("boolean")))
    leaves = st.one_of(compare, null, member)
    if depth == 0:
        return leaves
    sub = _bools(depth - 1)
    logic = {"&": (lambda a, b: a & b), "|": (lambda a, b: a | b)}
    both = st.tuples(st.sampled_from(sorted(logic)), sub, sub).map(
        lambda t: (logic[t[0]](t[1][0], t[2][0]),
                   lambda df, t=t: logic[t[0]](t[1][1](df).astype("boolean"),
                                               t[2][1](df).astype("boolean"))))
    negated = sub.map(lambda e: (~e[0], lambda df, e=e: ~e[1](df).astype("boolean")))
    return st.one_of(leaves, both, negated)


def _as_list(series: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else v for v in series.astype(object)]


@settings(deadline=None, max_examples=25)
@given(df=frames(), ints=_ints(2), bools=_bools(2), blocks=st.integers(1, 3))
def test_expressions_equal_pandas(df: pd.DataFrame, ints: tuple[Any, Any],
                                  bools: tuple[Any, Any], blocks: int) -> None:
    (int_expr, int_pandas), (bool_expr, bool_pandas) = ints, bools
    ds = ed.from_pandas(df, override_num_blocks=blocks)
    out = ds.with_column("i", int_expr).with_column("p", bool_expr).to_pandas()
    assert [None if v is None else int(v) for v in column_values(out, "i", len(df))] == \
        _as_list(int_pandas(df))
    assert column_values(out, "p", len(df)) == _as_list(bool_pandas(df).astype("boolean"))
    mask = bool_pandas(df).astype("boolean").fillna(False).astype(bool)
    expected = Counter(tuple(_as_list(row)) for _, row in df[mask].iterrows())
    kept = ds.filter(expr=bool_expr).to_pandas()
    assert Counter(tuple(_as_list(row)) for _, row in kept[list(_COLS)].iterrows()
                   if len(kept)) == expected


def column_values(frame: pd.DataFrame, name: str, n: int) -> list[Any]:
    if n == 0:
        return []
    return [None if pd.isna(v) else v for v in frame[name].astype(object)]


# ---------------------------------------------------------------- more edge cases


def test_union_of_different_schemas_keeps_each_rows_columns() -> None:
    # As Ray Data: rows keep their own columns; nothing is filled in or dropped.
    a, b = ed.from_items([{"a": 1}]), ed.from_items([{"b": 2}])
    assert a.union(b).take_all() == [{"a": 1}, {"b": 2}]
    assert ed.from_items([{"a": 1}]).union(ed.from_items([{"a": 2.5}])).take_all() == \
        [{"a": 1}, {"a": 2.5}]


def test_union_keeps_input_order_with_preserve_order() -> None:
    left, right = ed.range(5, override_num_blocks=2), ed.range(3)
    assert [r["id"] for r in left.union(right, left).take_all()] == \
        [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3, 4]


def test_random_sample_rejects_a_fraction_that_is_not_a_number() -> None:
    with pytest.raises(TypeError, match="fraction must be a number; got str"):
        ed.range(10).random_sample("0.5")  # type: ignore[arg-type]


def test_add_column_in_numpy_and_pyarrow_formats(ds: ed.Dataset) -> None:
    import pyarrow.compute as pc

    numpy_out = ds.add_column("c", lambda b: b["b"] * 2, batch_format="numpy")
    assert column(numpy_out, "c")[:1] == [4.0]
    arrow_out = ds.add_column("c", lambda t: pc.multiply(t["b"], 2), batch_format="pyarrow")
    assert column(arrow_out, "c") == [4.0, 6.0, None, 1.0]


def test_zip_of_unequal_datasets_is_a_user_error_not_an_engine_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match=r"equal row counts; got \[3, 4\]"):
        ed.range(3).zip(ed.range(4)).take_all()
    assert "streaming executor failed" not in caplog.text  # logged as a bug before


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda d: d.select_columns(5), TypeError, "select_columns takes a column name"),
    (lambda d: d.drop_columns([1]), TypeError, "drop_columns takes a column name"),
    (lambda d: d.rename_columns({"a": 5}), TypeError, r"rename_columns: names must map"),
    (lambda d: d.rename_columns(["x", 2, "z"]), TypeError, "rename_columns takes a column"),
    (lambda d: d.add_column(5, lambda df: df["a"]), TypeError, "col must be a column name"),
    (lambda d: d.random_sample(0.5, seed="x"), TypeError, "random_sample: seed must be"),
    (lambda d: d.randomize_block_order(seed="x"), TypeError, "randomize_block_order: seed"),
    (lambda d: d.random_shuffle(seed=1.5), TypeError, "random_shuffle: seed must be"),
    (lambda d: d.train_test_split(0.5, shuffle=True, seed="x"), TypeError,
     "train_test_split: seed must be"),
])
def test_column_and_sampling_arguments_are_checked_eagerly(ds: ed.Dataset, call: Any,
                                                           error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call(ds)


def test_numpy_integer_seeds_are_accepted() -> None:
    # randomize_block_order(seed=np.int64(3)) used to fail inside the executor thread.
    import numpy as np

    ds = ed.range(20, override_num_blocks=4)
    assert [r["id"] for r in ds.randomize_block_order(seed=np.int64(3)).take_all()] == \
        [r["id"] for r in ds.randomize_block_order(seed=3).take_all()]
