"""Evaluating expressions on a block (a ``pyarrow.Table``), vectorized with Arrow kernels.

Semantics follow Ray Data, which uses Arrow's kernels: ``/`` of two integers is Arrow's
integer division (truncating toward zero; ``/`` with a float operand is true division),
``//`` and ``%`` floor like Python (Arrow has no flooring kernel), ``&``/``|`` use Kleene
logic (``null & False`` is ``False``), and a filter keeps only rows whose predicate is true.
A UDF node calls its Python function on the evaluated arguments (see ``udfs.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.block import number_array, numpy_dtype, one_array, to_numpy
from engine.expressions.core import (
    AliasExpr,
    BinaryExpr,
    ColumnExpr,
    Datum,
    Expr,
    FunctionExpr,
    LiteralExpr,
    Operation,
    UDFExpr,
    UnaryExpr,
    _scalar,
)
from engine.expressions.tree import _check_expr
from engine.expressions.udfs import call_udf


def evaluate(expr: Expr, table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """Return the values of ``expr`` for every row of the block ``table``.

    The result has ``table.num_rows`` values; a literal is repeated. A missing column raises
    ``ValueError`` and operands of the wrong type raise ``TypeError``, both naming the
    expression.

    Example:
        >>> evaluate(col("a") * 2, pa.table({"a": [1, 2]})).to_pylist()
        [2, 4]
    """
    _check_expr(expr)
    result = _Evaluator(table, expr).eval(expr)
    if isinstance(result, pa.Scalar):
        return pa.repeat(result, table.num_rows)
    return result


def evaluate_predicate(expr: Expr, table: pa.Table) -> pa.Table:
    """Return the rows of ``table`` where the predicate ``expr`` is true (null counts as false).

    Example:
        >>> evaluate_predicate(col("a") > 1, pa.table({"a": [1, 2, None]})).num_rows
        1
    """
    mask = evaluate(expr, table)
    if pa.types.is_null(mask.type):
        return table.slice(0, 0)
    if not pa.types.is_boolean(mask.type):
        raise TypeError(f"a filter predicate must give booleans, but {expr!r} gives {mask.type}")
    return table.filter(mask, null_selection_behavior="drop")


@dataclass
class _Evaluator:
    table: pa.Table
    root: Expr

    def eval(self, node: Expr) -> Datum:
        if isinstance(node, ColumnExpr):
            return self.column(node._name)
        if isinstance(node, LiteralExpr):
            return _scalar(node.value)
        if isinstance(node, AliasExpr):
            return self.eval(node.expr)
        if isinstance(node, BinaryExpr):
            left, right = self.eval(node.left), self.eval(node.right)
            return self.apply(node, _BINARY_KERNELS[node.op], left, right)
        if isinstance(node, UnaryExpr):
            return self.apply(node, _UNARY_KERNELS[node.op], self.eval(node.operand))
        if isinstance(node, FunctionExpr):
            args = [self.eval(a) for a in node.args]
            func = getattr(pc, node.func)
            return self.apply(node, lambda *xs: func(*xs, **dict(node.options)), *args)
        if isinstance(node, UDFExpr):
            values = [_python_value(a) if isinstance(a, LiteralExpr) else self.eval(a)
                      for a in node.args]
            if node.call:  # a namespace's built-in function: errors name the expression
                return self.apply(node, lambda *xs: call_udf(node, xs, self.table.num_rows),
                                  *values)
            return call_udf(node, values, self.table.num_rows)
        raise TypeError(f"unknown expression node {type(node).__name__}")

    def column(self, name: str) -> pa.ChunkedArray:
        names = self.table.column_names
        if name not in names:
            raise ValueError(f"column {name!r} not found in block with columns {names} "
                             f"(expression: {self.root!r})")
        column = self.table.column(names.index(name))
        if pa.types.is_dictionary(column.type):  # string kernels reject dictionaries
            column = column.cast(column.type.value_type)
        return column

    def apply(self, node: Expr, kernel: Callable[..., Datum], *args: Datum) -> Datum:
        try:
            return kernel(*args)
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError) as exc:
            types = ", ".join(str(getattr(a, "type", type(a).__name__)) for a in args)
            raise TypeError(f"cannot evaluate {node!r} on values of type ({types}): "
                            f"{exc}{self.context(node)}") from exc
        except ZeroDivisionError as exc:
            raise ZeroDivisionError(f"integer division by zero in {node!r}"
                                    f"{self.context(node)}") from exc
        except (pa.ArrowInvalid, ValueError) as exc:  # e.g. overflow, a lossy cast
            raise ValueError(f"cannot evaluate {node!r}: {exc}{self.context(node)}") from exc

    def context(self, node: Expr) -> str:
        return "" if node is self.root else f" (in expression {self.root!r})"


def _python_value(literal: LiteralExpr) -> object:
    """A literal as a UDF receives it: its Python value (lit() keeps lists as tuples)."""
    value = literal.value
    return list(value) if isinstance(value, tuple) else value


def _is_string(value: Datum) -> bool:
    return pa.types.is_string(value.type) or pa.types.is_large_string(value.type)


def _add(left: Datum, right: Datum) -> Datum:
    if _is_string(left) or _is_string(right):
        if not (_is_string(left) and _is_string(right)):
            raise TypeError(f"cannot concatenate {left.type} and {right.type}; "
                            "cast() the other operand to string first")
        return pc.binary_join_element_wise(left, right, "")
    return pc.add(left, right)


def _floor_kernel(ufunc: np.ufunc) -> Callable[[Datum, Datum], Datum]:
    """Python's ``//`` or ``%`` via numpy: Arrow has no flooring division kernel."""

    def kernel(left: Datum, right: Datum) -> Datum:
        for value in (left, right):
            t = value.type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
                raise TypeError(f"{ufunc.__name__} needs numbers, got {t}")
        (lvals, lnull), (rvals, rnull) = _numpy_with_mask(left), _numpy_with_mask(right)
        null = lnull | rnull  # 0-d where neither side has a null
        if rvals.dtype.kind in "iu":
            zero = rvals == 0
            if lvals.dtype.kind in "iu" and np.any(zero & ~null if zero.ndim else
                                                   bool(zero) and not np.all(null)):
                raise ZeroDivisionError
            if rvals.ndim or rnull:  # a null divisor must not raise
                rvals = np.where(null, 1, rvals)
        with np.errstate(all="ignore"):
            result = _int_by_scalar(ufunc, lvals, rvals)
            if result is None:
                result = ufunc(lvals, rvals)
        if result.ndim == 0:  # scalar op scalar
            one = pa.nulls(1, pa.from_numpy_dtype(result.dtype)) if null else \
                _to_arrow(result.reshape(1))
            return one[0]
        if null.ndim == 0:
            return pa.nulls(len(result), pa.from_numpy_dtype(result.dtype)) if null else \
                _to_arrow(result)
        return _to_arrow(result, null)

    return kernel


def _int_by_scalar(ufunc: np.ufunc, lvals: np.ndarray, rvals: np.ndarray) -> np.ndarray | None:
    """``%`` of integers by one integer, as ``a - (a // d) * d``: numpy divides by a
    scalar with a fast divider but its remainder kernel does not. The arithmetic runs in
    the column's own type where ``d`` fits it (mixed widths convert every value), then
    takes numpy's result type. 2-3x faster than ``np.remainder``."""
    if ufunc is not np.remainder or rvals.ndim or not lvals.ndim:
        return None
    out_type = np.result_type(lvals, rvals)
    if out_type.kind not in "iu":
        return None
    d = int(rvals)
    info = np.iinfo(lvals.dtype)
    divisor = lvals.dtype.type(d) if info.min <= d <= info.max else rvals
    rest = lvals - np.floor_divide(lvals, divisor) * divisor
    return rest.astype(out_type, copy=False)  # type: ignore[no-any-return]


def _to_arrow(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """``pa.array(values, mask=mask)``, without its pandas import for numbers."""
    array = number_array(values, mask)
    return pa.array(values, mask=mask) if array is None else array


def _numpy_with_mask(value: Datum) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, pa.Scalar):
        if not value.is_valid or pa.types.is_null(value.type):
            return np.asarray(0.0), np.asarray(True)
        return np.asarray(value.as_py(), dtype=numpy_dtype(value.type)), np.asarray(False)
    value = one_array(value)
    if pa.types.is_null(value.type):
        return np.zeros(len(value)), np.ones(len(value), dtype=bool)
    if not value.null_count:
        return to_numpy(value), np.asarray(False)
    null = to_numpy(value.is_null())
    zero = np.zeros(1, dtype=numpy_dtype(value.type))
    filled = pc.fill_null(value, _to_arrow(zero)[0])
    return to_numpy(filled), null


def _is_in(left: Datum, right: Datum) -> Datum:
    if isinstance(right, pa.ListScalar) and right.values is not None and \
            _numbers_or_bools(right.values.type):
        values = right.values  # what pa.array(right.as_py()) gives, without pandas
    else:
        values = pa.array(right.as_py() if isinstance(right, pa.Scalar) else right)
    if pa.types.is_null(values.type):
        values = values.cast(left.type)
    return pc.is_in(left, value_set=values)


def _numbers_or_bools(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))


_BINARY_KERNELS: dict[Operation, Callable[[Datum, Datum], Datum]] = {
    Operation.ADD: _add,
    Operation.SUB: pc.subtract,
    Operation.MUL: pc.multiply,
    Operation.DIV: pc.divide,
    Operation.FLOORDIV: _floor_kernel(np.floor_divide),
    Operation.MOD: _floor_kernel(np.mod),
    Operation.POW: pc.power,
    Operation.GT: pc.greater,
    Operation.LT: pc.less,
    Operation.GE: pc.greater_equal,
    Operation.LE: pc.less_equal,
    Operation.EQ: pc.equal,
    Operation.NE: pc.not_equal,
    Operation.AND: pc.and_kleene,
    Operation.OR: pc.or_kleene,
    Operation.IN: _is_in,
    Operation.NOT_IN: lambda left, right: pc.invert(_is_in(left, right)),
}

_UNARY_KERNELS: dict[Operation, Callable[[Datum], Datum]] = {
    Operation.NOT: pc.invert,
    Operation.NEG: pc.negate_checked,
    Operation.IS_NULL: pc.is_null,
    Operation.IS_NOT_NULL: pc.is_valid,
}
