"""``filter(expr="...")``: predicates written as strings (Ray Data's deprecated but still
accepted form), parsed into expressions; and filter's argument errors in Ray's wording."""

from __future__ import annotations

import pytest

import engine as ed
from engine.expressions import col, lit, parse_predicate

ROWS = [{"a": 1, "b": "x", "c": 0.5}, {"a": 6, "b": "y", "c": None},
        {"a": 9, "b": None, "c": float("nan")}, {"a": None, "b": "x", "c": 2.0}]


@pytest.mark.parametrize(("text", "expected"), [
    ("a > 5", col("a") > 5),
    ("a >= 1 and b == 'x'", (col("a") >= 1) & (col("b") == "x")),
    ("not (a < 2) or b != 'y'", ~(col("a") < 2) | (col("b") != "y")),
    ("b in ['x', 'z']", col("b").is_in(["x", "z"])),
    ("a not in [1, -6]", col("a").not_in([1, -6])),
    ("1 < a <= 6", (lit(1) < col("a")) & (col("a") <= 6)),
    ("a * 2 + 1 > c", col("a") * 2 + 1 > col("c")),
    ("sepal.length > 5.0", col("sepal.length") > 5.0),
    ("is_null(b)", col("b").is_null()),
    ("is_not_null(b) and is_valid(a)", col("b").is_not_null() & col("a").is_not_null()),
    ("is_nan(c)", col("c") != col("c")),
    ("is_in(a, [1, 9])", col("a").is_in([1, 9])),
    ("-a < -5", -col("a") < -5),
])
def test_strings_parse_to_expressions(text, expected) -> None:
    assert parse_predicate(text).structurally_equals(expected), parse_predicate(text)


@pytest.mark.parametrize(("text", "match"), [
    ("fake_news super fake", "Invalid syntax in the expression: fake_news super fake"),
    ("a >", "Invalid syntax"),
    ("len(a) > 1", r"the function len\(\) is not supported"),
    ("a[0] > 1", "Subscript"),
    ("a in b", "it takes a list"),
    ("is_null(a, b)", r"is_null\(\) takes 1 argument"),
    ("5", "is a constant"),
    ("a.b() > 1", "is not supported"),
])
def test_unsupported_strings_are_value_errors(text, match) -> None:
    with pytest.raises(ValueError, match=match):
        parse_predicate(text)


def test_filter_with_string_predicates() -> None:
    ds = ed.from_items(ROWS)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        kept = ds.filter(expr="a > 5 and b == 'y'")
    assert kept.take_all() == [ROWS[1]]
    with pytest.warns(DeprecationWarning):
        assert [r["a"] for r in ds.filter(expr="is_null(b) or a < 2").take_all()] == [1, 9]
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="Invalid syntax"):
        ds.filter(expr="a >>> 1")


def test_filter_argument_errors() -> None:
    ds = ed.range(3)
    with pytest.raises(ValueError, match="Exactly one of 'fn' or 'expr' must be provided"):
        ds.filter(lambda r: True, expr="id > 1")
    with pytest.raises(ValueError, match="must be a UserDefinedFunction"):
        ds.filter(fn="id > 1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="when 'expr' is used, 'fn_args/fn_kwargs'"):
        ds.filter(expr=col("id") > 1, fn_kwargs={"x": 1})
    with pytest.raises(ValueError, match="column 'nope' not found"), \
            pytest.warns(DeprecationWarning):
        ds.filter(expr="nope > 1").take_all()
