"""Whole files as one row each, in a ``bytes`` column (Ray's ``read_binary_files``)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from engine.io.file_datasource import FileBasedDatasource

BYTES_COLUMN = "bytes"
_MAX_BINARY = 2**31 - 1


class BinaryDatasource(FileBasedDatasource):
    """Reads each file into one row (``bytes``, plus ``path`` with ``include_paths``).

    Args:
        paths: Files, directories, globs or URLs.
        **file_kwargs: See :class:`FileBasedDatasource`.
    """

    def _data_schema(self) -> pa.Schema:
        return pa.schema([(BYTES_COLUMN, pa.binary())])

    def _rows_per_file(self) -> int:
        return 1

    def _read_stream(self, stream: pa.NativeFile, path: str,
                     max_bytes: int) -> Iterator[pa.Table]:
        data = stream.read()
        # A single value past 2 GiB needs 64-bit offsets.
        typ = pa.binary() if len(data) < _MAX_BINARY else pa.large_binary()
        yield pa.table({BYTES_COLUMN: pa.array([data], typ)})
