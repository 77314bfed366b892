"""Walking expression trees: the columns an expression reads, its output name, renaming
columns, structural comparison and ``repr``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from engine.expressions.core import (
    _SYMBOLS,
    AliasExpr,
    BinaryExpr,
    ColumnExpr,
    Expr,
    FunctionExpr,
    LiteralExpr,
    Operation,
    UDFExpr,
    UnaryExpr,
)


def _children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, FunctionExpr | UDFExpr):
        return expr.args
    return tuple(getattr(expr, f.name) for f in dataclasses.fields(expr)
                 if isinstance(getattr(expr, f.name), Expr))


def _transform(expr: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """Return ``expr`` rebuilt bottom-up with ``fn`` applied to every node."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(expr):
        value = getattr(expr, f.name)
        if isinstance(value, Expr):
            changes[f.name] = _transform(value, fn)
        elif f.name == "args":
            changes[f.name] = tuple(_transform(a, fn) for a in value)
    return fn(dataclasses.replace(expr, **changes) if changes else expr)


def structural_key(expr: Expr) -> tuple[Any, ...]:
    fields = []
    for f in dataclasses.fields(expr):
        value = getattr(expr, f.name)
        if isinstance(value, Expr):
            value = structural_key(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], Expr):
            value = tuple(structural_key(v) for v in value)
        elif isinstance(expr, LiteralExpr):
            value = (type(value).__name__, value)  # lit(1) is not lit(True) or lit(1.0)
        fields.append(value)
    return (type(expr).__name__, *fields)


def referenced_columns(expr: Expr) -> set[str]:
    """Return the names of the columns that ``expr`` reads."""
    _check_expr(expr)
    if isinstance(expr, ColumnExpr):
        return {expr._name}
    names: set[str] = set()
    for child in _children(expr):
        names |= referenced_columns(child)
    return names


def output_name(expr: Expr) -> str | None:
    """Return the name of the column ``expr`` produces: its alias or column name, else None."""
    _check_expr(expr)
    if isinstance(expr, AliasExpr):
        return expr.alias_name
    if isinstance(expr, ColumnExpr):
        return expr._name
    return None


def rename_columns(expr: Expr, mapping: dict[str, str]) -> Expr:
    """Return ``expr`` with every column reference ``old`` replaced by ``mapping[old]``.

    Aliases (output names) are left as they are.
    """
    _check_expr(expr)

    def rename(node: Expr) -> Expr:
        if isinstance(node, ColumnExpr) and node._name in mapping:
            return ColumnExpr(mapping[node._name])
        return node

    return _transform(expr, rename)


def _check_expr(expr: Any) -> None:
    if not isinstance(expr, Expr):
        raise TypeError(f"expected an expression built with col()/lit(), got {expr!r}")


_METHOD_REPR = {Operation.IS_NULL: "is_null", Operation.IS_NOT_NULL: "is_not_null",
                Operation.IN: "is_in", Operation.NOT_IN: "not_in"}


def expr_repr(expr: Expr) -> str:
    if isinstance(expr, ColumnExpr):
        return f"col({expr._name!r})"
    if isinstance(expr, LiteralExpr):
        value = list(expr.value) if isinstance(expr.value, tuple) else expr.value
        return f"lit({value!r})"
    if isinstance(expr, AliasExpr):
        return f"{_operand_repr(expr.expr)}.alias({expr.alias_name!r})"
    if isinstance(expr, FunctionExpr):
        return f"{_operand_repr(expr.args[0])}.{expr.call}"
    if isinstance(expr, UDFExpr):
        if expr.call:
            return f"{_operand_repr(expr.args[0])}.{expr.call}"
        n = len(expr.args) - len(expr.kwarg_names)
        parts = [expr_repr(a) for a in expr.args[:n]] + [
            f"{k}={expr_repr(v)}" for k, v in zip(expr.kwarg_names, expr.args[n:], strict=True)]
        return f"{udf_display_name(expr.fn)}({', '.join(parts)})"
    if isinstance(expr, UnaryExpr):
        if expr.op in _METHOD_REPR:
            return f"{_operand_repr(expr.operand)}.{_METHOD_REPR[expr.op]}()"
        sign = "~" if expr.op is Operation.NOT else "-"
        return f"{sign}{_operand_repr(expr.operand)}"
    if isinstance(expr, BinaryExpr):
        if expr.op in _METHOD_REPR:
            values = expr.right.value if isinstance(expr.right, LiteralExpr) else expr.right
            shown = list(values) if isinstance(values, tuple) else values
            return f"{_operand_repr(expr.left)}.{_METHOD_REPR[expr.op]}({shown!r})"
        symbol = _SYMBOLS[expr.op]
        return f"{_operand_repr(expr.left)} {symbol} {_operand_repr(expr.right)}"
    return object.__repr__(expr)


def _operand_repr(expr: Expr) -> str:
    text = expr_repr(expr)
    prefix_op = isinstance(expr, UnaryExpr) and expr.op not in _METHOD_REPR
    infix_op = isinstance(expr, BinaryExpr) and expr.op not in _METHOD_REPR
    return f"({text})" if prefix_op or infix_op else text


def udf_display_name(fn: Any) -> str:
    """The name a UDF goes by in messages: its function's or class's name."""
    return str(getattr(fn, "__name__", type(fn).__name__))
