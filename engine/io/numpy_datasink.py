"""Writing one column as ``.npy`` files (Ray's ``Dataset.write_numpy``).

Each file holds the column's values stacked along a new first axis (a tensor column of
shape ``s`` gives an array of shape ``(rows, *s)``). The ``.npy`` header records the
array's shape, so a file's rows are gathered and written when it closes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa

from engine.block import column_to_numpy
from engine.io.file_datasink import FileDatasink, FormatWriter


class NumpyDatasink(FileDatasink):
    """Writes one column as ``.npy`` files.

    Args:
        path: The destination directory.
        column: The column to write.
        **file_kwargs: See :class:`~engine.io.file_datasink.FileDatasink`.
    """

    def __init__(self, path: str | os.PathLike[str], column: str, **file_kwargs: Any) -> None:
        if not isinstance(column, str):
            raise TypeError(f"column must be a column name, got {column!r}")
        super().__init__(path, file_format="npy", **file_kwargs)
        self.column = column

    def _open_format_writer(self, stream: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        if self.column not in schema.names:
            raise ValueError(f"column {self.column!r} is not among the columns {schema.names}")
        return _NumpyFormatWriter(stream, self.column)


class _NumpyFormatWriter:
    def __init__(self, stream: pa.NativeFile, column: str) -> None:
        self._stream = stream
        self._column = column
        self._parts: list[np.ndarray] = []

    def write(self, table: pa.Table) -> None:
        self._parts.append(column_to_numpy(table.column(self._column)))

    def close(self) -> None:
        array = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
        self._parts = []
        np.save(_StreamWriter(self._stream), array, allow_pickle=False)


class _StreamWriter:
    """The write-only file object ``numpy.save`` needs, over an Arrow stream."""

    def __init__(self, stream: pa.NativeFile) -> None:
        self._stream = stream

    def write(self, data: Any) -> int:
        self._stream.write(data)
        return len(data) if isinstance(data, bytes) else memoryview(data).nbytes
