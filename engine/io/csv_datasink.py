"""Writing CSV files (Ray's ``Dataset.write_csv``) with ``pyarrow.csv``.

One file per write task (``{name}.csv``; ``{name}-{i}.csv`` when ``max_rows_per_file``
splits it), a header row written once, blocks streamed as they arrive. ``arrow_csv_args``
(Ray's ``**arrow_csv_args``) may hold ``write_options`` (``pyarrow.csv.WriteOptions``);
``arrow_csv_args_fn`` is called in each task and overrides them. Compress with
``open_stream_args={"compression": "gzip"}``; the names keep the ``.csv`` extension, as in
Ray, so read such files back with ``arrow_open_stream_args={"compression": "gzip"}``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from engine.io.file_datasink import FileDatasink, FormatWriter

_ALLOWED_ARGS = {"write_options", "memory_pool"}


class CSVDatasink(FileDatasink):
    """Writes blocks as CSV files.

    Args:
        path: The destination directory.
        arrow_csv_args_fn: Returns CSV writer arguments; called in each write task.
        arrow_csv_args: ``write_options`` for ``pyarrow.csv.CSVWriter``.
        **file_kwargs: See :class:`~engine.io.file_datasink.FileDatasink` (``filesystem``,
            ``try_create_dir``, ``open_stream_args``, ``filename_provider``,
            ``dataset_uuid``, ``mode``, ``min_rows_per_file``, ``max_rows_per_file``,
            ``partition_cols``).
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 arrow_csv_args_fn: Callable[[], dict[str, Any]] | None = None,
                 arrow_csv_args: dict[str, Any] | None = None, **file_kwargs: Any) -> None:
        args = dict(arrow_csv_args or {})
        unknown = set(args) - _ALLOWED_ARGS
        if unknown:
            raise TypeError(f"unsupported CSV write arguments {sorted(unknown)}; expected "
                            f"{sorted(_ALLOWED_ARGS)}")
        super().__init__(path, file_format="csv", **file_kwargs)
        self.arrow_csv_args = args
        self.arrow_csv_args_fn = arrow_csv_args_fn

    def _open_format_writer(self, stream: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        kwargs = dict(self.arrow_csv_args)
        if self.arrow_csv_args_fn is not None:
            kwargs.update(self.arrow_csv_args_fn())
        # pyarrow's own error ("Unsupported Type:list<item: int64>") names no column.
        nested = [f"{f.name!r} ({f.type})" for f in schema
                  if pa.types.is_nested(f.type) or isinstance(f.type, pa.BaseExtensionType)]
        if nested:
            raise TypeError(f"CSV holds flat values only; cannot write column(s) "
                            f"{', '.join(nested)}: use write_parquet or write_json, or "
                            f"convert them to strings first")
        return pacsv.CSVWriter(stream, schema, **kwargs)
