"""The expression tree: :class:`Expr` and its node types, :func:`col` and :func:`lit`.

Operators and methods build new nodes; the namespaces (``.str``, ``.dt``, ``.list``,
``.struct``, ``.map``, ``.arr``) live in modules of their own and add ``FunctionExpr`` nodes
(an Arrow kernel) or ``UDFExpr`` nodes (a Python function over Arrow arrays). Nothing here
evaluates: see ``evaluate.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.block import python_scalar
from engine.datatype import DataType

if TYPE_CHECKING:
    from engine.expressions.arr import ArrayNamespace
    from engine.expressions.datetime import DatetimeNamespace
    from engine.expressions.list import ListNamespace
    from engine.expressions.map import MapNamespace
    from engine.expressions.string import StringNamespace
    from engine.expressions.struct import StructNamespace

# An Arrow array, chunked array or scalar (pyarrow ships no type stubs).
Datum = Any


class Operation(str, enum.Enum):
    """The operators an expression node can apply (Ray Data's names, plus ``POW``/``NEG``)."""

    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    MOD = "mod"
    FLOORDIV = "floordiv"
    POW = "pow"
    GT = "gt"
    LT = "lt"
    GE = "ge"
    LE = "le"
    EQ = "eq"
    NE = "ne"
    AND = "and"
    OR = "or"
    NOT = "not"
    NEG = "neg"
    IS_NULL = "is_null"
    IS_NOT_NULL = "is_not_null"
    IN = "in"
    NOT_IN = "not_in"


_SYMBOLS = {
    Operation.ADD: "+", Operation.SUB: "-", Operation.MUL: "*", Operation.DIV: "/",
    Operation.MOD: "%", Operation.FLOORDIV: "//", Operation.POW: "**", Operation.GT: ">",
    Operation.LT: "<", Operation.GE: ">=", Operation.LE: "<=", Operation.EQ: "==",
    Operation.NE: "!=", Operation.AND: "&", Operation.OR: "|",
}


# ---------------------------------------------------------------- the expression tree


def _binary(op: Operation, reflected: bool = False) -> Callable[[Expr, Any], Expr]:
    """Return the method behind a Python operator (``reflected``: for ``1 + col("x")``)."""

    def method(self: Expr, other: Any) -> Expr:
        other = _wrap(other)
        return BinaryExpr(op, other, self) if reflected else BinaryExpr(op, self, other)

    method.__doc__ = f"Return the expression ``{'other' if reflected else 'self'} " \
                     f"{_SYMBOLS[op]} {'self' if reflected else 'other'}``."
    return method


def _math(func: str, doc: str) -> Callable[[Expr], Expr]:
    """Return an elementwise method applying the ``pyarrow.compute`` function ``func``."""
    name = func.removesuffix("_checked")

    def method(self: Expr) -> Expr:
        return _call(self, func, f"{name}()")

    method.__name__, method.__doc__ = name, doc
    return method


@dataclass(frozen=True, eq=False, repr=False)
class Expr:
    """Base class of expression nodes; build them with :func:`col` and :func:`lit`.

    Python operators build new nodes: ``+ - * / // % **``, unary ``-``, comparisons, and
    ``& | ~`` for Kleene and/or/not. A plain value on either side becomes a :func:`lit`.
    """

    __add__, __radd__ = _binary(Operation.ADD), _binary(Operation.ADD, reflected=True)
    __sub__, __rsub__ = _binary(Operation.SUB), _binary(Operation.SUB, reflected=True)
    __mul__, __rmul__ = _binary(Operation.MUL), _binary(Operation.MUL, reflected=True)
    __truediv__ = _binary(Operation.DIV)
    __rtruediv__ = _binary(Operation.DIV, reflected=True)
    __floordiv__ = _binary(Operation.FLOORDIV)
    __rfloordiv__ = _binary(Operation.FLOORDIV, reflected=True)
    __mod__, __rmod__ = _binary(Operation.MOD), _binary(Operation.MOD, reflected=True)
    __pow__, __rpow__ = _binary(Operation.POW), _binary(Operation.POW, reflected=True)
    __and__, __rand__ = _binary(Operation.AND), _binary(Operation.AND, reflected=True)
    __or__, __ror__ = _binary(Operation.OR), _binary(Operation.OR, reflected=True)
    __gt__, __lt__ = _binary(Operation.GT), _binary(Operation.LT)
    __ge__, __le__ = _binary(Operation.GE), _binary(Operation.LE)
    __eq__ = _binary(Operation.EQ)  # type: ignore[assignment]
    __ne__ = _binary(Operation.NE)  # type: ignore[assignment]
    # ``==`` builds an expression, so hashing must not rely on it.
    __hash__ = object.__hash__

    def __invert__(self) -> Expr:
        return UnaryExpr(Operation.NOT, self)

    def __neg__(self) -> Expr:
        return UnaryExpr(Operation.NEG, self)

    def __bool__(self) -> bool:
        raise TypeError(
            f"the expression {self!r} has no truth value: combine predicates with "
            "& | ~ instead of and/or/not (with parentheses: (col('a') > 1) & (col('b') < 2)), "
            "use .is_in([...]) instead of `in`, and .structurally_equals() to compare trees"
        )

    def __repr__(self) -> str:
        from engine.expressions.tree import expr_repr

        return expr_repr(self)

    def is_null(self) -> Expr:
        """Return an expression that is true where this expression is null."""
        return UnaryExpr(Operation.IS_NULL, self)

    def is_not_null(self) -> Expr:
        """Return an expression that is true where this expression is not null."""
        return UnaryExpr(Operation.IS_NOT_NULL, self)

    def is_in(self, values: Iterable[Any] | Expr) -> Expr:
        """Return an expression that is true where the value is one of ``values``.

        A null value matches a null in ``values``; otherwise the result is never null.

        Example:
            >>> col("city").is_in(["Paris", "Rome"])
            col('city').is_in(['Paris', 'Rome'])
        """
        return BinaryExpr(Operation.IN, self, _value_set(values))

    def not_in(self, values: Iterable[Any] | Expr) -> Expr:
        """Return an expression that is true where the value is not one of ``values``."""
        return BinaryExpr(Operation.NOT_IN, self, _value_set(values))

    def alias(self, name: str) -> Expr:
        """Return this expression renamed to ``name`` (the output column of ``with_column``)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"alias name must be a non-empty string, got {name!r}")
        inner = self.expr if isinstance(self, AliasExpr) else self
        return AliasExpr(inner, name)

    @property
    def name(self) -> str | None:
        """The output name: the alias or column name, or ``None`` for computed values."""
        from engine.expressions.tree import output_name

        return output_name(self)

    def structurally_equals(self, other: Any) -> bool:
        """Return whether ``other`` is an expression tree identical to this one."""
        from engine.expressions.tree import structural_key

        return isinstance(other, Expr) and structural_key(self) == structural_key(other)

    def to_pyarrow(self) -> pc.Expression:
        """Return the equivalent ``pyarrow.compute.Expression`` (see :func:`to_pyarrow`)."""
        from engine.expressions.pushdown import to_pyarrow

        return to_pyarrow(self)

    def negate(self) -> Expr:
        """Return the negated value, like ``-expr``."""
        return UnaryExpr(Operation.NEG, self)

    def power(self, exponent: Any) -> Expr:
        """Return this value raised to ``exponent``, like ``expr ** exponent``."""
        return BinaryExpr(Operation.POW, self, _wrap(exponent))

    abs = _math("abs_checked", "Return the absolute value.")
    sign = _math("sign", "Return -1, 0 or 1 by the sign of the value.")
    ceil = _math("ceil", "Return the value rounded up to an integer.")
    floor = _math("floor", "Return the value rounded down to an integer.")
    round = _math("round", "Return the value rounded to the nearest integer, half to even.")
    trunc = _math("trunc", "Return the value rounded toward zero.")
    ln = _math("ln", "Return the natural logarithm.")
    log10 = _math("log10", "Return the base-10 logarithm.")
    log2 = _math("log2", "Return the base-2 logarithm.")
    exp = _math("exp", "Return e raised to the value.")
    sin = _math("sin", "Return the sine (radians).")
    cos = _math("cos", "Return the cosine (radians).")
    tan = _math("tan", "Return the tangent (radians).")
    asin = _math("asin", "Return the arcsine.")
    acos = _math("acos", "Return the arccosine.")
    atan = _math("atan", "Return the arctangent.")

    def cast(self, target_type: DataType | pa.DataType | str, *, safe: bool = True) -> Expr:
        """Return the value converted to ``target_type``.

        ``target_type`` is a :class:`~engine.datatype.DataType` such as
        ``DataType.int64()`` (a ``pyarrow.DataType`` or an Arrow type name such as
        ``"int64"`` is accepted too). With ``safe=True`` a lossy or invalid conversion
        raises; ``safe=False`` truncates.

        Example:
            >>> (col("id") % 2).cast(DataType.int64())
            (col('id') % lit(2)).cast('int64')
        """
        arrow_type = cast_target(target_type)
        shown = _args_text(str(arrow_type)) + ("" if safe else ", safe=False")
        return _call(self, "cast", f"cast({shown})", target_type=arrow_type, safe=safe)

    @property
    def str(self) -> StringNamespace:
        """String functions: ``col("name").str.upper()``."""
        from engine.expressions.string import StringNamespace

        return StringNamespace(self)

    @property
    def dt(self) -> DatetimeNamespace:
        """Date and time functions: ``col("ts").dt.year()``."""
        from engine.expressions.datetime import DatetimeNamespace

        return DatetimeNamespace(self)

    @property
    def list(self) -> ListNamespace:
        """List functions: ``col("items").list.len()``, ``col("items").list[0]``."""
        from engine.expressions.list import ListNamespace

        return ListNamespace(self)

    @property
    def struct(self) -> StructNamespace:
        """Struct field access: ``col("user").struct["name"]``."""
        from engine.expressions.struct import StructNamespace

        return StructNamespace(self)

    @property
    def map(self) -> MapNamespace:
        """Map functions: ``col("attrs").map.keys()``."""
        from engine.expressions.map import MapNamespace

        return MapNamespace(self)

    @property
    def arr(self) -> ArrayNamespace:
        """Fixed-size array functions: ``col("vec").arr.to_list()``."""
        from engine.expressions.arr import ArrayNamespace

        return ArrayNamespace(self)


@dataclass(frozen=True, eq=False, repr=False)
class ColumnExpr(Expr):
    """A reference to the column ``name`` of the block."""

    _name: str


@dataclass(frozen=True, eq=False, repr=False)
class LiteralExpr(Expr):
    """A constant; it broadcasts to the block's length. Lists are stored as tuples."""

    value: Any


@dataclass(frozen=True, eq=False, repr=False)
class BinaryExpr(Expr):
    """``left <op> right``."""

    op: Operation
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False, repr=False)
class UnaryExpr(Expr):
    """``<op> operand``: not, negation and null checks."""

    op: Operation
    operand: Expr


@dataclass(frozen=True, eq=False, repr=False)
class AliasExpr(Expr):
    """``expr`` named ``alias_name``."""

    expr: Expr
    alias_name: str


@dataclass(frozen=True, eq=False, repr=False)
class FunctionExpr(Expr):
    """A ``pyarrow.compute`` function applied to ``args`` with keyword ``options``.

    ``call`` is how the method call reads in ``repr`` (e.g. ``"str.slice(0, 2)"``).
    """

    func: str
    args: tuple[Expr, ...]
    options: tuple[tuple[str, Any], ...]
    call: str


@dataclass(frozen=True, eq=False, repr=False)
class UDFExpr(Expr):
    """A Python function ``fn`` called on the evaluated ``args`` (Arrow arrays).

    The last ``len(kwarg_names)`` of ``args`` are passed by those keywords. ``fn`` returns
    one value per row, converted to ``return_dtype``. ``call``, when set, is how the node
    reads in ``repr`` after its first argument (namespaces' built-in functions).
    """

    fn: Any
    args: tuple[Expr, ...]
    kwarg_names: tuple[str, ...] = ()
    return_dtype: DataType | None = None
    call: str = ""

    @property
    def data_type(self) -> DataType | None:
        """The declared type of the values (``return_dtype``)."""
        return self.return_dtype


def col(name: str) -> ColumnExpr:
    """Return an expression that references the column ``name``.

    Example:
        >>> (col("price") * col("qty")).alias("total")
        (col('price') * col('qty')).alias('total')
    """
    if not isinstance(name, str):
        raise TypeError(f"col() takes a column name (str), got {name!r}")
    return ColumnExpr(name)


def lit(value: Any) -> LiteralExpr:
    """Return an expression for the constant ``value``; it broadcasts to every row.

    Example:
        >>> col("x") + lit(1)
        col('x') + lit(1)
    """
    if isinstance(value, Expr):
        raise TypeError(f"lit() takes a constant, got the expression {value!r}")
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        value = tuple(value.tolist() if isinstance(value, np.ndarray) else value)
    try:
        _scalar(value)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise TypeError(f"lit() cannot represent {value!r} as an Arrow value: {exc}") from exc
    return LiteralExpr(value)


def _wrap(value: Any) -> Expr:
    return value if isinstance(value, Expr) else lit(value)


def _value_set(values: Any) -> LiteralExpr:
    if isinstance(values, LiteralExpr) and isinstance(values.value, tuple):
        return values
    if isinstance(values, Expr):
        raise TypeError(f"is_in()/not_in() take a list of constants, got {values!r}")
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"is_in()/not_in() take a list of values, got {values!r}")
    if isinstance(values, pa.Array | pa.ChunkedArray):
        values = values.to_pylist()
    return lit(list(values))


def _call(receiver: Expr, func: str, call: str, **options: Any) -> FunctionExpr:
    return FunctionExpr(func, (receiver,), tuple(sorted(options.items())), call)


def cast_target(target_type: Any) -> pa.DataType:
    """The Arrow type ``cast()`` converts to, or a ``TypeError`` saying what is accepted."""
    if isinstance(target_type, DataType):
        if target_type.is_python_type():
            raise TypeError(
                f"cast() cannot use the Python-type-backed DataType {target_type!r}: "
                "it requires values to infer an Arrow type from, and a cast has none. Use "
                "an Arrow-backed DataType such as DataType.int64() or DataType.string()")
        return target_type.to_arrow_dtype()
    if isinstance(target_type, pa.DataType):
        return target_type
    if isinstance(target_type, str):
        try:
            return pa.type_for_alias(target_type)
        except (ValueError, KeyError):
            pass
    raise TypeError(
        f"cast(): target_type must be a ray.data.datatype.DataType (engine.datatype."
        f"DataType, e.g. DataType.int64()), a pyarrow.DataType or an Arrow type name; got "
        f"{target_type!r} of type {type(target_type).__name__}")


def _scalar(value: Any) -> pa.Scalar:
    if isinstance(value, pa.Scalar):
        return value
    return python_scalar(list(value) if isinstance(value, tuple) else value)



def _args_text(*args: Any, **kwargs: Any) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return ", ".join(parts)
