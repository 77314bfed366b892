"""Column expressions (``ray.data.expressions``; a leaf package: imports nothing of the
engine but the other leaves).

An expression is an immutable tree built with :func:`col`, :func:`lit`, :func:`udf` and
Python operators, for example ``(col("a") + 1) > col("b")``. It is evaluated vectorized,
one whole block (a ``pyarrow.Table``) at a time, by :func:`evaluate` and
:func:`evaluate_predicate`; the optimizer inspects it with :func:`referenced_columns`,
:func:`rename_columns` and :func:`to_pyarrow` (parquet predicate pushdown).

One module per concept, as Polars lays out its expressions:

    core       the tree (Expr and its nodes), col(), lit(), cast()
    udfs       udf(): Python functions and callable classes as expressions
    string     expr.str         datetime   expr.dt        list   expr.list
    struct     expr.struct      map        expr.map       arr    expr.arr
    tree       walking trees: columns read, output names, renaming, repr
    evaluate   evaluation on blocks (Arrow semantics: int / int is integer division)
    pushdown   translation to pyarrow.compute.Expression
    parse      predicates written as strings (filter(expr="a > 5"))

Because ``==`` builds an expression, an ``Expr`` cannot be used as a Python ``bool``; compare
trees with :meth:`Expr.structurally_equals`. Hashing is by identity for the same reason.
"""

from __future__ import annotations

from engine.expressions.arr import ArrayNamespace
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
    col,
    lit,
)
from engine.expressions.datetime import DatetimeNamespace
from engine.expressions.evaluate import evaluate, evaluate_predicate
from engine.expressions.list import ListNamespace
from engine.expressions.map import MapNamespace
from engine.expressions.parse import parse_predicate
from engine.expressions.pushdown import can_push_down, to_pyarrow
from engine.expressions.string import StringNamespace
from engine.expressions.struct import StructNamespace
from engine.expressions.tree import output_name, referenced_columns, rename_columns
from engine.expressions.udfs import CallableClassUDF, class_udfs, pyarrow_udf, udf

__all__ = [
    "AliasExpr", "ArrayNamespace", "BinaryExpr", "CallableClassUDF", "ColumnExpr",
    "DatetimeNamespace", "Datum", "Expr", "FunctionExpr", "ListNamespace", "LiteralExpr",
    "MapNamespace", "Operation", "StringNamespace", "StructNamespace", "UDFExpr", "UnaryExpr",
    "can_push_down", "class_udfs", "col", "evaluate", "evaluate_predicate", "lit",
    "output_name", "parse_predicate", "pyarrow_udf", "referenced_columns", "rename_columns",
    "to_pyarrow", "udf",
]
