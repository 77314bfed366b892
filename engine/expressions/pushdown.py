"""Translating expressions to ``pyarrow.compute.Expression`` for reader pushdown (parquet
column pruning and row-group filtering)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from engine.expressions.core import (
    AliasExpr,
    BinaryExpr,
    ColumnExpr,
    Expr,
    FunctionExpr,
    LiteralExpr,
    Operation,
    UDFExpr,
    UnaryExpr,
    _scalar,
)
from engine.expressions.evaluate import _BINARY_KERNELS, _UNARY_KERNELS, _is_string, evaluate
from engine.expressions.tree import _check_expr, _children, referenced_columns


def to_pyarrow(expr: Expr, schema: pa.Schema | None = None) -> pc.Expression:
    """Return the ``pyarrow.compute.Expression`` equal to ``expr`` (for parquet pushdown).

    ``//``, ``%`` and UDFs have no Arrow equivalent and raise ``NotImplementedError``; check
    :func:`can_push_down` first. ``a + b`` of two columns is a string concatenation only if
    ``schema`` says they are strings.
    """
    _check_expr(expr)
    if isinstance(expr, ColumnExpr):
        return pc.field(expr._name)
    if isinstance(expr, LiteralExpr):
        return pc.scalar(_scalar(expr.value))
    if isinstance(expr, AliasExpr):
        return to_pyarrow(expr.expr, schema)
    if isinstance(expr, UnaryExpr):
        return _UNARY_KERNELS[expr.op](to_pyarrow(expr.operand, schema))
    if isinstance(expr, FunctionExpr):
        args = [to_pyarrow(a, schema) for a in expr.args]
        options = dict(expr.options)
        if expr.func == "cast":
            return args[0].cast(options["target_type"], safe=options["safe"])
        return getattr(pc, expr.func)(*args, **options)
    if isinstance(expr, BinaryExpr):
        return _binary_to_pyarrow(expr, schema)
    if isinstance(expr, UDFExpr):
        raise NotImplementedError(f"{expr!r} calls a Python function: it has no "
                                  "pyarrow.dataset equivalent")
    raise NotImplementedError(f"{expr!r} has no pyarrow.dataset equivalent")


def _binary_to_pyarrow(expr: BinaryExpr, schema: pa.Schema | None) -> pc.Expression:
    if expr.op in (Operation.FLOORDIV, Operation.MOD):
        raise NotImplementedError(f"{expr!r}: {expr.op.value} has no pyarrow.dataset equivalent")
    left = to_pyarrow(expr.left, schema)
    if expr.op in (Operation.IN, Operation.NOT_IN):
        assert isinstance(expr.right, LiteralExpr), "is_in() keeps its values as a literal"
        values = pa.array(list(expr.right.value))
        if pa.types.is_null(values.type):  # no values (or only None): an untyped set
            result = left.is_null() if len(values) else pc.scalar(False)
        else:
            result = pc.is_in(left, value_set=values)
        return pc.invert(result) if expr.op is Operation.NOT_IN else result
    right = to_pyarrow(expr.right, schema)
    if expr.op is Operation.ADD:
        if _is_string_operand(expr, schema):
            return pc.binary_join_element_wise(left, right, "")
        return pc.add(left, right)
    return _BINARY_KERNELS[expr.op](left, right)


def _is_string_operand(expr: BinaryExpr, schema: pa.Schema | None) -> bool:
    for side in (expr.left, expr.right):
        if isinstance(side, LiteralExpr) and isinstance(side.value, str):
            return True
        if schema is None or referenced_columns(side) - set(schema.names):
            continue
        if _is_string(evaluate(side, schema.empty_table())):
            return True
    return False


def can_push_down(expr: Expr, schema: pa.Schema | None = None) -> bool:
    """Return whether :func:`to_pyarrow` can translate ``expr`` (no ``//``, ``%`` or UDF).

    With ``schema``, also return False when ``expr`` would fail on blocks of that schema (a
    missing column, mismatched types), so that the error is raised by :func:`evaluate`, with
    its message, rather than by the file reader.
    """
    _check_expr(expr)
    if _has_udf(expr):  # never run a user's function just to check types
        return False
    if schema is not None:
        if referenced_columns(expr) - set(schema.names):
            return False
        try:
            evaluate(expr, schema.empty_table())
        except (TypeError, ValueError, ZeroDivisionError):
            return False
    try:
        to_pyarrow(expr, schema)
    except NotImplementedError:
        return False
    return True


def _has_udf(expr: Expr) -> bool:
    return isinstance(expr, UDFExpr) or any(_has_udf(c) for c in _children(expr))
