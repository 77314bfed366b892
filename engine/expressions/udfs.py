"""Column UDFs: Python functions and callable classes used inside expressions.

``@udf(return_dtype=DataType.int64())`` turns a function of column arrays into a builder of
:class:`~engine.expressions.core.UDFExpr` nodes: ``add_one(col("id"))`` is an expression,
usable in ``with_column`` and inside larger expressions (``add_one(col("id")) * 2``).

* The function receives the evaluated arguments: a column as a ``pyarrow.ChunkedArray``
  (or Array), a literal as its Python value. It returns one value per row as a
  ``pyarrow.Array``/``ChunkedArray``, ``numpy.ndarray`` or ``pandas.Series``; anything else
  is a ``TypeError``. The values are converted to ``return_dtype`` (a safe cast: the
  declared type is what the column gets).
* A decorated callable class is instantiated with constructor arguments
  (``AddOffset(5)``) but built only where it runs: once per actor, so its state lasts
  across batches. ``Dataset.with_column`` runs expressions holding one on an actor pool.
* ``__call__`` (or the function) may be a coroutine function or an async generator; the
  coroutine is awaited, and of an async generator's yields the last is the value.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.datatype import DataType
from engine.expressions.core import Expr, UDFExpr, _wrap

if TYPE_CHECKING:
    import asyncio


def udf(return_dtype: DataType) -> Callable[[Any], Any]:
    """Return a decorator that makes a function or callable class usable in expressions.

    Example:
        >>> import pyarrow.compute as pc
        >>> @udf(return_dtype=DataType.int64())
        ... def add_one(x):
        ...     return pc.add(x, 1)
        >>> add_one(col("id")) * 2
        add_one(col('id')) * lit(2)
    """
    if not isinstance(return_dtype, DataType):
        raise TypeError(f"udf(return_dtype=...) takes a DataType such as DataType.int64(); "
                        f"got {return_dtype!r}")

    def decorate(fn_or_class: Any) -> Any:
        if inspect.isclass(fn_or_class):
            if not callable(getattr(fn_or_class, "__call__", None)):  # noqa: B004
                raise TypeError(f"udf: the class {fn_or_class.__name__} has no __call__")
            return _udf_class(fn_or_class, return_dtype)
        if not callable(fn_or_class):
            raise TypeError(f"udf decorates a function or a callable class; got "
                            f"{fn_or_class!r}")
        return UdfFunction(fn_or_class, return_dtype)

    return decorate


def pyarrow_udf(return_dtype: DataType) -> Callable[[Any], Any]:
    """Like :func:`udf`; the function receives Arrow arrays (as every UDF here does)."""
    return udf(return_dtype)


class UdfFunction:
    """A decorated function: calling it with expressions builds a ``UDFExpr``."""

    def __init__(self, fn: Callable[..., Any], return_dtype: DataType) -> None:
        self.fn = fn
        self.return_dtype = return_dtype
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> UDFExpr:
        return _udf_expr(self.fn, self.return_dtype, args, kwargs)


def _udf_class(cls: type, return_dtype: DataType) -> type:
    """The class a decorated callable class becomes: instantiating it records the
    constructor arguments (nothing is built on the driver); calling the instance with
    expressions builds a ``UDFExpr``."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self._udf = CallableClassUDF(cls, args, kwargs)

    def __call__(self: Any, *args: Any, **kwargs: Any) -> UDFExpr:
        return _udf_expr(self._udf, return_dtype, args, kwargs)

    namespace = {"__init__": __init__, "__call__": __call__, "__doc__": cls.__doc__,
                 "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                 "udf_class": cls, "return_dtype": return_dtype}
    return type(cls.__name__, (), namespace)


class CallableClassUDF:
    """A callable class with its constructor arguments, built on first use (or by
    :meth:`init` when an actor starts) and kept for the life of the process that holds
    it; pickling drops the instance, so each actor builds its own."""

    def __init__(self, cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.cls = cls
        self.args = args
        self.kwargs = kwargs
        self._instance: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def __name__(self) -> str:
        return self.cls.__name__

    def init(self) -> None:
        """Build the instance (once)."""
        if self._instance is None:
            self._instance = self.cls(*self.args, **self.kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.init()
        method = self._instance.__call__
        if inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method):
            # one loop per instance, so that state bound to a loop survives across batches
            if self._loop is None:
                import asyncio  # here: only async UDFs need it

                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(_awaited(method(*args, **kwargs)))
        return method(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_instance": None, "_loop": None}


def _udf_expr(fn: Any, return_dtype: DataType, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> UDFExpr:
    values = tuple(_wrap(a) for a in args) + tuple(_wrap(v) for v in kwargs.values())
    return UDFExpr(fn, values, tuple(kwargs), return_dtype)


async def _awaited(result: Any) -> Any:
    if inspect.isasyncgen(result):
        last = None
        async for value in result:
            last = value
        return last
    return await result


def class_udfs(expr: Expr) -> list[CallableClassUDF]:
    """Every callable-class UDF in ``expr`` (they need an actor: state across batches)."""
    from engine.expressions.tree import _children

    found = [expr.fn] if isinstance(expr, UDFExpr) and \
        isinstance(expr.fn, CallableClassUDF) else []
    for child in _children(expr):
        found.extend(class_udfs(child))
    return found


def call_udf(node: UDFExpr, args: Any, num_rows: int) -> pa.Array | pa.ChunkedArray:
    """Call ``node``'s function on evaluated ``args`` and return its values as an Arrow
    array of ``num_rows`` values of the declared type."""
    n = len(args) - len(node.kwarg_names)
    kwargs = dict(zip(node.kwarg_names, args[n:], strict=True))
    fn = node.fn
    if not isinstance(fn, CallableClassUDF) and (
            inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
        import asyncio

        result = asyncio.run(_awaited(fn(*args[:n], **kwargs)))
    else:
        result = fn(*args[:n], **kwargs)
    name = getattr(fn, "__name__", type(fn).__name__)
    values = _as_arrow(result, name)
    if len(values) != num_rows:
        raise ValueError(f"UDF {name!r} returned {len(values)} values for a batch of "
                         f"{num_rows} rows; it must return one value per row")
    return _to_declared(values, node.return_dtype, name)


def _as_arrow(result: Any, name: str) -> pa.Array | pa.ChunkedArray:
    if isinstance(result, pa.Array | pa.ChunkedArray):
        return result
    if isinstance(result, np.ndarray):
        if result.ndim > 1:
            from engine.block import numpy_to_column

            return numpy_to_column(result, name)
        return pa.array(result)
    pandas = sys.modules.get("pandas")  # a Series can only come from a loaded pandas
    if pandas is not None and isinstance(result, pandas.Series):
        return pa.Array.from_pandas(result)
    raise TypeError(
        f"UDF {name!r} returned invalid type {type(result).__name__}. Expected type "
        "(pandas.Series, numpy.ndarray, pyarrow.Array, pyarrow.ChunkedArray): one value "
        "per row of the batch")


def _to_declared(values: pa.Array | pa.ChunkedArray, dtype: DataType | None,
                 name: str) -> pa.Array | pa.ChunkedArray:
    if dtype is None or not dtype.is_arrow_type():
        return values
    target = dtype.to_arrow_dtype()
    if values.type == target:
        return values
    try:
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise TypeError(f"UDF {name!r} declared return_dtype {dtype!r} but returned "
                        f"{values.type} values that do not convert to it: {exc}") from exc
