"""Tests of engine.aggregate: partial states per block, merged, finalized."""

from __future__ import annotations

import decimal
import itertools
import math
import pickle
import statistics
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.aggregate import (
    AbsMax,
    AggregateFn,
    AggregateFnV2,
    AsList,
    Count,
    CountDistinct,
    Max,
    Mean,
    Min,
    Quantile,
    Std,
    Sum,
    Unique,
    accumulate_block,
    accumulate_groups,
    finalize_states,
    init_states,
    merge_group_states,
    merge_states,
    output_names,
    validate_aggregations,
)


def aggregate(aggs: list[AggregateFn], table: pa.Table, cuts: list[int] = ()) -> dict[str, Any]:
    """Aggregate ``table`` split at ``cuts`` into blocks, pickling every partial state."""
    bounds = [0, *sorted(cuts), table.num_rows]
    partials = []
    for start, end in itertools.pairwise(bounds):
        states = accumulate_block(aggs, init_states(aggs), table.slice(start, end - start))
        partials.append(pickle.loads(pickle.dumps(states)))
    states = partials[0]
    for other in partials[1:]:
        states = merge_states(aggs, states, other)
    return finalize_states(aggs, states)


def all_builtins(column: str) -> list[AggregateFn]:
    return [Count(), Count(column), Count(column, ignore_nulls=True), Sum(column), Min(column),
            Max(column), Mean(column), Std(column), Std(column, ddof=0), AbsMax(column),
            Quantile(column), Unique(column)]


# ---------------------------------------------------------------- names and defaults


def test_output_names_and_defaults_match_ray() -> None:
    aggs = [Count(), Count("x"), Sum("x"), Min("x"), Max("x"), Mean("x"), Std("x"), AbsMax("x"),
            Quantile("x"), Unique("x"), AsList("x"), CountDistinct("x")]
    assert [a.name for a in aggs] == [
        "count()", "count(x)", "sum(x)", "min(x)", "max(x)", "mean(x)", "std(x)", "abs_max(x)",
        "quantile(x)", "unique(x)", "list(x)", "count_distinct(x)"]
    defaults = [a._ignore_nulls for a in aggs]
    assert defaults == [False, False, True, True, True, True, True, True, True, False, False,
                        True]
    assert Sum("x", alias_name="total").name == "total"
    assert Sum("x").get_agg_name() == "sum" and Sum("x").get_target_column() == "x"


def test_repeated_names_get_suffixes() -> None:
    aggs = [Sum("x"), Sum("x"), Mean("x"), Sum("x")]
    assert output_names(aggs) == ["sum(x)", "sum(x)_2", "mean(x)", "sum(x)_3"]
    assert list(aggregate(aggs, pa.table({"x": [1, 2]}))) == output_names(aggs)


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="on="):
        Sum()
    with pytest.raises(ValueError, match="ddof"):
        Std("x", ddof=-1)
    with pytest.raises(ValueError, match="q must"):
        Quantile("x", q=1.5)
    with pytest.raises(TypeError, match="column name"):
        Mean(3)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="encode_lists"):
        Unique("x", encode_lists=True)
    with pytest.raises(ValueError, match="exactly one"):
        AggregateFn(init=lambda k: 0, merge=lambda a, b: a + b, name="n")
    with pytest.raises(ValueError, match="exactly one"):
        AggregateFn(init=lambda k: 0, merge=lambda a, b: a + b, name="n",
                    accumulate_row=lambda a, r: a, accumulate_block=lambda a, b: a)
    with pytest.raises(TypeError, match="name"):
        AggregateFn(init=lambda k: 0, merge=lambda a, b: a, name=None,  # type: ignore[arg-type]
                    accumulate_block=lambda a, b: a)


# ---------------------------------------------------------------- results (Ray 2.60's values)


def test_results_match_ray_on_a_column_with_a_null() -> None:
    # Values printed by ray.data 2.60.0 for from_arrow(this table).aggregate(...).
    expected = {"count()": 4, "count(x)": 4, "count(x)_2": 3, "sum(x)": -2, "min(x)": -5,
                "max(x)": 2, "mean(x)": -0.6666666666666666, "std(x)": 3.7859388972001824,
                "std(x)_2": 3.0912061651652345, "abs_max(x)": 5, "quantile(x)": 1.0,
                "unique(x)": [1, 2, -5, None]}
    table = pa.table({"x": [1, 2, -5, None]})
    for cuts in ([], [1], [1, 3], [0, 2, 2, 4]):
        result = aggregate(all_builtins("x"), table, cuts)
        assert result.pop("unique(x)") == expected["unique(x)"]
        assert result == pytest.approx({k: v for k, v in expected.items() if k != "unique(x)"})


def test_results_are_python_scalars() -> None:
    result = aggregate(all_builtins("x"), pa.table({"x": [1.5, 2.0, -5.0, None]}))
    assert result["sum(x)"] == -1.5 and result["quantile(x)"] == 1.5
    for value in result.values():
        assert type(value) in (int, float, list), value


def test_all_null_column() -> None:
    result = aggregate(all_builtins("x"), pa.table({"x": pa.array([None, None], pa.int64())}))
    assert result == {"count()": 2, "count(x)": 2, "count(x)_2": 0, "sum(x)": None,
                      "min(x)": None, "max(x)": None, "mean(x)": None, "std(x)": None,
                      "std(x)_2": None, "abs_max(x)": None, "quantile(x)": None,
                      "unique(x)": [None]}
    null_typed = pa.table({"x": pa.array([None, None])})
    assert aggregate([Sum("x"), Count("x", ignore_nulls=True)], null_typed) == {
        "sum(x)": None, "count(x)": 0}


def test_empty_dataset_gives_the_identity_row() -> None:
    aggs = [*all_builtins("x"), AsList("x"), CountDistinct("x"), Sum("x", ignore_nulls=False)]
    result = aggregate(aggs, pa.table({"x": pa.array([], pa.int64())}))
    assert result == {"count()": 0, "count(x)": 0, "count(x)_2": 0, "sum(x)": None,
                      "min(x)": None, "max(x)": None, "mean(x)": None, "std(x)": None,
                      "std(x)_2": None, "abs_max(x)": None, "quantile(x)": None,
                      "unique(x)": [], "list(x)": [], "count_distinct(x)": 0, "sum(x)_2": 0}
    assert finalize_states(aggs, init_states(aggs)) == result


def test_ignore_nulls_false_makes_a_null_win() -> None:
    aggs = [Sum("x", ignore_nulls=False), Min("x", ignore_nulls=False),
            Max("x", ignore_nulls=False), Mean("x", ignore_nulls=False),
            Std("x", ignore_nulls=False), AbsMax("x", ignore_nulls=False),
            Quantile("x", ignore_nulls=False), Unique("x", ignore_nulls=True)]
    table = pa.table({"x": [1, 2, -5, None]})
    for cuts in ([], [1], [3]):
        assert aggregate(aggs, table, cuts) == {
            "sum(x)": None, "min(x)": None, "max(x)": None, "mean(x)": None, "std(x)": None,
            "abs_max(x)": None, "quantile(x)": None, "unique(x)": [1, 2, -5]}
    assert aggregate(aggs[:2], pa.table({"x": [4, 5]})) == {"sum(x)": 9, "min(x)": 4}


def test_std_ddof_and_small_counts() -> None:
    table = pa.table({"x": [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]})
    result = aggregate([Std("x", ddof=0), Std("x"), Std("x", ddof=2)], table, [3, 5])
    assert result == pytest.approx({"std(x)": 2.0, "std(x)_2": math.sqrt(32 / 7),
                                    "std(x)_3": math.sqrt(32 / 6)})
    one = aggregate([Std("x"), Std("x", ddof=0)], pa.table({"x": [3]}))
    assert math.isnan(one["std(x)"]) and one["std(x)_2"] == 0.0


def test_std_is_numerically_stable() -> None:
    rng = np.random.default_rng(0)
    values = 1e9 + rng.normal(0, 1, 1000)
    table = pa.table({"x": values})
    cuts = sorted(rng.integers(0, 1000, 40).tolist())
    result = aggregate([Std("x")], table, cuts)["std(x)"]
    assert result == pytest.approx(statistics.stdev(values.tolist()), rel=1e-6)


def test_quantiles_interpolate_linearly() -> None:
    table = pa.table({"x": [1, 2, 3, 4, 10]})
    aggs = [Quantile("x", q=0.1), Quantile("x", q=0.9), Quantile("x", q=1.0),
            Quantile("x", q=0.0), Quantile("x", q=0.25, alias_name="q1")]
    assert aggregate(aggs, table, [2]) == pytest.approx({
        "quantile(x)": 1.4, "quantile(x)_2": 7.6, "quantile(x)_3": 10.0, "quantile(x)_4": 1.0,
        "q1": 2.0})


def test_unique_aslist_countdistinct_keep_first_appearance_order() -> None:
    table = pa.table({"x": [5, 3, 5, 1, 3, 9, None]})
    assert aggregate([Unique("x"), AsList("x"), CountDistinct("x")], table, [2, 4]) == {
        "unique(x)": [5, 3, 1, 9, None], "list(x)": [5, 3, 5, 1, 3, 9, None],
        "count_distinct(x)": 4}
    assert aggregate([AsList("x", ignore_nulls=True),
                      CountDistinct("x", ignore_nulls=False)], table) == {
        "list(x)": [5, 3, 5, 1, 3, 9], "count_distinct(x)": 5}


def test_blocks_with_different_types_merge() -> None:
    aggs = [Unique("x"), AsList("x"), Sum("x"), Max("x")]
    first = accumulate_block(aggs, init_states(aggs), pa.table({"x": pa.array([None])}))
    second = accumulate_block(aggs, init_states(aggs), pa.table({"x": pa.array([2], pa.int32())}))
    third = accumulate_block(aggs, init_states(aggs), pa.table({"x": pa.array([3], pa.int64())}))
    merged = merge_states(aggs, merge_states(aggs, first, second), third)
    assert finalize_states(aggs, merged) == {"unique(x)": [None, 2, 3],
                                             "list(x)": [None, 2, 3], "sum(x)": 5, "max(x)": 3}


def test_other_column_types() -> None:
    strings = pa.table({"x": ["b", "a", None, "c"]})
    assert aggregate([Min("x"), Max("x"), Count("x", ignore_nulls=True), Unique("x")],
                     strings, [1]) == {"min(x)": "a", "max(x)": "c", "count(x)": 3,
                                       "unique(x)": ["b", "a", None, "c"]}
    bools = pa.table({"x": [True, False, True, None]})
    result = aggregate([Sum("x"), Mean("x"), Min("x"), Std("x"), Quantile("x")], bools)
    assert result == pytest.approx({"sum(x)": 2, "mean(x)": 2 / 3, "min(x)": False,
                                    "std(x)": statistics.stdev([1, 0, 1]), "quantile(x)": 1.0})
    dictionary = pa.table({"x": pa.array(["b", "a", "b"]).dictionary_encode()})
    assert aggregate([Min("x"), Unique("x")], dictionary) == {"min(x)": "a",
                                                              "unique(x)": ["b", "a"]}
    decimals = pa.table({"x": pa.array([decimal.Decimal("1.5"), decimal.Decimal("2.25")])})
    assert aggregate([Sum("x"), Mean("x")], decimals) == {"sum(x)": decimal.Decimal("3.75"),
                                                          "mean(x)": 1.875}


def test_nan_is_a_value() -> None:
    result = aggregate([Sum("x"), Mean("x"), Count("x", ignore_nulls=True)],
                       pa.table({"x": [1.0, math.nan, None]}))
    assert math.isnan(result["sum(x)"]) and math.isnan(result["mean(x)"])
    assert result["count(x)"] == 2


# ---------------------------------------------------------------- errors


def test_missing_column_names_the_column() -> None:
    table = pa.table({"x": [1]})
    for agg in (Sum("y"), Count("y"), Unique("y"), Quantile("y")):
        with pytest.raises(ValueError, match=r"column 'y' not found.*\['x'\]"):
            accumulate_block([agg], init_states([agg]), table)
    with pytest.raises(ValueError, match="'y'"):
        accumulate_block([Sum("y")], init_states([Sum("y")]), table.slice(0, 0))


@pytest.mark.parametrize("agg", [Sum("s"), Mean("s"), Std("s"), AbsMax("s"), Quantile("s")])
def test_non_numeric_column_is_a_type_error_naming_the_column(agg: AggregateFn) -> None:
    table = pa.table({"s": ["a", "b"]})
    with pytest.raises(TypeError, match=r"column 's' has type string"):
        accumulate_block([agg], init_states([agg]), table)
    with pytest.raises(TypeError, match="'s'"):
        validate_aggregations([agg], table.schema)
    with pytest.raises(TypeError, match="'s'"):
        accumulate_groups([agg], table.append_column("k", pa.array([1, 1])), ["k"])


def test_validate_aggregations() -> None:
    schema = pa.schema([("x", pa.int64()), ("s", pa.string())])
    validate_aggregations([Count(), Sum("x"), Min("s"), Unique("s")], schema)
    with pytest.raises(ValueError, match="'nope' not found"):
        validate_aggregations([Sum("x"), Max("nope")], schema)


def test_a_block_without_schema_is_skipped() -> None:
    aggs = [Sum("x"), Count()]
    states = accumulate_block(aggs, init_states(aggs), pa.table({}))
    assert finalize_states(aggs, states) == {"sum(x)": None, "count()": 0}


# ---------------------------------------------------------------- custom aggregations


def _row_count() -> AggregateFn:
    return AggregateFn(init=lambda key: [key], accumulate_row=lambda acc, row: [*acc, row["x"]],
                       merge=lambda a, b: a + b[1:], name="rows", finalize=lambda acc: acc)


def test_aggregate_fn_with_accumulate_block_and_row() -> None:
    total = AggregateFn(init=lambda key: 0, merge=lambda a, b: a + b, name="total",
                        accumulate_block=lambda acc, block: acc + block.num_rows,
                        finalize=lambda acc: acc * 10)
    table = pa.table({"x": [1, 2, 3]})
    assert aggregate([total, _row_count()], table, [1]) == {"total": 30,
                                                            "rows": [(), 1, 2, 3]}
    assert repr(total) == "AggregateFn(name='total')"


class _Product(AggregateFnV2):
    def __init__(self, on: str, ignore_nulls: bool = True) -> None:
        super().__init__(f"product({on})", lambda: 1, on=on, ignore_nulls=ignore_nulls)

    def aggregate_block(self, block: pa.Table) -> Any:
        column = block.column(self.get_target_column())
        if column.null_count and not self._ignore_nulls:
            return None
        values = column.drop_null().to_pylist()
        return math.prod(values) if values else None

    def combine(self, current_accumulator: Any, new: Any) -> Any:
        return current_accumulator * new

    def finalize(self, accumulator: Any) -> Any:
        return float(accumulator)


def test_aggregate_fn_v2_subclass_gets_ray_null_semantics() -> None:
    table = pa.table({"x": [2, None, 3, 4]})
    assert aggregate([_Product("x")], table, [1, 2]) == {"product(x)": 24.0}
    assert aggregate([_Product("x", ignore_nulls=False)], table, [1, 2]) == {"product(x)": None}
    assert aggregate([_Product("x")], pa.table({"x": pa.array([None], pa.int64())})) == {
        "product(x)": None}
    with pytest.raises(ValueError, match="'y' not found"):
        validate_aggregations([_Product("y")], table.schema)


def test_builtin_aggregations_and_states_pickle() -> None:
    aggs = [*all_builtins("x"), AsList("x"), CountDistinct("x")]
    copies = pickle.loads(pickle.dumps(aggs))
    table = pa.table({"x": [1, None, 3]})
    assert aggregate(copies, table) == aggregate(aggs, table)
    null_seen = accumulate_block([Sum("x", ignore_nulls=False)], [None], table)
    assert pickle.loads(pickle.dumps(null_seen))[0] is null_seen[0]


# ---------------------------------------------------------------- groups


GROUPS = pa.table({
    "k": [1, 1, None, 2, 2, 2],
    "k2": ["a", "a", "b", "b", "b", "c"],
    "v": [1.0, 2.0, 3.0, None, 4.0, 5.0],
})


def _grouped(aggs: list[AggregateFn], table: pa.Table, keys: list[str],
             cuts: list[int] = ()) -> dict[tuple[Any, ...], dict[str, Any]]:
    bounds = [0, *sorted(cuts), table.num_rows]
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for start, end in itertools.pairwise(bounds):
        part = accumulate_groups(aggs, table.slice(start, end - start), keys)
        merged = merge_group_states(aggs, merged, pickle.loads(pickle.dumps(part)))
    return {key: finalize_states(aggs, states) for key, states in merged.items()}


def test_groups_by_one_key_including_null() -> None:
    aggs = [Count(), Count("v", ignore_nulls=True), Sum("v"), Mean("v"), Max("v"),
            Max("v", ignore_nulls=False), AbsMax("v"), Std("v"), Quantile("v"), Unique("v"),
            _row_count()]
    result = _grouped(aggs, GROUPS.append_column("x", GROUPS.column("k2")), ["k"])
    assert list(result) == [(1,), (None,), (2,)]  # order of first appearance
    assert result[(1,)] == {"count()": 2, "count(v)": 2, "sum(v)": 3.0, "mean(v)": 1.5,
                            "max(v)": 2.0, "max(v)_2": 2.0, "abs_max(v)": 2.0,
                            "std(v)": pytest.approx(math.sqrt(0.5)), "quantile(v)": 1.5,
                            "unique(v)": [1.0, 2.0], "rows": [1, "a", "a"]}
    assert result[(2,)]["max(v)_2"] is None and result[(2,)]["unique(v)"] == [None, 4.0, 5.0]
    assert result[(2,)]["count(v)"] == 2 and result[(2,)]["count()"] == 3
    assert result[(None,)]["rows"] == [None, "b"]  # init() got the key, a scalar
    assert math.isnan(result[(None,)]["std(v)"])


def test_groups_by_two_keys_over_blocks() -> None:
    aggs = [Count(), Sum("v"), Unique("k2"), _row_count_multi()]
    expected = _grouped(aggs, GROUPS, ["k", "k2"])
    assert expected[(2, "b")] == {"count()": 2, "sum(v)": 4.0, "unique(k2)": ["b"],
                                  "keys": [(2, "b")]}
    for cuts in ([1], [2, 4], [1, 2, 3, 4, 5]):
        result = _grouped(aggs, GROUPS, ["k", "k2"], cuts)
        assert {k: v["count()"] for k, v in result.items()} == \
            {k: v["count()"] for k, v in expected.items()}
        assert {k: v["sum(v)"] for k, v in result.items()} == \
            {k: v["sum(v)"] for k, v in expected.items()}


def _row_count_multi() -> AggregateFn:
    return AggregateFn(init=lambda key: [key], accumulate_block=lambda acc, block: acc,
                       merge=lambda a, b: a, name="keys")


def test_group_errors_and_empty_tables() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        accumulate_groups([Count()], GROUPS, ["nope"])
    with pytest.raises(ValueError, match="'zz' not found"):
        accumulate_groups([Sum("zz")], GROUPS, ["k"])
    assert accumulate_groups([Sum("v")], GROUPS.slice(0, 0), ["k"]) == {}


# ---------------------------------------------------------------- properties: equal to pandas


def _close(ours: Any, theirs: Any) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if isinstance(ours, float) or isinstance(theirs, float):
        if math.isnan(ours) or math.isnan(theirs):
            return math.isnan(ours) and math.isnan(theirs)
        return math.isclose(ours, theirs, rel_tol=1e-7, abs_tol=1e-6)
    return ours == theirs


def _pandas_results(s: pd.Series, ddof: int, q: float) -> dict[str, Any]:
    valid = s.dropna()
    n = len(valid)
    has_null = n < len(s)

    def skip(value: Any) -> Any:
        if n == 0:
            return None
        if value is pd.NA:  # a masked std of too few values; Ray (and numpy) say NaN
            return math.nan
        return value.item() if hasattr(value, "item") else value

    return {
        "count()": len(s), "count(x)": len(s), "count(x)_2": n,
        "sum(x)": skip(valid.sum()), "min(x)": skip(valid.min()), "max(x)": skip(valid.max()),
        "mean(x)": skip(valid.mean()),
        "std(x)": skip(valid.std(ddof=ddof) if n > ddof else math.nan),  # Ray: NaN, not inf
        "abs_max(x)": skip(valid.abs().max()), "quantile(x)": skip(valid.quantile(q)),
        "unique(x)": sorted(set(valid.tolist())) + ([None] if has_null else []),
        "sum(x)_2": None if has_null else (valid.sum().item() if n else 0),
        "mean(x)_2": None if has_null or n == 0 else valid.mean(),
    }


def _aggs(ddof: int, q: float) -> list[AggregateFn]:
    return [Count(), Count("x"), Count("x", ignore_nulls=True), Sum("x"), Min("x"), Max("x"),
            Mean("x"), Std("x", ddof=ddof), AbsMax("x"), Quantile("x", q=q), Unique("x"),
            Sum("x", ignore_nulls=False), Mean("x", ignore_nulls=False)]


_values = st.one_of(
    st.lists(st.one_of(st.none(), st.integers(-10_000, 10_000)), max_size=30).map(
        lambda xs: pa.array(xs, pa.int64())),
    st.lists(st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False)), max_size=30).map(
        lambda xs: pa.array(xs, pa.float64())),
)


def _sorted_unique(values: list[Any]) -> list[Any]:
    return sorted(v for v in values if v is not None) + [None] * (None in values)


@settings(deadline=None, max_examples=50)
@given(_values, st.lists(st.integers(0, 30), max_size=5), st.integers(0, 2),
       st.floats(0, 1), st.randoms(use_true_random=False))
def test_merged_partials_equal_pandas(column: pa.Array, cuts: list[int], ddof: int, q: float,
                                      rnd: Any) -> None:
    table = pa.table({"x": column})
    cuts = [min(c, len(column)) for c in cuts]
    aggs = _aggs(ddof, q)
    bounds = [0, *sorted(cuts), len(column)]
    partials = [pickle.loads(pickle.dumps(accumulate_block(aggs, init_states(aggs),
                                                           table.slice(a, b - a))))
                for a, b in itertools.pairwise(bounds)]
    while len(partials) > 1:  # merge in a random tree shape: the merge is associative
        i = rnd.randrange(len(partials) - 1)
        partials[i:i + 2] = [merge_states(aggs, partials[i], partials[i + 1])]
    ours = finalize_states(aggs, partials[0])
    ours["unique(x)"] = _sorted_unique(ours["unique(x)"])
    series = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(),
                                           pa.float64(): pd.Float64Dtype()}.get)["x"]
    theirs = _pandas_results(series, ddof, q)
    for name, value in theirs.items():
        assert _close(ours[name], value) if name != "unique(x)" else ours[name] == value, \
            (name, ours[name], value)


@settings(deadline=None, max_examples=50)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 3)), st.sampled_from("ab"),
                          st.one_of(st.none(), st.floats(-100, 100, allow_nan=False))),
                max_size=40),
       st.lists(st.integers(0, 40), max_size=4))
def test_grouped_partials_equal_pandas_groupby(rows: list[tuple[Any, ...]],
                                               cuts: list[int]) -> None:
    table = pa.table({"k": pa.array([r[0] for r in rows], pa.int64()),
                      "k2": pa.array([r[1] for r in rows], pa.string()),
                      "x": pa.array([r[2] for r in rows], pa.float64())})
    aggs = [Count(), Count("x", ignore_nulls=True), Sum("x"), Mean("x"), Std("x"), Min("x"),
            AbsMax("x"), Quantile("x"), Sum("x", ignore_nulls=False)]
    ours = _grouped(aggs, table, ["k", "k2"], [min(c, len(rows)) for c in cuts])
    frame = pd.DataFrame({"k": pd.array([r[0] for r in rows], dtype="Int64"),
                          "k2": [r[1] for r in rows],
                          "x": pd.array([r[2] for r in rows], dtype="Float64")})
    groups = frame.groupby(["k", "k2"], dropna=False, sort=False)["x"]
    assert len(ours) == groups.ngroups
    for (k, k2), series in groups:
        key = (None if pd.isna(k) else int(k), k2)
        theirs = _pandas_results(series.reset_index(drop=True), 1, 0.5)
        result = ours[key]
        assert result["count()"] == theirs["count()"]
        assert result["count(x)"] == theirs["count(x)_2"]
        for name in ("sum(x)", "mean(x)", "std(x)", "min(x)", "abs_max(x)", "quantile(x)"):
            assert _close(result[name], theirs[name]), (key, name, result[name], theirs[name])
        assert _close(result["sum(x)_2"], theirs["sum(x)_2"])
