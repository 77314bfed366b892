"""Global aggregates through the Dataset API, end to end.

``count``/``sum``/``min``/``max``/``mean``/``std``/``unique`` over one column or a list, with
``ignore_nulls``; ``aggregate`` with the built-ins and user-defined ``AggregateFn``s. Result
shapes follow Ray Data 2.60 (checked against it): one column gives a scalar, several a dict
``{"sum(a)": ...}``; a column without values gives ``None``; the std of one row is NaN.
A property test compares every aggregate with pandas on random frames with nulls.

These tests start workers; none depends on timing.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed
from engine import AbsMax, AggregateFn, Count, Max, Mean, Min, Quantile, Std, Sum, Unique


@pytest.fixture
def ds() -> ed.Dataset:
    rows = [{"a": i, "b": float(i) * 2, "s": str(i % 3)} for i in range(10)]
    return ed.from_items(rows, override_num_blocks=3)


@pytest.fixture
def with_nulls() -> ed.Dataset:
    return ed.from_items([{"x": 1, "y": None}, {"x": None, "y": None}, {"x": 3, "y": None},
                          {"x": 4, "y": None}], override_num_blocks=2)


@pytest.fixture
def empty() -> ed.Dataset:
    """No rows, but a known schema (x int64, y double)."""
    return ed.from_items([{"x": 1, "y": 2.0}]).filter(lambda r: False)


# ---------------------------------------------------------------- shortcuts


def test_one_column_gives_a_scalar(ds: ed.Dataset) -> None:
    assert ds.count() == 10
    assert ds.sum("a") == 45 and isinstance(ds.sum("a"), int)
    assert ds.min("a") == 0
    assert ds.max("b") == 18.0
    assert ds.mean("a") == 4.5
    assert ds.std("a") == pytest.approx(3.0276503540974917)
    assert ds.std("a", ddof=0) == pytest.approx(2.8722813232690143)
    assert ds.min("s") == "0" and ds.max("s") == "2"  # min/max take any orderable type


def test_several_columns_give_a_dict(ds: ed.Dataset) -> None:
    assert ds.sum(["a", "b"]) == {"sum(a)": 45, "sum(b)": 90.0}
    assert ds.min(["a", "b"]) == {"min(a)": 0, "min(b)": 0.0}
    assert ds.max(["a", "s"]) == {"max(a)": 9, "max(s)": "2"}
    assert ds.mean(["a", "b"]) == {"mean(a)": 4.5, "mean(b)": 9.0}
    stds = ds.std(["a", "b"], ddof=0)
    assert list(stds) == ["std(a)", "std(b)"]
    assert stds["std(b)"] == pytest.approx(2 * stds["std(a)"])


def test_a_list_of_one_column_gives_a_scalar_as_in_ray(ds: ed.Dataset) -> None:
    assert ds.sum(["a"]) == 45
    assert ds.mean(["b"]) == 9.0
    assert ed.range(5).sum() == 10  # on=None: every column, here just one


def test_on_none_aggregates_every_column() -> None:
    ds = ed.from_items([{"a": 1, "b": 2.5}, {"a": 3, "b": 0.5}])
    assert ds.sum() == {"sum(a)": 4, "sum(b)": 3.0}
    assert ds.max() == {"max(a)": 3, "max(b)": 2.5}


def test_std_of_one_row_is_nan_and_ddof_zero_is_zero() -> None:
    one = ed.from_items([{"x": 1.0}])
    assert math.isnan(one.std("x"))
    assert one.std("x", ddof=0) == 0.0


def test_unique(ds: ed.Dataset) -> None:
    assert sorted(ds.unique("s")) == ["0", "1", "2"]
    values = ed.from_items([{"x": v} for v in [3, 1, 3, 2, 1, None]], override_num_blocks=3)
    # Ray Data does not promise an order; compare as sets.
    unique = values.unique("x")
    assert len(unique) == 4 and set(unique) == {1, 2, 3, None}
    assert sorted(values.unique("x", ignore_nulls=True)) == [1, 2, 3]


def test_ignore_nulls(with_nulls: ed.Dataset) -> None:
    assert with_nulls.sum("x") == 8
    assert with_nulls.mean("x") == pytest.approx(8 / 3)
    assert with_nulls.min("x") == 1 and with_nulls.max("x") == 4
    assert with_nulls.std("x") == pytest.approx(pd.Series([1, 3, 4]).std())
    for how in ("sum", "mean", "min", "max", "std"):
        assert getattr(with_nulls, how)("x", ignore_nulls=False) is None, how
    assert with_nulls.aggregate(Count("x"), Count("x", ignore_nulls=True)) == \
        {"count(x)": 4, "count(x)_2": 3}


def test_all_null_column_gives_none(with_nulls: ed.Dataset) -> None:
    for how in ("sum", "mean", "min", "max", "std"):
        assert getattr(with_nulls, how)("y") is None, how
    assert with_nulls.unique("y") == [None]
    assert with_nulls.unique("y", ignore_nulls=True) == []


def test_empty_dataset(empty: ed.Dataset) -> None:
    assert empty.count() == 0
    for how in ("sum", "mean", "min", "max", "std"):
        assert getattr(empty, how)("x") is None, how
    assert empty.sum(["x", "y"]) == {"sum(x)": None, "sum(y)": None}
    assert empty.mean(["x"]) is None
    assert empty.unique("x") == []
    assert empty.aggregate(Count(), Sum("x")) == {"count()": 0, "sum(x)": None}
    assert ed.range(0).sum("id") is None  # no block at all


# ---------------------------------------------------------------- aggregate()


def test_aggregate_with_every_builtin(ds: ed.Dataset) -> None:
    result = ds.aggregate(Count(), Sum("a"), Min("a"), Max("b"), Mean("b"), Std("a"),
                          AbsMax("a"), Quantile("a", q=0.25), Unique("s"))
    assert list(result) == ["count()", "sum(a)", "min(a)", "max(b)", "mean(b)", "std(a)",
                            "abs_max(a)", "quantile(a)", "unique(s)"]
    assert result["count()"] == 10 and result["sum(a)"] == 45 and result["min(a)"] == 0
    assert result["max(b)"] == 18.0 and result["mean(b)"] == 9.0
    assert result["std(a)"] == pytest.approx(3.0276503540974917)
    assert result["abs_max(a)"] == 9
    assert result["quantile(a)"] == pytest.approx(2.25)
    assert sorted(result["unique(s)"]) == ["0", "1", "2"]


def test_aggregate_names_aliases_and_repeats(ds: ed.Dataset) -> None:
    result = ds.aggregate(Sum("a", alias_name="total"), Sum("a"), Sum("a"),
                          AbsMax("a", alias_name="m"))
    assert result == {"total": 45, "sum(a)": 45, "sum(a)_2": 45, "m": 9}


def test_abs_max_with_negatives_and_quantile_interpolation() -> None:
    ds = ed.from_items([{"v": v} for v in [-7, 3, 5, None]], override_num_blocks=2)
    assert ds.aggregate(AbsMax("v"), Quantile("v", q=0.5)) == \
        {"abs_max(v)": 7, "quantile(v)": 3.0}
    assert ds.aggregate(Quantile("v", q=0.75))["quantile(v)"] == pytest.approx(4.0)


def _sum_of_squares() -> AggregateFn:
    return AggregateFn(
        init=lambda key: 0,
        accumulate_block=lambda state, block: state + sum(
            v * v for v in block.column("a").to_pylist()),
        merge=lambda x, y: x + y,
        finalize=lambda state: state,
        name="sum_sq(a)")


def test_user_defined_aggregate_fn(ds: ed.Dataset) -> None:
    assert ds.aggregate(_sum_of_squares()) == {"sum_sq(a)": sum(i * i for i in range(10))}
    by_rows = AggregateFn(init=lambda key: [0, 0],
                          accumulate_row=lambda s, row: [s[0] + row["a"], s[1] + 1],
                          merge=lambda x, y: [x[0] + y[0], x[1] + y[1]],
                          finalize=lambda s: s[0] / s[1], name="avg")
    assert ds.aggregate(by_rows, Count()) == {"avg": 4.5, "count()": 10}


def _block_report() -> AggregateFn:
    """State: (process ids that accumulated, row count of each block accumulated)."""
    return AggregateFn(
        init=lambda key: (frozenset(), ()),
        accumulate_block=lambda s, block: (s[0] | {os.getpid()}, (*s[1], block.num_rows)),
        merge=lambda x, y: (x[0] | y[0], x[1] + y[1]),
        name="report")


def test_partials_are_computed_per_block_on_workers_and_merged() -> None:
    ds = ed.range(1000, override_num_blocks=8).map_batches(lambda b: b)
    pids, sizes = ds.aggregate(_block_report())["report"]
    assert os.getpid() not in pids  # the driver only merges states
    assert sum(sizes) == 1000
    assert len(sizes) == 8  # one partial state per block, none built from all rows


def test_user_defined_aggregate_on_empty_dataset(empty: ed.Dataset) -> None:
    assert empty.aggregate(AggregateFn(init=lambda k: 0, merge=lambda x, y: x + y,
                                       accumulate_block=lambda s, b: s + b.num_rows,
                                       name="rows")) == {"rows": 0}


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("call", [
    lambda d: d.sum("zz"), lambda d: d.mean(["a", "zz"]), lambda d: d.min("zz"),
    lambda d: d.std("zz"), lambda d: d.unique("zz"), lambda d: d.aggregate(Max("zz")),
])
def test_missing_column_is_named(ds: ed.Dataset, call: Any) -> None:
    with pytest.raises(ValueError, match=r"column 'zz' not found.*'a', 'b', 's'"):
        call(ds)


@pytest.mark.parametrize("call", [
    lambda d: d.sum("s"), lambda d: d.mean("s"), lambda d: d.std(["a", "s"]),
    lambda d: d.aggregate(AbsMax("s")), lambda d: d.aggregate(Quantile("s")),
])
def test_non_numeric_column_is_a_type_error_naming_it(ds: ed.Dataset, call: Any) -> None:
    with pytest.raises(TypeError, match="numeric column, but column 's' has type string"):
        call(ds)


def test_bad_aggregate_arguments(ds: ed.Dataset) -> None:
    with pytest.raises(ValueError, match="at least one AggregateFn"):
        ds.aggregate()
    with pytest.raises(TypeError, match="AggregateFn objects; got str"):
        ds.aggregate("sum")
    with pytest.raises(ValueError, match="ddof"):
        ds.std("a", ddof=-1)
    with pytest.raises(ValueError, match="q must be"):
        Quantile("a", q=1.5)
    with pytest.raises(ValueError, match="exactly one of accumulate_row and accumulate_block"):
        AggregateFn(init=lambda k: 0, merge=lambda x, y: x, name="n")
    with pytest.raises(ValueError, match="no columns"):
        ds.select_columns(["a"]).drop_columns(["a"]).sum()


def test_a_failing_user_aggregate_raises_its_error(ds: ed.Dataset) -> None:
    def broken(state: int, block: pa.Table) -> int:
        raise ZeroDivisionError("custom accumulate failed")

    agg = AggregateFn(init=lambda k: 0, merge=lambda x, y: x + y, accumulate_block=broken,
                      name="broken")
    with pytest.raises(ZeroDivisionError, match="custom accumulate failed"):
        ds.aggregate(agg)


# ---------------------------------------------------------------- property: equal pandas


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 30))
    ints = draw(st.lists(st.one_of(st.none(), st.integers(-1000, 1000)), min_size=n,
                         max_size=n))
    floats = draw(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
                           min_size=n, max_size=n))
    return pd.DataFrame({"i": pd.array(ints, dtype="Int64"),
                         "f": pd.array(floats, dtype="Float64")})


def _expected(series: pd.Series, how: str, ignore_nulls: bool, ddof: int) -> Any:
    values = series.dropna()
    if not ignore_nulls and len(values) < len(series):
        return None
    if not len(values):
        # An empty sum is 0 where nulls are not ignored (as in Ray Data); else no value.
        return 0 if how == "sum" and not ignore_nulls and not len(series) else None
    if how == "std":
        return math.nan if len(values) <= ddof else float(values.astype(float).std(ddof=ddof))
    return getattr(values, how)()


def _close(got: Any, want: Any) -> bool:
    if want is None or got is None:
        return got is None and want is None
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-6)


@settings(deadline=None, max_examples=25)
@given(df=frames(), blocks=st.integers(1, 4), ignore_nulls=st.booleans(),
       ddof=st.integers(0, 2))
def test_aggregates_equal_pandas(df: pd.DataFrame, blocks: int, ignore_nulls: bool,
                                 ddof: int) -> None:
    ds = ed.from_pandas(df, override_num_blocks=blocks)
    aggs = [Count(), Count("i", ignore_nulls=True)]
    for c in ("i", "f"):
        aggs += [Sum(c, ignore_nulls=ignore_nulls), Min(c, ignore_nulls=ignore_nulls),
                 Max(c, ignore_nulls=ignore_nulls), Mean(c, ignore_nulls=ignore_nulls),
                 Std(c, ddof=ddof, ignore_nulls=ignore_nulls)]
    result = ds.aggregate(*aggs, Unique("i"))
    assert result["count()"] == len(df)
    assert result["count(i)"] == int(df["i"].count())
    for c in ("i", "f"):
        for how in ("sum", "min", "max", "mean", "std"):
            want = _expected(df[c], how, ignore_nulls, ddof)
            assert _close(result[f"{how}({c})"], want), (how, c, result[f"{how}({c})"], want)
    want_unique = {None if pd.isna(v) else int(v) for v in df["i"]}
    assert len(result["unique(i)"]) == len(want_unique)
    assert set(result["unique(i)"]) == want_unique
    if len(df):
        # Another execution: partial sums may merge in another order, so floats are close,
        # not equal, to the bit.
        sums = ds.sum(["i", "f"], ignore_nulls=ignore_nulls)
        assert set(sums) == {"sum(i)", "sum(f)"} and sums["sum(i)"] == result["sum(i)"]
        assert _close(sums["sum(f)"], result["sum(f)"])
