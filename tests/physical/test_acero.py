"""``exchange.acero`` builds the Acero plans itself (no ``pyarrow.acero``, whose import
imports pandas): its grouped aggregation and hash join equal ``Table.group_by().aggregate``
and ``Table.join`` with ``coalesce_keys=True``."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from engine.physical.exchange.acero import group_aggregate, hash_join

JOIN_TYPES = {"inner": "inner", "left_outer": "left outer", "right_outer": "right outer",
              "full_outer": "full outer", "left_semi": "left semi", "right_semi": "right semi",
              "left_anti": "left anti", "right_anti": "right anti"}


def _rows(table: pa.Table) -> list[tuple]:
    """The rows as tuples in a canonical order (a threaded join has no row order)."""
    return sorted((tuple(row.values()) for row in table.to_pylist()), key=repr)


def _same(got: pa.Table, expected: pa.Table) -> None:
    assert got.schema.equals(expected.schema), (got.schema, expected.schema)
    assert _rows(got) == _rows(expected)


LEFT = pa.table({"k": [1, 2, 2, None, 5, 7], "k2": ["a", "b", "b", "c", None, "x"],
                 "v": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "w": [10, 20, 30, 40, 50, 60]})
RIGHT = pa.table({"id": [2, 5, 5, None, 9], "k2": ["b", None, "y", "c", "z"],
                  "v": [0.5, 0.25, 0.75, 0.125, 9.0], "r": ["p", "q", "s", "t", "u"]})


@pytest.mark.parametrize("join_type", list(JOIN_TYPES))
@pytest.mark.parametrize("suffixes", [(None, None), ("_l", "_r"), (None, "_right")])
def test_hash_join_equals_table_join_with_different_key_names(join_type, suffixes):
    left, right = LEFT.select(["k", "v", "w"]), RIGHT.select(["id", "v", "r"])
    if suffixes == (None, None) and join_type in ("inner", "left_outer", "right_outer",
                                                  "full_outer"):
        left = left.drop_columns(["v"])  # Arrow refuses colliding names without a suffix
    got = hash_join(left, right, join_type, ["k"], ["id"], *suffixes)
    expected = left.join(right, keys=["k"], right_keys=["id"], join_type=JOIN_TYPES[join_type],
                         left_suffix=suffixes[0], right_suffix=suffixes[1],
                         coalesce_keys=True)
    _same(got, expected)


@pytest.mark.parametrize("join_type", list(JOIN_TYPES))
def test_hash_join_equals_table_join_on_two_keys_of_the_same_names(join_type):
    left = LEFT.select(["k", "k2", "v"])
    right = RIGHT.rename_columns(["k", "k2", "v", "r"])
    got = hash_join(left, right, join_type, ["k", "k2"], ["k", "k2"], "_a", "_b")
    expected = left.join(right, keys=["k", "k2"], join_type=JOIN_TYPES[join_type],
                         left_suffix="_a", right_suffix="_b", coalesce_keys=True)
    _same(got, expected)


def test_full_outer_join_coalesces_keys_named_differently_and_in_another_order():
    left = pa.table({"x": [1, 2, None], "a": ["p", "q", "r"], "b": [1, 2, 3]})
    right = pa.table({"b": [2, 3, 4], "y": ["q", "z", None], "a": [1.5, 2.5, 3.5]})
    got = hash_join(left, right, "full_outer", ["a", "b"], ["y", "b"], "_l", "_r")
    expected = left.join(right, keys=["a", "b"], right_keys=["y", "b"], join_type="full outer",
                         left_suffix="_l", right_suffix="_r", coalesce_keys=True)
    _same(got, expected)
    assert got.column_names == ["x", "a", "b", "a_r"]


def test_hash_join_of_empty_tables_gives_the_joins_schema():
    left, right = LEFT.slice(0, 0), RIGHT.slice(0, 0)
    for join_type, arrow_type in JOIN_TYPES.items():
        got = hash_join(left, right, join_type, ["k"], ["id"], "_l", "_r")
        expected = left.join(right, keys=["k"], right_keys=["id"], join_type=arrow_type,
                             left_suffix="_l", right_suffix="_r", coalesce_keys=True)
        assert got.schema.equals(expected.schema)
        assert got.num_rows == 0


AGG_TABLE = pa.table({"g": [1, 2, 1, None, 2, 1, None], "h": ["a", "a", "b", "a", "a", "b", "a"],
                      "x": [1.5, None, 2.5, 4.0, 8.0, 16.0, 0.5],
                      "n": [1, 2, 3, 4, None, 6, 7]})


@pytest.mark.parametrize("keys", [["g"], ["g", "h"], ["h"]])
def test_group_aggregate_equals_table_group_by(keys):
    specs = [("x", "sum", pc.ScalarAggregateOptions(min_count=0)), ("x", "mean", None),
             ("n", "min", None), ("n", "max", None), ("x", "count", pc.CountOptions("all")),
             ("n", "count", pc.CountOptions("only_valid")),
             ("x", "variance", pc.VarianceOptions(ddof=0)), ([], "count_all", None)]
    names = [f"out{i}" for i in range(len(specs))]
    got = group_aggregate(AGG_TABLE, keys, [(*s, n) for s, n in zip(specs, names, strict=True)])
    grouped = AGG_TABLE.group_by(keys, use_threads=False).aggregate(specs)
    assert got.column_names == [*keys, *names]
    # Table.group_by names the outputs itself; the values and row order are the same
    expected = grouped.select([*keys, *(c for c in grouped.column_names if c not in keys)])
    assert got.rename_columns(expected.column_names).equals(expected)


def test_group_aggregate_keeps_the_first_seen_order_of_groups():
    table = pa.table({"k": list(itertools.chain.from_iterable([[3, 1, 2]] * 4)),
                      "v": list(range(12))})
    got = group_aggregate(table, ["k"], [("v", "sum", None, "total")])
    assert got.to_pydict() == {"k": [3, 1, 2], "total": [18, 22, 26]}
