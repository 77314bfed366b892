"""``.npy`` files as rows of a ``data`` column (Ray's ``read_numpy``).

Each entry along the first axis is a row: a 1-d file gives scalars, an n-d file gives
tensors of shape ``shape[1:]`` (Arrow's fixed-shape tensor type). Plain-dtype, C-ordered
files are streamed a slice of rows at a time straight from the header's layout; anything
else (object dtype, Fortran order, ``numpy_load_args``) goes through ``numpy.load``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from engine.block import numpy_to_column
from engine.io.file_datasource import FileBasedDatasource

DATA_COLUMN = "data"


class NumpyDatasource(FileBasedDatasource):
    """Reads ``.npy`` files.

    Args:
        paths: Files, directories, globs or URLs.
        allow_pickle: Allow object arrays (unpickles file contents: trusted files only).
        numpy_load_args: Extra arguments for ``numpy.load``.
        **file_kwargs: See :class:`FileBasedDatasource`.
    """

    def __init__(self, paths: str | list[str], *, allow_pickle: bool = False,
                 numpy_load_args: dict[str, Any] | None = None, **file_kwargs: Any) -> None:
        file_kwargs.setdefault("file_extensions", ["npy"])
        super().__init__(paths, **file_kwargs)
        self._allow_pickle = allow_pickle
        self._load_args = dict(numpy_load_args or {})

    def _read_stream(self, stream: pa.NativeFile, path: str,
                     max_bytes: int) -> Iterator[pa.Table]:
        if self._load_args:
            yield from self._read_with_load(stream.read())
            return
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        if dtype.hasobject or fortran or len(shape) == 0:
            yield from self._read_with_load(_reassemble(version, shape, fortran, dtype,
                                                        stream.read()))
            return
        row_items = math.prod(shape[1:])
        row_bytes = max(1, row_items * dtype.itemsize)
        rows_per_chunk = max(1, max_bytes // row_bytes)
        remaining = shape[0]
        while remaining > 0:
            n = min(rows_per_chunk, remaining)
            data = stream.read(n * row_bytes)
            if len(data) != n * row_bytes:
                raise ValueError(f"file is truncated: expected {shape[0]} rows of "
                                 f"{row_bytes} bytes")
            array = np.frombuffer(data, dtype=dtype, count=n * row_items)
            yield _table(array.reshape((n, *shape[1:])))
            remaining -= n

    def _read_with_load(self, data: bytes) -> Iterator[pa.Table]:
        array = np.load(io.BytesIO(data), allow_pickle=self._allow_pickle, **self._load_args)
        if array.ndim == 0:
            array = array.reshape(1)
        yield _table(array)


def _reassemble(version: tuple[int, int], shape: tuple[int, ...], fortran: bool,
                dtype: np.dtype, body: bytes) -> bytes:
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran,
              "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue() + body


def _table(array: np.ndarray) -> pa.Table:
    return pa.table({DATA_COLUMN: numpy_to_column(array, DATA_COLUMN)})
