"""Tests of engine.expressions: building, evaluating, inspecting and pushing down expressions."""

from __future__ import annotations

import dataclasses
import datetime
import math
import pickle
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.datatype import DataType
from engine.expressions import (
    AliasExpr,
    BinaryExpr,
    ColumnExpr,
    Expr,
    FunctionExpr,
    LiteralExpr,
    Operation,
    UnaryExpr,
    can_push_down,
    col,
    evaluate,
    evaluate_predicate,
    lit,
    output_name,
    referenced_columns,
    rename_columns,
    to_pyarrow,
)


@pytest.fixture
def table() -> pa.Table:
    return pa.table({
        "a": [7, -7, 6, None],
        "b": [2, 3, 4, 1],
        "f": [1.5, -2.5, None, 4.0],
        "s": ["Ab ", " x", None, "yy"],
        "flag": [True, False, None, True],
    })


def values(expr: Expr, table: pa.Table) -> list[Any]:
    return evaluate(expr, table).to_pylist()


# ---------------------------------------------------------------- building and repr


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ((col("a") + lit(1)) > col("b"), "(col('a') + lit(1)) > col('b')"),
        (col("a") + 1, "col('a') + lit(1)"),
        (1 + col("a"), "lit(1) + col('a')"),
        (2 ** col("a"), "lit(2) ** col('a')"),
        (-col("a"), "-col('a')"),
        (-(col("a") - 1), "-(col('a') - lit(1))"),
        (~(col("a") > 1), "~(col('a') > lit(1))"),
        ((col("a") > 1) & (col("b") < 2), "(col('a') > lit(1)) & (col('b') < lit(2))"),
        ((col("a") == 1) | (col("s") != "x"), "(col('a') == lit(1)) | (col('s') != lit('x'))"),
        (col("a") // 2 % 3, "(col('a') // lit(2)) % lit(3)"),
        (col("a").is_null(), "col('a').is_null()"),
        ((col("a") + 1).is_not_null(), "(col('a') + lit(1)).is_not_null()"),
        (col("a").is_in([1, 2]), "col('a').is_in([1, 2])"),
        (col("a").not_in(("x",)), "col('a').not_in(['x'])"),
        ((col("a") * 2).alias("d"), "(col('a') * lit(2)).alias('d')"),
        (col("s").str.upper(), "col('s').str.upper()"),
        (col("s").str.slice(0, 2), "col('s').str.slice(0, 2, 1)"),
        (col("s").str.strip("x"), "col('s').str.strip('x')"),
        (col("s").str.contains("a", ignore_case=True),
         "col('s').str.contains('a', ignore_case=True)"),
        (col("t").dt.strftime("%Y"), "col('t').dt.strftime('%Y')"),
        (col("t").dt.floor("day"), "col('t').dt.floor('day')"),
        ((col("a") - 1).abs(), "(col('a') - lit(1)).abs()"),
        (col("a").cast("int32"), "col('a').cast('int32')"),
        (col("f").cast(pa.int64(), safe=False), "col('f').cast('int64', safe=False)"),
    ],
)
def test_repr_reads_like_the_code(expr: Expr, text: str) -> None:
    assert repr(expr) == text


def test_expressions_are_immutable_picklable_and_compared_structurally() -> None:
    expr = ((col("a") + 1) > col("b")) & col("s").str.upper().is_in(["X"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        expr.op = Operation.OR  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(expr))
    assert copy.structurally_equals(expr)
    assert not expr.structurally_equals((col("a") + 1) > col("b"))
    assert not lit(1).structurally_equals(lit(1.0))
    assert not lit(1).structurally_equals(lit(True))
    assert not col("a").structurally_equals("a")
    assert hash(expr) == hash(expr)  # usable in sets and dicts, by identity
    assert {expr: 1}[expr] == 1


def test_bool_raises_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match=re.escape("& | ~ instead of and/or/not")):
        bool(col("a") > 1)
    with pytest.raises(TypeError, match="no truth value"):
        _ = (col("a") > 1) and (col("b") < 2)
    with pytest.raises(TypeError, match="no truth value"):
        if col("a") == 1:
            pass


def test_node_types() -> None:
    expr = (col("a") + 1).alias("x")
    assert isinstance(expr, AliasExpr) and isinstance(expr.expr, BinaryExpr)
    assert isinstance(expr.expr.left, ColumnExpr) and isinstance(expr.expr.right, LiteralExpr)
    assert isinstance(-col("a"), UnaryExpr)
    assert isinstance(col("s").str.len(), FunctionExpr)
    assert col("a").negate().structurally_equals(-col("a"))
    assert col("a").power(2).structurally_equals(col("a") ** 2)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="column name"):
        col(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="constant"):
        lit(col("a"))
    with pytest.raises(TypeError, match="cannot represent"):
        lit(object())
    with pytest.raises(TypeError, match="list of values"):
        col("a").is_in("abc")
    with pytest.raises(TypeError, match="list of constants"):
        col("a").is_in(col("b"))
    with pytest.raises(ValueError, match="alias name"):
        col("a").alias("")
    with pytest.raises(TypeError, match="target_type"):
        col("a").cast("not-a-type")
    with pytest.raises(ValueError, match="side"):
        col("s").str.pad(3, side="middle")
    with pytest.raises(TypeError, match="expected an expression"):
        evaluate("a > 1", pa.table({"a": [1]}))  # type: ignore[arg-type]


# ---------------------------------------------------------------- arithmetic


def test_arithmetic_on_ints_with_nulls(table: pa.Table) -> None:
    assert values(col("a") + col("b"), table) == [9, -4, 10, None]
    assert values(col("a") - 1, table) == [6, -8, 5, None]
    assert values(3 - col("b"), table) == [1, 0, -1, 2]
    assert values(col("a") * col("b"), table) == [14, -21, 24, None]
    assert values(col("b") ** 2, table) == [4, 9, 16, 1]
    assert values(-col("a"), table) == [-7, 7, -6, None]


def test_division_follows_arrow(table: pa.Table) -> None:
    # As in Ray Data (Arrow's kernel): integers divide to integers, truncating toward zero;
    # a float operand gives true division.
    result = evaluate(col("a") / col("b"), table)
    assert result.type == pa.int64()
    assert result.to_pylist() == [3, -2, 1, None]
    assert values(lit(10) / (col("b") + 1), table) == [3, 2, 2, 5]
    assert values(col("a") / 2.0, table) == [3.5, -3.5, 3.0, None]
    assert values(col("a").cast(DataType.float64()) / col("b"), table)[:2] == [3.5, -7 / 3]
    assert values(col("f") / 0, table) == [math.inf, -math.inf, None, math.inf]
    with pytest.raises(ValueError, match="divide by zero"):
        evaluate(col("a") / 0, table)


def test_floor_division_and_modulo_follow_python(table: pa.Table) -> None:
    assert values(col("a") // col("b"), table) == [3, -3, 1, None]
    assert values(col("a") % col("b"), table) == [1, 2, 2, None]
    assert values(col("a") // -2, table) == [-4, 3, -3, None]
    assert values(col("f") // 2, table) == [0.0, -2.0, None, 2.0]
    assert values(col("f") % 2, table) == [1.5, 1.5, None, 0.0]
    assert values(1 // (col("f") * 0 + 0.1), table)[:2] == [9.0, 9.0]  # Python: 1 // 0.1 == 9
    assert evaluate(col("a") // col("b"), table).type == pa.int64()
    assert values(lit(7) // lit(-2), table) == [-4] * 4


def test_integer_division_by_zero_raises_but_null_divisors_do_not() -> None:
    t = pa.table({"a": [1, 2], "z": [0, None], "n": pa.array([None, None], pa.int64())})
    with pytest.raises(ZeroDivisionError, match=r"col\('a'\) // col\('z'\)"):
        evaluate(col("a") // col("z"), t)
    with pytest.raises(ZeroDivisionError):
        evaluate(col("a") % 0, t)
    assert values(col("a") // col("n"), t) == [None, None]
    assert values(col("a") % lit(None), t) == [None, None]
    assert values(col("a").cast("float64") // 0, t) == [math.inf, math.inf]


def test_string_concatenation_and_type_errors(table: pa.Table) -> None:
    assert values(col("s") + "!", table) == ["Ab !", " x!", None, "yy!"]
    assert values("<" + col("s"), table) == ["<Ab ", "< x", None, "<yy"]
    with pytest.raises(TypeError, match=r"col\('s'\) \+ lit\(1\)"):
        evaluate(col("s") + 1, table)
    with pytest.raises(TypeError, match=r"col\('s'\) \* col\('a'\)"):
        evaluate(col("s") * col("a"), table)
    with pytest.raises(TypeError, match=r"in expression \(col\('s'\) - lit\(1\)\) > lit\(2\)"):
        evaluate((col("s") - 1) > 2, table)
    with pytest.raises(TypeError, match="//"):
        evaluate(col("s") // 2, table)
    with pytest.raises(ValueError, match="negative"):
        evaluate(col("b") ** -1, table)


def test_math_methods(table: pa.Table) -> None:
    assert values(col("a").abs(), table) == [7, 7, 6, None]
    assert values(col("a").sign(), table) == [1, -1, 1, None]
    assert values(col("f").ceil(), table) == [2.0, -2.0, None, 4.0]
    assert values(col("f").floor(), table) == [1.0, -3.0, None, 4.0]
    assert values(col("f").round(), table) == [2.0, -2.0, None, 4.0]
    assert values(col("f").trunc(), table) == [1.0, -2.0, None, 4.0]
    assert values(lit(8.0).log2(), table) == [3.0] * 4
    assert values(lit(100).log10(), table) == [2.0] * 4
    assert values(lit(0).exp(), table) == [1.0] * 4
    assert values(lit(1.0).ln(), table) == [0.0] * 4
    for method in ("sin", "cos", "tan", "asin", "acos", "atan"):
        expected = getattr(math, method)(0.5)
        assert values(getattr(lit(0.5), method)(), table)[0] == pytest.approx(expected)


def test_cast_accepts_datatypes_arrow_types_and_names(table: pa.Table) -> None:
    assert evaluate(col("b").cast(DataType.int32()), table).type == pa.int32()
    assert values(col("b").cast(DataType.string()), table) == ["2", "3", "4", "1"]
    assert evaluate(col("b").cast(DataType.from_numpy("int8")), table).type == pa.int8()
    assert evaluate(col("b").cast("float32"), table).type == pa.float32()
    assert evaluate(col("b").cast(pa.int16()), table).type == pa.int16()
    with pytest.raises(ValueError, match="cast"):
        evaluate(col("f").cast(DataType.int64()), table)  # 1.5 -> int64 loses data
    assert values(col("f").cast(DataType.int64(), safe=False), table) == [1, -2, None, 4]


def test_cast_rejects_other_targets_when_built() -> None:
    for bad in ("not-a-type", 3, np.int8, object()):
        with pytest.raises(TypeError, match=r"target_type must be a ray\.data\.datatype\.DataType"):
            col("a").cast(bad)
    for python_type in (int, str):  # a Python type names no Arrow type by itself
        with pytest.raises(TypeError, match=r"Python-type-backed DataType.*requires.*values"):
            col("a").cast(DataType(python_type))


# ---------------------------------------------------------------- comparisons and logic


def test_comparisons_propagate_nulls(table: pa.Table) -> None:
    assert values(col("a") > 1, table) == [True, False, True, None]
    assert values(col("a") >= 6, table) == [True, False, True, None]
    assert values(col("a") < col("f"), table) == [False, True, None, None]
    assert values(col("a") <= 6, table) == [False, True, True, None]
    assert values(col("s") == "yy", table) == [False, False, None, True]
    assert values(col("s") != "yy", table) == [True, True, None, False]
    assert values(col("a") == lit(None), table) == [None] * 4
    # A reflected comparison: int.__lt__ gives up, so Python calls col("b").__gt__(1).
    assert values(1 < col("b"), table) == [True, True, True, False]  # noqa: SIM300


def test_kleene_logic() -> None:
    t = pa.table({
        "p": [True, True, True, False, False, False, None, None, None],
        "q": [True, False, None, True, False, None, True, False, None],
    })
    assert values(col("p") & col("q"), t) == [True, False, None, False, False, False, None,
                                              False, None]
    assert values(col("p") | col("q"), t) == [True, True, True, True, False, None, True, None,
                                              None]
    assert values(~col("p"), t) == [False] * 3 + [True] * 3 + [None] * 3
    assert values(col("p") & True, t)[:4] == [True, True, True, False]
    assert values(False | col("q"), t)[:3] == [True, False, None]
    with pytest.raises(TypeError, match="and_kleene"):
        evaluate(col("p") & lit(1), t)


def test_null_checks_and_membership(table: pa.Table) -> None:
    assert values(col("f").is_null(), table) == [False, False, True, False]
    assert values(col("f").is_not_null(), table) == [True, True, False, True]
    assert values(col("a").is_in([7, 6]), table) == [True, False, True, False]
    assert values(col("a").is_in({6}), table) == [False, False, True, False]
    assert values(col("a").is_in(np.array([-7])), table) == [False, True, False, False]
    assert values(col("a").is_in(pa.array([-7])), table) == [False, True, False, False]
    assert values(col("a").is_in([7, None]), table) == [True, False, False, True]
    assert values(col("a").not_in([7]), table) == [False, True, True, True]
    assert values(col("a").is_in([]), table) == [False] * 4
    assert values(col("s").is_in(["yy"]), table) == [False, False, False, True]
    assert values(col("f").is_in([1.5, 4]), table) == [True, False, False, True]
    with pytest.raises(TypeError, match="is_in"):
        evaluate(col("a").is_in(["x"]), table)


# ---------------------------------------------------------------- strings and datetimes


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (col("s").str.len(), [3, 2, None, 4]),
        (col("s").str.length(), [3, 2, None, 4]),
        (col("s").str.byte_len(), [3, 2, None, 6]),
        (col("s").str.upper(), ["AB ", " X", None, "ÉTÉ!"]),
        (col("s").str.lower(), ["ab ", " x", None, "été!"]),
        (col("s").str.capitalize(), ["Ab ", " x", None, "Été!"]),
        (col("s").str.title(), ["Ab ", " X", None, "Été!"]),
        (col("s").str.swapcase(), ["aB ", " X", None, "ÉTÉ!"]),
        (col("s").str.reverse(), [" bA", "x ", None, "!été"]),
        (col("s").str.strip(), ["Ab", "x", None, "été!"]),
        (col("s").str.lstrip(), ["Ab ", "x", None, "été!"]),
        (col("s").str.rstrip(), ["Ab", " x", None, "été!"]),
        (col("s").str.strip("!é"), ["Ab ", " x", None, "t"]),
        (col("s").str.lstrip("A"), ["b ", " x", None, "été!"]),
        (col("s").str.rstrip("!"), ["Ab ", " x", None, "été"]),
        (col("s").str.starts_with("A"), [True, False, None, False]),
        (col("s").str.starts_with("a", ignore_case=True), [True, False, None, False]),
        (col("s").str.ends_with("!"), [False, False, None, True]),
        (col("s").str.contains("t"), [False, False, None, True]),
        (col("s").str.match("A%"), [True, False, None, False]),
        (col("s").str.match_regex("^[a-z ]+$"), [False, True, None, False]),
        (col("s").str.find("b"), [1, -1, None, -1]),
        (col("s").str.find_regex("[xt]"), [-1, 1, None, 2]),  # a byte offset
        (col("s").str.count("é"), [0, 0, None, 2]),
        (col("s").str.count_regex("[A-Za-z]"), [2, 1, None, 1]),
        (col("s").str.slice(0, 2), ["Ab", " x", None, "ét"]),
        (col("s").str.slice(1), ["b ", "x", None, "té!"]),
        (col("s").str.replace("é", "e"), ["Ab ", " x", None, "ete!"]),
        (col("s").str.replace("é", "e", max_replacements=1), ["Ab ", " x", None, "eté!"]),
        (col("s").str.replace_regex("[a-z]", "_"), ["A_ ", " _", None, "é_é!"]),
        (col("s").str.repeat(2), ["Ab Ab ", " x x", None, "été!été!"]),
        (col("s").str.center(5, "*"), ["*Ab *", "* x**", None, "été!*"]),
        (col("s").str.lpad(4, "-"), ["-Ab ", "-- x", None, "été!"]),
        (col("s").str.rpad(4), ["Ab  ", " x  ", None, "été!"]),
        (col("s").str.pad(4, "*", "left"), ["*Ab ", "** x", None, "été!"]),
        (col("s").str.pad(4, "*", "both"), ["Ab *", "* x*", None, "été!"]),
        (col("s").str.pad(4), ["Ab  ", " x  ", None, "été!"]),
        (col("s").str.split(" "), [["Ab", ""], ["", "x"], None, ["été!"]]),
        (col("s").str.split_regex("[bx]"), [["A", " "], [" ", ""], None, ["été!"]]),
        (col("s").str.split_whitespace(), [["Ab", ""], ["", "x"], None, ["été!"]]),
        (col("s").str.extract("(?P<first>.)"), [{"first": "A"}, {"first": " "}, None,
                                                {"first": "é"}]),
        (col("s").str.is_alpha(), [False, False, None, False]),
        (col("s").str.is_alnum(), [False, False, None, False]),
        (col("s").str.is_digit(), [False, False, None, False]),
        (col("s").str.is_decimal(), [False, False, None, False]),
        (col("s").str.is_numeric(), [False, False, None, False]),
        (col("s").str.is_space(), [False, False, None, False]),
        (col("s").str.is_lower(), [False, True, None, True]),
        (col("s").str.is_upper(), [False, False, None, False]),
        (col("s").str.is_title(), [True, False, None, False]),
        (col("s").str.is_printable(), [True, True, None, True]),
        (col("s").str.is_ascii(), [True, True, None, False]),
    ],
)
def test_string_functions(expr: Expr, expected: list[Any]) -> None:
    t = pa.table({"s": ["Ab ", " x", None, "été!"]})
    assert values(expr, t) == expected


def test_string_predicates_on_digits_and_spaces() -> None:
    t = pa.table({"s": ["123", "  ", "ABC"]})
    assert values(col("s").str.replace_slice(0, 1, "#"), t) == ["#23", "# ", "#BC"]
    assert values(col("s").str.is_digit(), t) == [True, False, False]
    assert values(col("s").str.is_space(), t) == [False, True, False]
    assert values(col("s").str.is_upper(), t) == [False, False, True]
    assert values(col("s").str.is_alpha(), t) == [False, False, True]


def test_string_function_on_dictionary_column() -> None:
    t = pa.table({"s": pa.array(["a", "b", "a"]).dictionary_encode()})
    assert values(col("s").str.upper(), t) == ["A", "B", "A"]
    assert values(col("s") + "!", t) == ["a!", "b!", "a!"]
    assert evaluate_predicate(col("s") == "a", t).num_rows == 2


def test_datetime_functions() -> None:
    moments = [datetime.datetime(2024, 3, 5, 13, 4, 5, 123456), None,
               datetime.datetime(1999, 12, 31, 23, 59, 58)]
    t = pa.table({"t": pa.array(moments, pa.timestamp("us"))})
    dt = col("t").dt
    assert values(dt.year(), t) == [2024, None, 1999]
    assert values(dt.quarter(), t) == [1, None, 4]
    assert values(dt.month(), t) == [3, None, 12]
    assert values(dt.day(), t) == [5, None, 31]
    assert values(dt.day_of_week(), t) == [1, None, 4]  # Tuesday, Friday (Monday=0)
    assert values(dt.day_of_year(), t) == [65, None, 365]
    assert values(dt.hour(), t) == [13, None, 23]
    assert values(dt.minute(), t) == [4, None, 59]
    assert values(dt.second(), t) == [5, None, 58]
    assert values(dt.millisecond(), t) == [123, None, 0]
    assert values(dt.microsecond(), t) == [456, None, 0]
    assert values(dt.nanosecond(), t) == [0, None, 0]
    assert values(dt.strftime("%Y-%m-%d"), t) == ["2024-03-05", None, "1999-12-31"]
    assert values(dt.floor("day"), t)[0] == datetime.datetime(2024, 3, 5)
    assert values(dt.ceil("hour"), t)[0] == datetime.datetime(2024, 3, 5, 14)
    assert values(dt.round("minute"), t)[2] == datetime.datetime(2000, 1, 1)
    assert values(col("t") > datetime.datetime(2000, 1, 1), t) == [True, None, False]
    with pytest.raises(TypeError, match="year"):
        evaluate(col("x").dt.year(), pa.table({"x": ["2024"]}))


# ---------------------------------------------------------------- evaluate and evaluate_predicate


def test_literals_broadcast_to_the_block_length(table: pa.Table) -> None:
    assert values(lit(3), table) == [3] * 4
    assert values(lit("x"), table) == ["x"] * 4
    assert values(lit(None), table) == [None] * 4
    assert values(lit(2) * lit(3), table) == [6] * 4
    assert len(evaluate(lit(1), table.slice(0, 0))) == 0
    assert values(lit(1), pa.table({"a": [1, 2, 3]}).drop_columns(["a"])) == [1, 1, 1]


def test_evaluate_keeps_length_on_empty_and_chunked_tables(table: pa.Table) -> None:
    empty = table.slice(0, 0)
    for expr in (col("a") + 1, col("a") // 2, col("s").str.upper(), col("a").is_in([1])):
        assert len(evaluate(expr, empty)) == 0
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2)])
    assert values(col("a") // 2 + col("b"), chunked) == values(col("a") // 2 + col("b"), table)
    assert evaluate_predicate(col("b") > 1, chunked).num_rows == 3


def test_missing_column_names_the_column_block_and_expression(table: pa.Table) -> None:
    with pytest.raises(ValueError) as info:
        evaluate((col("zz") + 1) > col("a"), table)
    message = str(info.value)
    assert "column 'zz' not found" in message
    assert "['a', 'b', 'f', 's', 'flag']" in message
    assert "(col('zz') + lit(1)) > col('a')" in message


def test_evaluate_predicate_keeps_true_rows_only(table: pa.Table) -> None:
    kept = evaluate_predicate((col("a") > 0) | col("f").is_null(), table)
    assert kept.column("a").to_pylist() == [7, 6]
    assert kept.schema == table.schema
    assert evaluate_predicate(col("flag"), table).column("b").to_pylist() == [2, 1]
    assert evaluate_predicate(lit(True), table).num_rows == 4
    assert evaluate_predicate(lit(False), table).num_rows == 0
    assert evaluate_predicate(lit(None), table).num_rows == 0
    assert evaluate_predicate(col("a") > 0, table.slice(0, 0)).num_rows == 0
    with pytest.raises(TypeError, match="booleans"):
        evaluate_predicate(col("a") + 1, table)


# ---------------------------------------------------------------- inspection and rewriting


def test_referenced_columns_and_output_name() -> None:
    expr = ((col("a") + col("b")) > col("c").str.len()).alias("out")
    assert referenced_columns(expr) == {"a", "b", "c"}
    assert referenced_columns(lit(1)) == set()
    assert output_name(expr) == "out"
    assert output_name(col("a")) == "a"
    assert output_name(col("a") + 1) is None
    assert output_name(col("a").alias("x").alias("y")) == "y"
    assert col("a").alias("x").alias("y").structurally_equals(col("a").alias("y"))
    assert (col("a") + 1).alias("n").name == "n"


def test_rename_columns_rewrites_references_but_not_aliases() -> None:
    expr = ((col("a") + col("b")).alias("a") > 1) & col("a").is_in([1])
    renamed = rename_columns(expr, {"a": "x", "z": "q"})
    assert repr(renamed) == ("((col('x') + col('b')).alias('a') > lit(1)) & "
                             "col('x').is_in([1])")
    assert referenced_columns(renamed) == {"x", "b"}
    assert repr(expr).startswith("((col('a')")  # the original is untouched
    fn = rename_columns(col("s").str.slice(1, 2), {"s": "t"})
    assert repr(fn) == "col('t').str.slice(1, 2, 1)"


# ---------------------------------------------------------------- pyarrow pushdown


PUSHABLE = [
    col("a") > 1,
    (col("a") + 1 > col("b")) & ~col("f").is_null(),
    (col("a") / 2 > 1) | (col("b") * 2 == 6),
    col("a").is_in([7, -7]),
    col("a").not_in([7]),
    col("a").is_in([]),
    col("s").str.upper().str.starts_with("A"),
    col("s").str.len() >= 2,
    (col("b") ** 2 > 4) & col("flag"),
    -col("b") < -2,
    col("f").cast("int64", safe=False) == 1,
    (col("s") + "!") == "yy!",
    col("b").alias("x") > 1,
]


@pytest.mark.parametrize("expr", PUSHABLE, ids=repr)
def test_to_pyarrow_filters_like_evaluate_predicate(table: pa.Table, expr: Expr) -> None:
    assert can_push_down(expr)
    dataset = pads.dataset(table)
    pushed = dataset.to_table(filter=to_pyarrow(expr, table.schema))
    assert pushed.to_pylist() == evaluate_predicate(expr, table).to_pylist()
    assert isinstance(expr.to_pyarrow(), pc.Expression)


def test_to_pyarrow_string_concat_of_columns_needs_the_schema(table: pa.Table) -> None:
    expr = (col("s") + col("s")) == "yyyy"
    pushed = pads.dataset(table).to_table(filter=to_pyarrow(expr, table.schema))
    assert pushed.column("s").to_pylist() == ["yy"]


def test_expressions_that_would_fail_are_not_pushed_down(table: pa.Table) -> None:
    assert not can_push_down(col("missing") > 1, table.schema)
    assert not can_push_down(col("s") > 1, table.schema)  # evaluate() raises the TypeError
    assert can_push_down(col("s") > 1)  # without a schema the types are unknown


def test_floor_division_and_modulo_cannot_be_pushed_down() -> None:
    for expr in (col("a") // 2 > 1, (col("a") % 2 == 0) & (col("b") > 1)):
        assert not can_push_down(expr)
        with pytest.raises(NotImplementedError, match="pyarrow"):
            to_pyarrow(expr)


# ---------------------------------------------------------------- properties: equal to pandas


_MAPPER = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype(),
           pa.bool_(): pd.BooleanDtype()}.get


def _arrow_divide(x: pd.Series, y: pd.Series) -> pd.Series:
    """Arrow's division: integers truncate toward zero, a float operand divides truly."""
    if x.dtype == "Int64" and y.dtype == "Int64":
        return np.trunc(x.astype("Float64") / y).astype("Int64")
    return x / y


def _pandas_eval(expr: Expr, frame: pd.DataFrame) -> Any:
    if isinstance(expr, ColumnExpr):
        return frame[expr.name]
    if isinstance(expr, LiteralExpr):  # a column of the constant, so scalars act like arrays
        dtype = "Float64" if isinstance(expr.value, float) else "Int64"
        return pd.Series([expr.value] * len(frame), dtype=dtype, index=frame.index)
    if isinstance(expr, UnaryExpr):
        operand = _pandas_eval(expr.operand, frame)
        return {Operation.NEG: lambda x: -x, Operation.NOT: lambda x: ~x,
                Operation.IS_NULL: pd.isna, Operation.IS_NOT_NULL: pd.notna}[expr.op](operand)
    assert isinstance(expr, BinaryExpr)
    if expr.op is Operation.IN:
        assert isinstance(expr.right, LiteralExpr)
        return _pandas_eval(expr.left, frame).isin(list(expr.right.value))
    left, right = _pandas_eval(expr.left, frame), _pandas_eval(expr.right, frame)
    ops = {
        Operation.ADD: lambda x, y: x + y, Operation.SUB: lambda x, y: x - y,
        Operation.MUL: lambda x, y: x * y, Operation.DIV: _arrow_divide,
        Operation.FLOORDIV: lambda x, y: x // y, Operation.MOD: lambda x, y: x % y,
        Operation.GT: lambda x, y: x > y, Operation.LT: lambda x, y: x < y,
        Operation.GE: lambda x, y: x >= y, Operation.LE: lambda x, y: x <= y,
        Operation.EQ: lambda x, y: x == y, Operation.NE: lambda x, y: x != y,
        Operation.AND: lambda x, y: x & y, Operation.OR: lambda x, y: x | y,
    }
    return ops[expr.op](left, right)


def _as_list(result: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else v for v in result.astype(object)]


def _same(ours: list[Any], theirs: list[Any]) -> bool:
    if len(ours) != len(theirs):
        return False
    for x, y in zip(ours, theirs, strict=True):
        if x is None or y is None:
            if x is not y:
                return False
        elif isinstance(x, float) or isinstance(y, float):
            if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif x != y:
            return False
    return True


_ints = st.integers(-1000, 1000)
_floats = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
_nonzero = st.one_of(st.integers(1, 50), st.integers(-50, -1),
                     st.sampled_from([0.5, -2.5, 3.0]))


@st.composite
def frames(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 12))
    return pa.table({
        "a": pa.array(draw(st.lists(st.one_of(st.none(), _ints), min_size=n, max_size=n)),
                      pa.int64()),
        "b": pa.array(draw(st.lists(_ints, min_size=n, max_size=n)), pa.int64()),
        "f": pa.array(draw(st.lists(st.one_of(st.none(), _floats), min_size=n, max_size=n)),
                      pa.float64()),
        "d": pa.array(draw(st.lists(st.one_of(st.none(), st.integers(1, 9)),
                                    min_size=n, max_size=n)), pa.int64()),
    })


_numeric_leaves = st.one_of(
    st.sampled_from([col("a"), col("b"), col("f")]),
    _ints.map(lit), _floats.map(lit),
)


def _numeric_ops(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    divisor = st.one_of(st.just(col("d")), _nonzero.map(lit))
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(
            lambda t: {"+": t[0] + t[2], "-": t[0] - t[2], "*": t[0] * t[2]}[t[1]]),
        st.tuples(children, st.sampled_from(["/", "//", "%"]), divisor).map(
            lambda t: {"/": t[0] / t[2], "//": t[0] // t[2], "%": t[0] % t[2]}[t[1]]),
        children.map(lambda e: -e),
    )


numeric_exprs = st.recursive(_numeric_leaves, _numeric_ops, max_leaves=5)


@st.composite
def predicates(draw: st.DrawFn, depth: int = 2) -> Expr:
    if depth == 0 or draw(st.booleans()):
        kind = draw(st.sampled_from(["cmp", "null", "in"]))
        if kind == "null":
            return draw(numeric_exprs).is_null()
        if kind == "in":
            return col(draw(st.sampled_from(["a", "b"]))).is_in(draw(st.lists(_ints, max_size=3)))
        left, right = draw(numeric_exprs), draw(numeric_exprs)
        op = draw(st.sampled_from([">", "<", ">=", "<=", "==", "!="]))
        return {">": left > right, "<": left < right, ">=": left >= right,
                "<=": left <= right, "==": left == right, "!=": left != right}[op]
    op = draw(st.sampled_from(["&", "|", "~"]))
    first = draw(predicates(depth - 1))
    if op == "~":
        return ~first
    second = draw(predicates(depth - 1))
    return first & second if op == "&" else first | second


@settings(deadline=None, max_examples=50)
@given(frames(), numeric_exprs)
def test_numeric_expressions_equal_pandas(table: pa.Table, expr: Expr) -> None:
    ours = values(expr, table)
    theirs = _as_list(_pandas_eval(expr, table.to_pandas(types_mapper=_MAPPER)))
    assert len(ours) == table.num_rows
    assert _same(ours, theirs), (expr, ours, theirs)


@settings(deadline=None, max_examples=50)
@given(frames(), predicates())
def test_predicates_equal_pandas(table: pa.Table, expr: Expr) -> None:
    frame = table.to_pandas(types_mapper=_MAPPER)
    mask = _pandas_eval(expr, frame).astype("boolean")
    assert _same(values(expr, table), _as_list(mask)), expr
    kept = evaluate_predicate(expr, table)
    expected = frame[mask.fillna(False).astype(bool)]
    assert kept.num_rows == len(expected)
    assert kept.column("b").to_pylist() == expected["b"].tolist()
    if can_push_down(expr):
        pushed = pads.dataset(table).to_table(filter=to_pyarrow(expr, table.schema))
        assert pushed.column("b").to_pylist() == expected["b"].tolist()


@settings(deadline=None, max_examples=50)
@given(frames(), predicates())
def test_pickled_and_renamed_expressions_evaluate_the_same(table: pa.Table, expr: Expr) -> None:
    copy = pickle.loads(pickle.dumps(expr))
    assert copy.structurally_equals(expr)
    assert values(copy, table) == values(expr, table)
    renamed_table = table.rename_columns(["A", "B", "F", "D"])
    renamed = rename_columns(expr, {"a": "A", "b": "B", "f": "F", "d": "D"})
    assert values(renamed, renamed_table) == values(expr, table)
    assert referenced_columns(renamed) <= {"A", "B", "F", "D"}
