"""Predicates written as strings, ``ds.filter(expr="score > 0.5 and label == 'cat'")``.

The string is Python expression syntax, read with ``ast`` (nothing is executed): names and
dotted names (``sepal.length``) are columns; numbers, strings, ``True``/``False``/``None``
and lists are literals; ``== != < <= > >= in not in`` compare (chains such as
``1 < x < 5`` too); ``and or not`` combine; ``+ - * / // %`` compute; and the functions
``is_null(x)``, ``is_not_null(x)`` (or ``is_valid``), ``is_nan(x)`` and ``is_in(x, [..])``
test values. Anything else is a ``ValueError`` that names it.
"""

from __future__ import annotations

import ast
from typing import Any

from engine.expressions.core import Expr, col, lit
from engine.expressions.tree import referenced_columns

_COMPARE = {ast.Eq: "__eq__", ast.NotEq: "__ne__", ast.Lt: "__lt__", ast.LtE: "__le__",
            ast.Gt: "__gt__", ast.GtE: "__ge__"}
_ARITHMETIC = {ast.Add: "__add__", ast.Sub: "__sub__", ast.Mult: "__mul__",
               ast.Div: "__truediv__", ast.FloorDiv: "__floordiv__", ast.Mod: "__mod__"}


def parse_predicate(text: str) -> Expr:
    """Return the expression the string ``text`` describes (see the module docstring).

    Example:
        >>> parse_predicate("a > 5 and b.c in ['x', 'y']")
        (col('a') > lit(5)) & col('b.c').is_in(['x', 'y'])
    """
    if not isinstance(text, str):
        raise TypeError(f"a predicate string is a str; got {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"Invalid syntax in the expression: {text}") from exc
    result = _Converter(text).convert(tree.body)
    if not isinstance(result, Expr) or not referenced_columns(result):
        raise ValueError(f"the expression {text!r} is a constant, not a predicate on columns")
    return result


class _Converter:
    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{what} is not supported in the filter expression {self.text!r}")

    def convert(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            return col(node.id)
        if isinstance(node, ast.Attribute):
            return col(self.dotted(node))
        if isinstance(node, ast.Constant):
            return lit(node.value)
        if isinstance(node, ast.List | ast.Tuple):
            return [self.constant(e) for e in node.elts]
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            parts = [self.expr(v) for v in node.values]
            result = parts[0]
            for part in parts[1:]:
                result = result & part if isinstance(node.op, ast.And) else result | part
            return result
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return ~self.expr(node.operand)
            if isinstance(node.op, ast.USub):
                if isinstance(node.operand, ast.Constant):
                    return lit(self.constant(node))  # -5 is a number, not a negation
                return -self.expr(node.operand)
            raise self.fail(f"the unary operator {type(node.op).__name__}")
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            left, right = self.expr(node.left), self.expr(node.right)
            return getattr(left, _ARITHMETIC[type(node.op)])(right)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(f"the syntax {type(node).__name__} ({ast.unparse(node)!r})")

    def expr(self, node: ast.AST) -> Expr:
        value = self.convert(node)
        if isinstance(value, list):
            raise self.fail(f"a list ({ast.unparse(node)!r}) outside `in`")
        return value

    def constant(self, node: ast.AST) -> Any:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and \
                isinstance(node.operand, ast.Constant):
            return -node.operand.value  # type: ignore[operator]
        if not isinstance(node, ast.Constant):
            raise self.fail(f"the list item {ast.unparse(node)!r} (lists hold constants)")
        return node.value

    def dotted(self, node: ast.Attribute) -> str:
        if isinstance(node.value, ast.Name):
            return f"{node.value.id}.{node.attr}"
        if isinstance(node.value, ast.Attribute):
            return f"{self.dotted(node.value)}.{node.attr}"
        raise self.fail(f"the attribute access {ast.unparse(node)!r}")

    def compare(self, node: ast.Compare) -> Expr:
        result: Expr | None = None
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            part = self.compare_one(left, op, right)
            result = part if result is None else result & part
            left = right
        assert result is not None, "a comparison has at least one operator"
        return result

    def compare_one(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> Expr:
        if isinstance(op, ast.In | ast.NotIn):
            values = self.convert(right)
            if not isinstance(values, list):
                raise self.fail(f"`in` with {ast.unparse(right)!r} (it takes a list)")
            member = self.expr(left)
            return member.is_in(values) if isinstance(op, ast.In) else member.not_in(values)
        if type(op) not in _COMPARE:
            raise self.fail(f"the comparison {type(op).__name__}")
        return getattr(self.expr(left), _COMPARE[type(op)])(self.expr(right))

    def call(self, node: ast.Call) -> Expr:
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        arity = {"is_null": 1, "is_not_null": 1, "is_valid": 1, "is_nan": 1, "is_in": 2}
        if name not in arity:
            raise self.fail(f"the function {name}()")
        if len(node.args) != arity[name] or node.keywords:
            raise ValueError(f"{name}() takes {arity[name]} argument(s) in the filter "
                             f"expression {self.text!r}")
        operand = self.expr(node.args[0])
        if name == "is_null":
            return operand.is_null()
        if name in ("is_not_null", "is_valid"):
            return operand.is_not_null()
        if name == "is_nan":
            return operand != operand  # NaN is the one value unequal to itself
        values = self.convert(node.args[1])
        if not isinstance(values, list):
            raise self.fail(f"is_in() with {ast.unparse(node.args[1])!r} (it takes a list)")
        return operand.is_in(values)
