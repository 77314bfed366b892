"""Data types of columns and expressions (``ray.data.datatype``; a leaf module).

A :class:`DataType` wraps one of three kinds of type: an Arrow type (``DataType.int64()``,
``DataType.from_arrow(pa.timestamp("s"))``), a numpy dtype (``DataType.from_numpy("f4")``)
or a Python type (``DataType(int)``). Expressions use it to declare what a UDF returns
(``udf(return_dtype=DataType.int32())``) and what ``cast()`` converts to.

A Python-type data type names no Arrow type by itself: :meth:`DataType.to_arrow_dtype`
then infers one from sample values, so it cannot serve as a cast target.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa


class TypeCategory(str, enum.Enum):
    """Families of types, for :meth:`DataType.is_of`."""

    LIST = "list"
    LARGE_LIST = "large_list"
    STRUCT = "struct"
    MAP = "map"
    TENSOR = "tensor"
    TEMPORAL = "temporal"


def _factory(arrow_type: Callable[[], pa.DataType], name: str, what: str) -> classmethod:
    def make(cls: type[DataType]) -> DataType:
        return cls.from_arrow(arrow_type())

    make.__name__, make.__qualname__ = name, f"DataType.{name}"
    make.__doc__ = f"Return the data type of {what} (Arrow ``{name}``)."
    return classmethod(make)


class DataType:
    """A column's data type: an Arrow type, a numpy dtype or a Python type.

    Example:
        >>> DataType.int64()
        DataType(arrow:int64)
        >>> DataType.from_numpy("float32")
        DataType(numpy:float32)
        >>> DataType(str)
        DataType(python:str)
    """

    __slots__ = ("_physical_dtype",)
    _physical_dtype: Any  # a pyarrow.DataType, a numpy dtype or a Python type

    int8 = _factory(pa.int8, "int8", "8-bit signed integers")
    int16 = _factory(pa.int16, "int16", "16-bit signed integers")
    int32 = _factory(pa.int32, "int32", "32-bit signed integers")
    int64 = _factory(pa.int64, "int64", "64-bit signed integers")
    uint8 = _factory(pa.uint8, "uint8", "8-bit unsigned integers")
    uint16 = _factory(pa.uint16, "uint16", "16-bit unsigned integers")
    uint32 = _factory(pa.uint32, "uint32", "32-bit unsigned integers")
    uint64 = _factory(pa.uint64, "uint64", "64-bit unsigned integers")
    float32 = _factory(pa.float32, "float32", "32-bit floats")
    float64 = _factory(pa.float64, "float64", "64-bit floats")
    string = _factory(pa.string, "string", "UTF-8 strings")
    bool = _factory(pa.bool_, "bool", "booleans")
    binary = _factory(pa.binary, "binary", "variable-length bytes")

    def __init__(self, _physical_dtype: pa.DataType | np.dtype | type) -> None:
        if not isinstance(_physical_dtype, pa.DataType | np.dtype | type):
            raise TypeError(
                "DataType takes a pyarrow.DataType, a numpy dtype or a Python type; got "
                f"{_physical_dtype!r} of type {type(_physical_dtype).__name__}")
        self._physical_dtype = _physical_dtype

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_arrow(cls, arrow_type: pa.DataType) -> DataType:
        """Return the data type wrapping the Arrow type ``arrow_type``."""
        if not isinstance(arrow_type, pa.DataType):
            raise TypeError(f"from_arrow takes a pyarrow.DataType; got {arrow_type!r}")
        return cls(arrow_type)

    @classmethod
    def from_numpy(cls, numpy_dtype: np.dtype | str | type) -> DataType:
        """Return the data type wrapping the numpy dtype ``numpy_dtype`` (or its name)."""
        return cls(np.dtype(numpy_dtype))

    @classmethod
    def infer_dtype(cls, value: Any) -> DataType:
        """Return the data type of ``value``: numpy's for numpy values, else Arrow's, else
        the Python type."""
        if isinstance(value, np.ndarray | np.generic):
            return cls.from_numpy(value.dtype)
        try:
            return cls.from_arrow(pa.array([value]).type)
        except (pa.ArrowException, TypeError, ValueError):
            return cls(type(value))

    @classmethod
    def list(cls, value_type: DataType) -> DataType:
        """Return the type of variable-length lists of ``value_type``."""
        return cls.from_arrow(pa.list_(_arrow_of(value_type, "list")))

    @classmethod
    def large_list(cls, value_type: DataType) -> DataType:
        """Return the type of lists of ``value_type`` with 64-bit offsets."""
        return cls.from_arrow(pa.large_list(_arrow_of(value_type, "large_list")))

    @classmethod
    def fixed_size_list(cls, value_type: DataType, list_size: int) -> DataType:
        """Return the type of lists of exactly ``list_size`` values of ``value_type``."""
        return cls.from_arrow(pa.list_(_arrow_of(value_type, "fixed_size_list"), list_size))

    @classmethod
    def struct(cls, fields: Sequence[tuple[str, DataType]]) -> DataType:
        """Return the type of structs with the ``(name, type)`` fields ``fields``."""
        return cls.from_arrow(pa.struct([(n, _arrow_of(t, "struct")) for n, t in fields]))

    @classmethod
    def map(cls, key_type: DataType, value_type: DataType) -> DataType:
        """Return the type of maps from ``key_type`` to ``value_type``."""
        return cls.from_arrow(pa.map_(_arrow_of(key_type, "map"), _arrow_of(value_type, "map")))

    # -- inspection --------------------------------------------------------------------
    def is_arrow_type(self) -> builtins.bool:
        """Return whether this wraps an Arrow type."""
        return isinstance(self._physical_dtype, pa.DataType)

    def is_numpy_type(self) -> builtins.bool:
        """Return whether this wraps a numpy dtype."""
        return isinstance(self._physical_dtype, np.dtype)

    def is_python_type(self) -> builtins.bool:
        """Return whether this wraps a Python type."""
        return isinstance(self._physical_dtype, type)

    def is_of(self, category: TypeCategory | str) -> builtins.bool:
        """Return whether this type belongs to ``category`` (a :class:`TypeCategory`)."""
        try:
            category = TypeCategory(category)
        except ValueError:
            return False
        if not self.is_arrow_type():
            return False
        t = self._physical_dtype
        return {
            TypeCategory.LIST: pa.types.is_list(t) or pa.types.is_fixed_size_list(t),
            TypeCategory.LARGE_LIST: pa.types.is_large_list(t),
            TypeCategory.STRUCT: pa.types.is_struct(t),
            TypeCategory.MAP: pa.types.is_map(t),
            TypeCategory.TENSOR: isinstance(t, pa.ExtensionType) and "tensor" in str(t),
            TypeCategory.TEMPORAL: pa.types.is_temporal(t),
        }[category]

    def is_list_type(self) -> builtins.bool:
        """Return whether this is an Arrow list type (variable, large or fixed size)."""
        t = self._physical_dtype
        return self.is_arrow_type() and (pa.types.is_list(t) or pa.types.is_large_list(t)
                                         or pa.types.is_fixed_size_list(t))

    def is_struct_type(self) -> builtins.bool:
        """Return whether this is an Arrow struct type."""
        return self.is_arrow_type() and pa.types.is_struct(self._physical_dtype)

    def is_map_type(self) -> builtins.bool:
        """Return whether this is an Arrow map type."""
        return self.is_arrow_type() and pa.types.is_map(self._physical_dtype)

    def is_nested_type(self) -> builtins.bool:
        """Return whether this is a list, struct or map type."""
        return self.is_list_type() or self.is_struct_type() or self.is_map_type()

    def is_numerical_type(self) -> builtins.bool:
        """Return whether this is an integer, floating or decimal type."""
        if self.is_arrow_type():
            t = self._physical_dtype
            return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        if self.is_numpy_type():
            return self._physical_dtype.kind in "iuf"
        return self._physical_dtype in (int, float)

    def is_string_type(self) -> builtins.bool:
        """Return whether this is a string type."""
        if self.is_arrow_type():
            t = self._physical_dtype
            return pa.types.is_string(t) or pa.types.is_large_string(t)
        if self.is_numpy_type():
            return self._physical_dtype.kind == "U"
        return self._physical_dtype is str

    def is_temporal_type(self) -> builtins.bool:
        """Return whether this is a date, time, timestamp or duration type."""
        if self.is_arrow_type():
            return pa.types.is_temporal(self._physical_dtype)
        if self.is_numpy_type():
            return self._physical_dtype.kind in "mM"
        return False

    # -- conversion --------------------------------------------------------------------
    def to_arrow_dtype(self, values: Sequence[Any] | None = None) -> pa.DataType:
        """Return the Arrow type; a Python type needs sample ``values`` to infer it from."""
        if self.is_arrow_type():
            return self._physical_dtype
        if self.is_numpy_type():
            return pa.from_numpy_dtype(self._physical_dtype)
        if not values:
            raise ValueError(f"{self!r} is a Python type: to_arrow_dtype() needs sample "
                             "values to infer the Arrow type from")
        return pa.array(list(values)).type

    def to_numpy_dtype(self) -> np.dtype:
        """Return the numpy dtype (``object`` where numpy has no equivalent)."""
        if self.is_numpy_type():
            return self._physical_dtype
        if self.is_arrow_type():
            try:
                dtype = self._physical_dtype.to_pandas_dtype()
            except (NotImplementedError, TypeError, pa.ArrowException):
                return np.dtype(object)
            if isinstance(dtype, type) and issubclass(dtype, np.generic):
                return np.dtype(dtype)  # Arrow answers with numpy scalar types
            return dtype if isinstance(dtype, np.dtype) else np.dtype(object)
        return np.dtype(object)

    def to_python_type(self) -> type:
        """Return the wrapped Python type; ``ValueError`` if this wraps another kind."""
        if not self.is_python_type():
            raise ValueError(f"{self!r} is not backed by a Python type; use "
                             "to_arrow_dtype() or to_numpy_dtype()")
        return self._physical_dtype

    # -- value semantics ---------------------------------------------------------------
    def __repr__(self) -> str:
        t = self._physical_dtype
        if self.is_arrow_type():
            return f"DataType(arrow:{t})"
        if self.is_numpy_type():
            return f"DataType(numpy:{t})"
        return f"DataType(python:{t.__name__})"

    def __eq__(self, other: object) -> builtins.bool:
        if not isinstance(other, DataType):
            return False
        mine, theirs = self._physical_dtype, other._physical_dtype
        # int64 as Arrow and as numpy are different data types
        return type(mine) is type(theirs) and mine == theirs

    def __hash__(self) -> int:
        return hash((type(self._physical_dtype), self._physical_dtype))

    def __reduce__(self) -> tuple[Any, ...]:
        return (DataType, (self._physical_dtype,))


def _arrow_of(value_type: Any, what: str) -> pa.DataType:
    if isinstance(value_type, DataType):
        return value_type.to_arrow_dtype()
    if isinstance(value_type, pa.DataType):
        return value_type
    raise TypeError(f"DataType.{what} takes DataType arguments; got {value_type!r}")
