"""Writing JSON Lines files (Ray's ``Dataset.write_json``) through pandas.

As in Ray, rows are written by ``pandas.DataFrame.to_json`` with ``orient="records"`` and
``lines=True`` unless ``pandas_json_args`` say otherwise (dates as epoch milliseconds,
pandas' default; tensor cells as nested lists). With ``lines=True`` blocks stream into the
file one after another; any other layout (e.g. ``lines=False``: one JSON array) is written
once, from all of the file's rows, when the file closes. Names end in ``.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from engine.block import table_to_pandas
from engine.io.file_datasink import FileDatasink, FormatWriter


class JSONDatasink(FileDatasink):
    """Writes blocks as JSON Lines files.

    Args:
        path: The destination directory.
        pandas_json_args_fn: Returns ``to_json`` arguments; called in each write task.
        pandas_json_args: Arguments of ``pandas.DataFrame.to_json``.
        **file_kwargs: See :class:`~engine.io.file_datasink.FileDatasink`.
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 pandas_json_args_fn: Callable[[], dict[str, Any]] | None = None,
                 pandas_json_args: dict[str, Any] | None = None, **file_kwargs: Any) -> None:
        super().__init__(path, file_format="json", **file_kwargs)
        self.pandas_json_args = dict(pandas_json_args or {})
        self.pandas_json_args_fn = pandas_json_args_fn

    def _open_format_writer(self, stream: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        kwargs: dict[str, Any] = {"orient": "records", "lines": True}
        kwargs.update(self.pandas_json_args)
        if self.pandas_json_args_fn is not None:
            kwargs.update(self.pandas_json_args_fn())
        return _JSONFormatWriter(stream, kwargs)


class _JSONFormatWriter:
    def __init__(self, stream: pa.NativeFile, kwargs: dict[str, Any]) -> None:
        self._stream = stream
        self._kwargs = kwargs
        self._streaming = kwargs.get("lines") is True and kwargs.get("orient") == "records"
        self._pending: list[pa.Table] = []

    def write(self, table: pa.Table) -> None:
        if self._streaming:
            self._emit(table)
        else:
            self._pending.append(table)

    def _emit(self, table: pa.Table) -> None:
        text = table_to_pandas(table).to_json(None, **self._kwargs) or ""
        if self._streaming and text and not text.endswith("\n"):
            text += "\n"
        self._stream.write(text.encode("utf-8"))

    def close(self) -> None:
        if self._pending:
            self._emit(pa.concat_tables(self._pending, promote_options="permissive"))
            self._pending = []
