"""Columns of arbitrary Python objects (a leaf module: imports nothing of the engine).

When a column's values have no Arrow type (instances of user classes, ``object()``,
dicts whose nested types disagree from row to row), Ray Data stores them pickled in an
Arrow extension type; so does the engine. :class:`PythonObjectType` is a ``large_binary``
column whose values are cloudpickled objects; reading it back (``to_pylist``, numpy and
pandas batches, rows) unpickles them, so a UDF gets the very objects it returned.

Torch tensors in UDF outputs are converted as Ray converts them: a tensor column becomes
a numpy array, a list of equal-shape tensors (one per row) a tensor column. torch stays an
optional import: a value is recognised as a tensor by its type's module name.
"""

from __future__ import annotations

import contextlib
import pickle
from typing import Any

import numpy as np
import pyarrow as pa

EXTENSION_NAME = "engine.python_object"


class PythonObjectType(pa.ExtensionType):
    """Arrow type of a column of pickled Python objects (Ray's ``ArrowPythonObjectType``)."""

    def __init__(self) -> None:
        super().__init__(pa.large_binary(), EXTENSION_NAME)

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType,
                                  serialized: bytes) -> PythonObjectType:
        return cls()

    def __arrow_ext_class__(self) -> type:
        return PythonObjectArray

    def __arrow_ext_scalar_class__(self) -> type:
        return PythonObjectScalar

    def __reduce__(self) -> tuple[Any, ...]:
        return (PythonObjectType, ())

    def __str__(self) -> str:
        return "python_object"


class PythonObjectScalar(pa.ExtensionScalar):
    """One pickled object; ``as_py`` returns the object."""

    def as_py(self, *args: Any, **kwargs: Any) -> Any:
        data = self.value.as_py() if self.value is not None else None
        return None if data is None else pickle.loads(data)


class PythonObjectArray(pa.ExtensionArray):
    """An array of pickled objects; ``to_numpy`` gives an object ndarray of them."""

    def to_pylist(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [None if v is None else pickle.loads(v)
                for v in self.storage.to_pylist()]

    def to_numpy(self, *args: Any, **kwargs: Any) -> np.ndarray:
        out = np.empty(len(self), dtype=object)
        for i, value in enumerate(self.to_pylist()):
            out[i] = value
        return out


def _register() -> None:
    with contextlib.suppress(pa.ArrowKeyError):  # already registered in this process
        pa.register_extension_type(PythonObjectType())


_register()


def is_object_type(typ: pa.DataType) -> bool:
    """Whether ``typ`` is the pickled-object column type."""
    return isinstance(typ, PythonObjectType)


def objects_to_column(values: Any) -> pa.Array:
    """Store ``values`` (any Python objects; ``None`` stays null) as a pickled-object column."""
    import cloudpickle

    storage = pa.array([None if v is None else cloudpickle.dumps(v) for v in values],
                       type=pa.large_binary())
    return pa.ExtensionArray.from_storage(PythonObjectType(), storage)


def object_column_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An object ndarray of the objects a pickled-object column holds."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out = np.empty(len(column), dtype=object)
    start = 0
    for chunk in chunks:
        for value in chunk.to_pylist():
            out[start] = value  # one by one: numpy would broadcast lists and dicts
            start += 1
    return out


# ---------------------------------------------------------------- torch tensors


def is_torch_tensor(value: Any) -> bool:
    """Whether ``value`` is a ``torch.Tensor`` (without importing torch)."""
    cls = type(value)
    return cls.__module__.startswith("torch") and cls.__name__ in ("Tensor", "Parameter")


def torch_to_numpy(value: Any) -> np.ndarray:
    """A tensor's values as numpy (moved to the CPU and detached first)."""
    return value.detach().cpu().numpy()  # type: ignore[no-any-return]


def untorch(values: Any) -> Any:
    """``values`` with torch tensors turned into numpy: a tensor becomes an ndarray, a list
    of tensors a list of ndarrays; anything else is returned as is."""
    if is_torch_tensor(values):
        return torch_to_numpy(values)
    if isinstance(values, (list, tuple)) and values and is_torch_tensor(values[0]):
        return [torch_to_numpy(v) if is_torch_tensor(v) else v for v in values]
    return values
