"""Column expressions (a leaf module: imports nothing of the engine).

An expression is an immutable tree built with :func:`col`, :func:`lit` and Python operators,
for example ``(col("a") + 1) > col("b")``. It is evaluated vectorized, one whole block
(a ``pyarrow.Table``) at a time, by :func:`evaluate` and :func:`evaluate_predicate`; the
optimizer inspects it with :func:`referenced_columns`, :func:`rename_columns` and
:func:`to_pyarrow` (parquet predicate pushdown).

Semantics follow Python and pandas where Arrow's kernels differ: ``/`` is true division
(integers give ``float64``), ``//`` and ``%`` floor like Python, ``&``/``|`` use Kleene logic
(``null & False`` is ``False``) and a filter keeps only rows whose predicate is true.

Because ``==`` builds an expression, an ``Expr`` cannot be used as a Python ``bool``; compare
trees with :meth:`Expr.structurally_equals`. Hashing is by identity for the same reason.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
        return _repr(self)

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
        return output_name(self)

    def structurally_equals(self, other: Any) -> bool:
        """Return whether ``other`` is an expression tree identical to this one."""
        return isinstance(other, Expr) and _key(self) == _key(other)

    def to_pyarrow(self) -> pc.Expression:
        """Return the equivalent ``pyarrow.compute.Expression`` (see :func:`to_pyarrow`)."""
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

    def cast(self, target_type: Any, *, safe: bool = True) -> Expr:
        """Return the value converted to ``target_type``.

        ``target_type`` is a ``pyarrow.DataType``, a type name such as ``"int64"``, a numpy
        dtype, or a data-type object with ``to_arrow_dtype()``. With ``safe=True`` a lossy
        conversion raises.
        """
        arrow_type = _arrow_type(target_type)
        shown = _args_text(str(arrow_type)) + ("" if safe else ", safe=False")
        return _call(self, "cast", f"cast({shown})", target_type=arrow_type, safe=safe)

    @property
    def str(self) -> _StringNamespace:
        """String functions: ``col("name").str.upper()``."""
        return _StringNamespace(self)

    @property
    def dt(self) -> _DatetimeNamespace:
        """Date and time functions: ``col("ts").dt.year()``."""
        return _DatetimeNamespace(self)



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


def _arrow_type(target_type: Any) -> pa.DataType:
    if isinstance(target_type, pa.DataType):
        return target_type
    if hasattr(target_type, "to_arrow_dtype"):
        return target_type.to_arrow_dtype()
    try:
        if isinstance(target_type, str):
            return pa.type_for_alias(target_type)
        return pa.from_numpy_dtype(np.dtype(target_type))
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise TypeError(f"cast() cannot interpret target_type={target_type!r}") from exc


def _scalar(value: Any) -> pa.Scalar:
    if isinstance(value, pa.Scalar):
        return value
    return pa.scalar(list(value) if isinstance(value, tuple) else value)


# ---------------------------------------------------------------- namespaces


def _args_text(*args: Any, **kwargs: Any) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return ", ".join(parts)


def _str_fn(func: str, method: str, doc: str) -> Callable[[_StringNamespace], Expr]:
    def fn(self: _StringNamespace) -> Expr:
        return _call(self._expr, func, f"str.{method}()")

    fn.__name__, fn.__doc__ = method, doc
    return fn


def _str_pattern_fn(func: str, method: str, doc: str) -> Callable[..., Expr]:
    def fn(self: _StringNamespace, pattern: str, **kwargs: Any) -> Expr:
        call = f"str.{method}({_args_text(pattern, **kwargs)})"
        return _call(self._expr, func, call, pattern=pattern, **kwargs)

    fn.__name__ = method
    fn.__doc__ = f"Return, per string: {doc} Keyword options (``ignore_case``...) go to Arrow."
    return fn


def _str_trim_fn(func: str, method: str, where: str) -> Callable[..., Expr]:
    def fn(self: _StringNamespace, characters: str | None = None) -> Expr:
        if characters is None:
            return _call(self._expr, f"{func}_whitespace", f"str.{method}()")
        return _call(self._expr, func, f"str.{method}({characters!r})", characters=characters)

    fn.__name__ = method
    fn.__doc__ = f"Return the strings without {where} whitespace (or ``characters``)."
    return fn


def _str_pad_fn(func: str, method: str, how: str) -> Callable[..., Expr]:
    def fn(self: _StringNamespace, width: int, padding: str = " ") -> Expr:
        call = f"str.{method}({_args_text(width, padding)})"
        return _call(self._expr, func, call, width=width, padding=padding)

    fn.__name__, fn.__doc__ = method, f"Return the strings {how} ``width`` characters."
    return fn


@dataclass(frozen=True)
class _StringNamespace:
    """String functions of an expression (``expr.str``), backed by ``pyarrow.compute``."""

    _expr: Expr

    len = _str_fn("utf8_length", "len", "Return the length of each string in characters.")
    length = len
    byte_len = _str_fn("binary_length", "byte_len", "Return the length of each string in bytes.")
    upper = _str_fn("utf8_upper", "upper", "Return the strings upper-cased.")
    lower = _str_fn("utf8_lower", "lower", "Return the strings lower-cased.")
    capitalize = _str_fn("utf8_capitalize", "capitalize", "Return the strings capitalized.")
    title = _str_fn("utf8_title", "title", "Return the strings with each word capitalized.")
    swapcase = _str_fn("utf8_swapcase", "swapcase", "Return the strings with case swapped.")
    reverse = _str_fn("utf8_reverse", "reverse", "Return the strings reversed.")
    is_alpha = _str_fn("utf8_is_alpha", "is_alpha", "Return whether each string is alphabetic.")
    is_alnum = _str_fn("utf8_is_alnum", "is_alnum", "Return whether each string is alphanumeric.")
    is_digit = _str_fn("utf8_is_digit", "is_digit", "Return whether each string is digits.")
    is_decimal = _str_fn("utf8_is_decimal", "is_decimal", "Return whether each is decimal.")
    is_numeric = _str_fn("utf8_is_numeric", "is_numeric", "Return whether each is numeric.")
    is_space = _str_fn("utf8_is_space", "is_space", "Return whether each is whitespace.")
    is_lower = _str_fn("utf8_is_lower", "is_lower", "Return whether each is lower-case.")
    is_upper = _str_fn("utf8_is_upper", "is_upper", "Return whether each is upper-case.")
    is_title = _str_fn("utf8_is_title", "is_title", "Return whether each is title-cased.")
    is_printable = _str_fn("utf8_is_printable", "is_printable", "Return whether printable.")
    is_ascii = _str_fn("string_is_ascii", "is_ascii", "Return whether each string is ASCII.")

    starts_with = _str_pattern_fn("starts_with", "starts_with", "Starts with ``pattern``?")
    ends_with = _str_pattern_fn("ends_with", "ends_with", "Ends with ``pattern``?")
    contains = _str_pattern_fn("match_substring", "contains", "Contains ``pattern``?")
    match = _str_pattern_fn("match_like", "match", "Matches the SQL LIKE ``pattern``?")
    match_regex = _str_pattern_fn("match_substring_regex", "match_regex", "Has a regex match?")
    find = _str_pattern_fn("find_substring", "find", "Index of the first ``pattern``, or -1.")
    find_regex = _str_pattern_fn("find_substring_regex", "find_regex", "Index of a regex match.")
    count = _str_pattern_fn("count_substring", "count", "Occurrences of ``pattern``.")
    count_regex = _str_pattern_fn("count_substring_regex", "count_regex", "Regex matches.")
    split = _str_pattern_fn("split_pattern", "split", "Split on ``pattern`` (list column).")
    split_regex = _str_pattern_fn("split_pattern_regex", "split_regex", "Split on a regex.")
    extract = _str_pattern_fn("extract_regex", "extract", "Named regex groups (struct column).")

    def _f(self, func: str, method: str, *shown: Any, **options: Any) -> Expr:
        return _call(self._expr, func, f"str.{method}({_args_text(*shown)})", **options)

    def split_whitespace(self, **kwargs: Any) -> Expr:
        """Return each string split on whitespace (a list column)."""
        call = f"str.split_whitespace({_args_text(**kwargs)})"
        return _call(self._expr, "utf8_split_whitespace", call, **kwargs)

    def slice(self, start: int = 0, stop: int | None = None, step: int = 1) -> Expr:
        """Return the substrings ``[start:stop:step]`` (in characters)."""
        options = {"start": start, "step": step} if stop is None else \
            {"start": start, "stop": stop, "step": step}
        return self._f("utf8_slice_codeunits", "slice", start, stop, step, **options)

    def replace(self, pattern: str, replacement: str, max_replacements: int | None = None) -> Expr:
        """Return the strings with ``pattern`` replaced by ``replacement``."""
        return self._f("replace_substring", "replace", pattern, replacement, max_replacements,
                       pattern=pattern, replacement=replacement,
                       max_replacements=max_replacements)

    def replace_regex(
        self, pattern: str, replacement: str, max_replacements: int | None = None
    ) -> Expr:
        """Return the strings with matches of the regex ``pattern`` replaced."""
        return self._f("replace_substring_regex", "replace_regex", pattern, replacement,
                       max_replacements, pattern=pattern, replacement=replacement,
                       max_replacements=max_replacements)

    def replace_slice(self, start: int, stop: int, replacement: str) -> Expr:
        """Return the strings with the bytes ``[start:stop]`` replaced by ``replacement``."""
        return self._f("binary_replace_slice", "replace_slice", start, stop, replacement,
                       start=start, stop=stop, replacement=replacement)

    def repeat(self, n: int) -> Expr:
        """Return each string repeated ``n`` times."""
        # ``num_repeats`` is an input of the kernel, not an option, so it is a literal argument.
        return FunctionExpr("binary_repeat", (self._expr, lit(n)), (), f"str.repeat({n!r})")

    strip = _str_trim_fn("utf8_trim", "strip", "leading and trailing")
    lstrip = _str_trim_fn("utf8_ltrim", "lstrip", "leading")
    rstrip = _str_trim_fn("utf8_rtrim", "rstrip", "trailing")
    center = _str_pad_fn("utf8_center", "center", "centered in")
    lpad = _str_pad_fn("utf8_lpad", "lpad", "right-aligned in")
    rpad = _str_pad_fn("utf8_rpad", "rpad", "left-aligned in")

    def pad(self, width: int, fillchar: str = " ", side: str = "right") -> Expr:
        """Return the strings padded to ``width`` on ``side`` ("left", "right" or "both")."""
        funcs = {"left": "utf8_lpad", "right": "utf8_rpad", "both": "utf8_center"}
        if side not in funcs:
            raise ValueError(f"side must be 'left', 'right' or 'both', got {side!r}")
        return self._f(funcs[side], "pad", width, fillchar, side, width=width, padding=fillchar)


def _dt_fn(func: str, doc: str) -> Callable[[_DatetimeNamespace], Expr]:
    def fn(self: _DatetimeNamespace) -> Expr:
        return _call(self._expr, func, f"dt.{func}()")

    fn.__name__, fn.__doc__ = func, doc
    return fn


def _dt_round_fn(how: str, doc: str) -> Callable[..., Expr]:
    def fn(self: _DatetimeNamespace, unit: str) -> Expr:
        """Round to ``unit``: "year", "quarter", "month", "week", "day", "hour"... ."""
        call = f"dt.{how}({unit!r})"
        return _call(self._expr, f"{how}_temporal", call, multiple=1, unit=unit)

    fn.__name__, fn.__doc__ = how, doc
    return fn


@dataclass(frozen=True)
class _DatetimeNamespace:
    """Date and time functions of an expression (``expr.dt``)."""

    _expr: Expr

    year = _dt_fn("year", "Return the year.")
    quarter = _dt_fn("quarter", "Return the quarter (1-4).")
    month = _dt_fn("month", "Return the month (1-12).")
    day = _dt_fn("day", "Return the day of the month.")
    day_of_week = _dt_fn("day_of_week", "Return the day of the week, Monday=0 to Sunday=6.")
    day_of_year = _dt_fn("day_of_year", "Return the day of the year (1-366).")
    hour = _dt_fn("hour", "Return the hour.")
    minute = _dt_fn("minute", "Return the minute.")
    second = _dt_fn("second", "Return the second.")
    millisecond = _dt_fn("millisecond", "Return the millisecond within the second.")
    microsecond = _dt_fn("microsecond", "Return the microsecond within the millisecond.")
    nanosecond = _dt_fn("nanosecond", "Return the nanosecond within the microsecond.")

    def strftime(self, fmt: str) -> Expr:
        """Return the timestamps formatted with the strftime pattern ``fmt``."""
        return _call(self._expr, "strftime", f"dt.strftime({fmt!r})", format=fmt)

    ceil = _dt_round_fn("ceil", "Return the timestamps rounded up to a whole ``unit``.")
    floor = _dt_round_fn("floor", "Return the timestamps rounded down to a whole ``unit``.")
    round = _dt_round_fn("round", "Return the timestamps rounded to the nearest ``unit``.")


# ---------------------------------------------------------------- tree utilities


def _children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, FunctionExpr):
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


def _key(expr: Expr) -> tuple[Any, ...]:
    fields = []
    for f in dataclasses.fields(expr):
        value = getattr(expr, f.name)
        if isinstance(value, Expr):
            value = _key(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], Expr):
            value = tuple(_key(v) for v in value)
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


def _repr(expr: Expr) -> str:
    if isinstance(expr, ColumnExpr):
        return f"col({expr._name!r})"
    if isinstance(expr, LiteralExpr):
        value = list(expr.value) if isinstance(expr.value, tuple) else expr.value
        return f"lit({value!r})"
    if isinstance(expr, AliasExpr):
        return f"{_operand_repr(expr.expr)}.alias({expr.alias_name!r})"
    if isinstance(expr, FunctionExpr):
        return f"{_operand_repr(expr.args[0])}.{expr.call}"
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
    text = _repr(expr)
    prefix_op = isinstance(expr, UnaryExpr) and expr.op not in _METHOD_REPR
    infix_op = isinstance(expr, BinaryExpr) and expr.op not in _METHOD_REPR
    return f"({text})" if prefix_op or infix_op else text


# ---------------------------------------------------------------- evaluation


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
            types = ", ".join(str(a.type) for a in args)
            raise TypeError(f"cannot evaluate {node!r} on values of type ({types}): "
                            f"{exc}{self.context(node)}") from exc
        except ZeroDivisionError as exc:
            raise ZeroDivisionError(f"integer division by zero in {node!r}"
                                    f"{self.context(node)}") from exc
        except (pa.ArrowInvalid, ValueError) as exc:  # e.g. overflow, a lossy cast
            raise ValueError(f"cannot evaluate {node!r}: {exc}{self.context(node)}") from exc

    def context(self, node: Expr) -> str:
        return "" if node is self.root else f" (in expression {self.root!r})"


def _is_string(value: Datum) -> bool:
    return pa.types.is_string(value.type) or pa.types.is_large_string(value.type)


def _add(left: Datum, right: Datum) -> Datum:
    if _is_string(left) or _is_string(right):
        if not (_is_string(left) and _is_string(right)):
            raise TypeError(f"cannot concatenate {left.type} and {right.type}; "
                            "cast() the other operand to string first")
        return pc.binary_join_element_wise(left, right, "")
    return pc.add(left, right)


def _as_float(value: Datum) -> Datum:
    if pa.types.is_integer(value.type) or pa.types.is_null(value.type):
        return value.cast(pa.float64())
    return value


def _true_divide(left: Datum, right: Datum) -> Datum:
    return pc.divide(_as_float(left), _as_float(right))


def _floor_kernel(ufunc: np.ufunc) -> Callable[[Datum, Datum], Datum]:
    """Python's ``//`` or ``%`` via numpy: Arrow has no flooring division kernel."""

    def kernel(left: Datum, right: Datum) -> Datum:
        for value in (left, right):
            t = value.type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
                raise TypeError(f"{ufunc.__name__} needs numbers, got {t}")
        (lvals, lnull), (rvals, rnull) = _numpy_with_mask(left), _numpy_with_mask(right)
        null = lnull | rnull
        if rvals.dtype.kind in "iu":
            if lvals.dtype.kind in "iu" and np.any((rvals == 0) & ~null):
                raise ZeroDivisionError
            rvals = np.where(null, 1, rvals)  # a null divisor must not raise
        with np.errstate(all="ignore"):
            result = ufunc(lvals, rvals)
        if result.ndim == 0:  # scalar op scalar
            return pa.scalar(None if null else result.item(), pa.from_numpy_dtype(result.dtype))
        return pa.array(result, mask=null)

    return kernel


def _numpy_with_mask(value: Datum) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, pa.Scalar):
        if not value.is_valid or pa.types.is_null(value.type):
            return np.asarray(0.0), np.asarray(True)
        return np.asarray(value.as_py(), dtype=value.type.to_pandas_dtype()), np.asarray(False)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if pa.types.is_null(value.type):
        return np.zeros(len(value)), np.ones(len(value), dtype=bool)
    null = value.is_null().to_numpy(zero_copy_only=False)
    filled = pc.fill_null(value, pa.scalar(0, value.type)) if value.null_count else value
    return filled.to_numpy(zero_copy_only=False), null


def _is_in(left: Datum, right: Datum) -> Datum:
    values = pa.array(right.as_py() if isinstance(right, pa.Scalar) else right)
    if pa.types.is_null(values.type):
        values = values.cast(left.type)
    return pc.is_in(left, value_set=values)


_BINARY_KERNELS: dict[Operation, Callable[[Datum, Datum], Datum]] = {
    Operation.ADD: _add,
    Operation.SUB: pc.subtract,
    Operation.MUL: pc.multiply,
    Operation.DIV: _true_divide,
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


# ---------------------------------------------------------------- pyarrow.dataset pushdown


def to_pyarrow(expr: Expr, schema: pa.Schema | None = None) -> pc.Expression:
    """Return the ``pyarrow.compute.Expression`` equal to ``expr`` (for parquet pushdown).

    ``//`` and ``%`` have no Arrow equivalent and raise ``NotImplementedError``; check
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
    if expr.op is Operation.DIV:
        return pc.divide(left.cast(pa.float64()), right.cast(pa.float64()))
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
    """Return whether :func:`to_pyarrow` can translate ``expr`` (no ``//`` or ``%``).

    With ``schema``, also return False when ``expr`` would fail on blocks of that schema (a
    missing column, mismatched types), so that the error is raised by :func:`evaluate`, with
    its message, rather than by the file reader.
    """
    _check_expr(expr)
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
