"""Tests of Dataset.summary(): statistics by column type, checked against pandas/by hand."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import engine
from engine.aggregate import Count, Max, Sum
from engine.aggregate_profile import (
    ApproximateQuantile,
    ApproximateTopK,
    MissingValuePercentage,
    ZeroPercentage,
)
from engine.datatype import DataType, TypeCategory

NUMERIC_STATS = ["approx_quantile[0]", "count", "max", "mean", "min", "missing_pct", "std",
                 "zero_pct"]


def _stat(frame: pd.DataFrame, stat: str, column: str):
    return frame.loc[frame["statistic"] == stat, column].iloc[0]


def _by_stat(stats: pd.DataFrame) -> dict:
    return dict(zip(stats["statistic"], stats["value"], strict=True))


def test_numbers_match_pandas():
    rng = np.random.default_rng(0)
    values = rng.integers(-5, 6, size=200).astype(float)
    values[::7] = np.nan
    table = pa.table({"v": pa.array(values, from_pandas=True)})
    ds = engine.from_arrow(table).repartition(4)
    frame = ds.summary().to_pandas()
    assert frame["statistic"].tolist() == NUMERIC_STATS
    s = pd.Series(values)
    assert _stat(frame, "count", "v") == 200
    assert _stat(frame, "mean", "v") == pytest.approx(s.mean())
    assert _stat(frame, "min", "v") == s.min()
    assert _stat(frame, "max", "v") == s.max()
    assert _stat(frame, "std", "v") == pytest.approx(s.std(ddof=0))
    assert _stat(frame, "missing_pct", "v") == pytest.approx(100 * s.isna().mean())
    assert _stat(frame, "zero_pct", "v") == pytest.approx(100 * (s.dropna() == 0).mean())
    # the median is a value of the column: the smallest with more than half at or below it
    ordered = np.sort(s.dropna().to_numpy())
    assert _stat(frame, "approx_quantile[0]", "v") == ordered[len(ordered) // 2]


def test_mixed_columns_by_hand():
    ds = engine.from_items([
        {"age": 25, "salary": 50000, "name": "Alice", "city": "NYC"},
        {"age": 30, "salary": 60000, "name": None, "city": "LA"},
        {"age": 0, "salary": None, "name": "Bob", "city": None},
    ])
    summary = ds.summary()
    frame = summary.to_pandas()
    assert list(frame.columns) == ["statistic", "age", "city", "name", "salary"]
    assert frame["statistic"].tolist() == ["approx_quantile[0]", "approx_topk[0]",
                                           "approx_topk[1]", "count", "max", "mean", "min",
                                           "missing_pct", "std", "zero_pct"]
    assert _stat(frame, "mean", "age") == pytest.approx(55 / 3)
    assert _stat(frame, "zero_pct", "age") == pytest.approx(100 / 3)
    assert _stat(frame, "std", "salary") == pytest.approx(5000.0)
    assert _stat(frame, "missing_pct", "salary") == pytest.approx(100 / 3)
    assert _stat(frame, "approx_quantile[0]", "salary") == 60000
    assert _stat(frame, "count", "name") == 3
    assert _stat(frame, "missing_pct", "name") == pytest.approx(100 / 3)
    topk = [_stat(frame, f"approx_topk[{i}]", "city") for i in range(2)]
    assert topk == [{"city": "NYC", "count": 1}, {"city": "LA", "count": 1}]
    assert pd.isna(_stat(frame, "mean", "name")) and pd.isna(_stat(frame, "approx_topk[0]", "age"))
    assert summary.columns == ["age", "salary", "name", "city"]
    assert summary.dataset_schema.field("age").type == pa.int64()

    age = summary.get_column_stats("age")
    assert list(age.columns) == ["statistic", "value"]
    assert _by_stat(age)["max"] == 30
    name = summary.get_column_stats("name")
    by_stat = _by_stat(name)
    assert by_stat["approx_topk[0]"] == {"name": "Alice", "count": 1}
    assert by_stat["count"] == 3


def test_topk_orders_by_count_and_keeps_ten():
    words = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + [f"w{i}" for i in range(20)] + [None] * 4
    ds = engine.from_items([{"w": w} for w in words]).repartition(3)
    stats = ds.summary().get_column_stats("w")
    tops = [v for s, v in _by_stat(stats).items() if s.startswith("approx_topk")]
    assert len(tops) == 10
    assert tops[:3] == [{"w": "a", "count": 5}, {"w": "b", "count": 3}, {"w": "c", "count": 2}]
    assert all(t["count"] == 1 for t in tops[3:])
    missing = _by_stat(stats)["missing_pct"]
    assert missing == pytest.approx(100 * 4 / len(words))


def test_temporal_and_binary_columns():
    days = [datetime.date(2024, 1, d) for d in (3, 1, 2)] + [None]
    ds = engine.from_arrow(pa.table({"d": pa.array(days), "b": [b"x", b"y", b"x", None]}))
    frame = ds.summary().to_pandas()
    assert _stat(frame, "min", "d") == datetime.date(2024, 1, 1)
    assert _stat(frame, "max", "d") == datetime.date(2024, 1, 3)
    assert _stat(frame, "missing_pct", "d") == 25.0
    assert "mean" not in frame["statistic"].tolist()  # dates and bytes get no mean
    assert _stat(frame, "count", "b") == 4
    assert _stat(frame, "approx_topk[0]", "b") == {"b": b"x", "count": 2}
    assert frame.loc[frame["statistic"] == "approx_topk[0]", "d"].isna().all()


def test_empty_dataset():
    ds = engine.from_items([{"x": i, "s": str(i)} for i in range(5)]).filter(
        lambda r: r["x"] > 10)
    frame = ds.summary().to_pandas()
    assert _stat(frame, "count", "x") == 0 and _stat(frame, "count", "s") == 0
    for stat in ("mean", "min", "max", "std", "missing_pct", "zero_pct", "approx_quantile"):
        assert pd.isna(_stat(frame, stat, "x")), stat


def test_columns_selects():
    ds = engine.from_items([{"col1": 1, "col2": "a", "col3": 3.5}])
    frame = ds.summary(columns=["col1"]).to_pandas()
    assert list(frame.columns) == ["statistic", "col1"]
    assert _stat(frame, "mean", "col1") == 1.0


def test_override_mapping_by_type_and_category():
    ds = engine.from_arrow(pa.table({
        "value": [10, 20, 30, 40], "other": [1.0, 2.0, 3.0, 4.0],
        "t": pa.array([1, 2, 3, 4], pa.timestamp("s"))}))
    mapping = {
        DataType.int64(): lambda c: [Count(on=c), Sum(on=c),
                                     ApproximateQuantile(on=c, quantiles=[0.25, 0.5, 1.0])],
        TypeCategory.TEMPORAL: lambda c: [Max(on=c)],
    }
    frame = ds.summary(override_dtype_agg_mapping=mapping).to_pandas()
    assert frame["statistic"].tolist() == [
        "approx_quantile[0]", "approx_quantile[1]", "approx_quantile[2]", "count", "max",
        "mean", "min", "missing_pct", "std", "sum", "zero_pct"]
    assert [_stat(frame, f"approx_quantile[{i}]", "value") for i in range(3)] == [20, 30, 40]
    assert _stat(frame, "sum", "value") == 100
    assert pd.isna(_stat(frame, "mean", "value"))
    assert _stat(frame, "mean", "other") == 2.5  # float64 keeps the defaults
    assert _stat(frame, "max", "t") == pd.Timestamp(4, unit="s")
    assert pd.isna(_stat(frame, "count", "t"))


def test_errors():
    ds = engine.from_items([{"x": 1}])
    with pytest.raises(ValueError, match="nope"):
        ds.summary(columns=["x", "nope"])
    with pytest.raises(ValueError, match="not in the summary"):
        ds.summary().get_column_stats("y")
    with pytest.raises(ValueError, match="factory for column 'x'"):
        ds.summary(override_dtype_agg_mapping={DataType.int64(): lambda c: [Count(on="y")]})


def test_profile_aggregates_direct():
    ds = engine.from_items([{"v": v} for v in [0, None, 0, 3, 0]])
    result = ds.aggregate(MissingValuePercentage(on="v"), ZeroPercentage(on="v"),
                          ZeroPercentage(on="v", ignore_nulls=False, alias_name="z2"),
                          ApproximateTopK(on="v", k=1))
    assert result == {"missing_pct(v)": 20.0, "zero_pct(v)": 75.0, "z2": 60.0,
                      "approx_topk(v)": [{"v": 0, "count": 3}]}
    lists = engine.from_items([{"l": [1, 2]}, {"l": [2]}, {"l": [1, 2]}])
    assert lists.aggregate(ApproximateTopK(on="l", k=1))["approx_topk(l)"] == [
        {"l": [1, 2], "count": 2}]
    assert lists.aggregate(ApproximateTopK(on="l", k=1, encode_lists=True))[
        "approx_topk(l)"] == [{"l": 2, "count": 3}]
    grouped = engine.from_items([{"g": i % 2, "v": i % 3} for i in range(6)]).groupby(
        "g").aggregate(ZeroPercentage(on="v"), ApproximateQuantile(on="v", quantiles=[0.5]))
    assert grouped.sort("g").take_all() == [
        {"g": 0, "zero_pct(v)": pytest.approx(100 / 3), "approx_quantile(v)": [1.0]},
        {"g": 1, "zero_pct(v)": pytest.approx(100 / 3), "approx_quantile(v)": [1.0]}]
    with pytest.raises(ValueError, match="quantiles"):
        ApproximateQuantile(on="v", quantiles=[1.5])
    with pytest.raises(ValueError, match="k must"):
        ApproximateTopK(on="v", k=0)


def test_quantile_past_capacity_is_close():
    values = np.random.default_rng(1).permutation(20_000).astype(float)
    ds = engine.from_arrow(pa.table({"v": values})).repartition(8)
    agg = ApproximateQuantile(on="v", quantiles=[0.1, 0.5, 0.9], quantile_precision=8)
    result = ds.aggregate(agg)["approx_quantile(v)"]  # from a sample of 1,024 values
    for q, got in zip([0.1, 0.5, 0.9], result, strict=True):
        assert abs(got - q * 20_000) < 0.06 * 20_000
        assert got in set(values.tolist())
    assert ds.aggregate(agg) == {"approx_quantile(v)": result}  # the same on a rerun


def test_topk_past_capacity_keeps_frequent_values():
    # 6 counters (log_capacity=3) for ~2,000 distinct values: the frequent ones survive
    words = ["hot"] * 600 + ["warm"] * 300 + [f"rare{i}" for i in range(2_000)]
    rng = np.random.default_rng(2)
    ds = engine.from_items([{"w": w} for w in rng.permutation(words)]).repartition(5)
    top = ds.aggregate(ApproximateTopK(on="w", k=2, log_capacity=3))["approx_topk(w)"]
    assert [t["w"] for t in top] == ["hot", "warm"]
    bound = len(words) / 6  # Misra-Gries: counts low by at most total / counters
    assert 600 - bound <= top[0]["count"] <= 600
    assert 300 - bound <= top[1]["count"] <= 300
