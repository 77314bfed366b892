"""Writing Parquet files (Ray's ``Dataset.write_parquet``).

File names follow Ray's Parquet writer: ``{name}-{i}.parquet``, where ``{name}`` is the
task's name from the filename provider and ``i`` counts the task's files in a directory.
With ``mode="append"`` a provider's names must contain the write id (Ray's rule: without
it a later append could overwrite earlier files).

``arrow_parquet_args`` (Ray's ``**arrow_parquet_args``) go to ``pyarrow.parquet.
ParquetWriter`` (``compression``, ``compression_level``, ``use_dictionary``, ``version``,
...), except ``row_group_size`` (rows per row group), ``schema`` (the schema files are
written with) and ``partitioning_flavor`` (only ``"hive"``). ``arrow_parquet_args_fn`` is
called in each write task and its result overrides ``arrow_parquet_args``.
``open_stream_args={"compression": ...}`` sets the Parquet compression, as in Ray.
Small blocks are buffered so that row groups hold up to ``row_group_size`` rows (default:
up to ``target_max_block_size`` bytes) rather than one row group per block.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.context import DataContext
from engine.io.file_datasink import FileDatasink, FormatWriter
from engine.io.save_mode import SaveMode


class ParquetDatasink(FileDatasink):
    """Writes blocks as Parquet files.

    Args:
        path: The destination directory.
        partition_cols: Columns whose values become hive ``k=v`` directories.
        arrow_parquet_args_fn: Returns writer arguments; called in each write task.
        arrow_parquet_args: Writer arguments (see the module docstring).
        min_rows_per_file: Blocks are bundled so each task writes at least this many rows.
        max_rows_per_file: A task starts a new file after this many rows.
        min_bytes_per_file: Blocks are bundled so each task writes at least this many bytes
            (``min_bytes_per_write``; not with the row limits, as in Ray).
        filesystem, try_create_dir, open_stream_args, filename_provider, dataset_uuid,
        mode: See :class:`~engine.io.file_datasink.FileDatasink`.
    """

    _ALWAYS_NUMBER_FILES = True

    def __init__(self, path: str | os.PathLike[str], *, partition_cols: list[str] | None = None,
                 arrow_parquet_args_fn: Callable[[], dict[str, Any]] | None = None,
                 arrow_parquet_args: dict[str, Any] | None = None,
                 min_rows_per_file: int | None = None, max_rows_per_file: int | None = None,
                 min_bytes_per_file: int | None = None,
                 filesystem: Any = None, try_create_dir: bool = True,
                 open_stream_args: dict[str, Any] | None = None, filename_provider: Any = None,
                 dataset_uuid: str | None = None,
                 mode: SaveMode | str = SaveMode.APPEND) -> None:
        args = dict(arrow_parquet_args or {})
        stream_args = dict(open_stream_args or {})
        if "compression" in stream_args:
            args["compression"] = stream_args.pop("compression")
        if min_bytes_per_file is not None:
            if not isinstance(min_bytes_per_file, int) or min_bytes_per_file <= 0:
                raise ValueError(f"min_bytes_per_file must be a positive integer, got "
                                 f"{min_bytes_per_file!r}")
            if min_rows_per_file is not None or max_rows_per_file is not None:
                raise ValueError("min_bytes_per_file cannot be combined with "
                                 "min_rows_per_file or max_rows_per_file")
        flavor = args.pop("partitioning_flavor", "hive")
        if flavor != "hive":
            raise ValueError(f"partitioning_flavor must be 'hive', got {flavor!r}")
        super().__init__(path, file_format="parquet", filesystem=filesystem,
                         try_create_dir=try_create_dir, open_stream_args=stream_args,
                         filename_provider=filename_provider, dataset_uuid=dataset_uuid,
                         mode=mode, min_rows_per_file=min_rows_per_file,
                         max_rows_per_file=max_rows_per_file, partition_cols=partition_cols)
        self.arrow_parquet_args = args
        self.arrow_parquet_args_fn = arrow_parquet_args_fn
        self.min_bytes_per_file = min_bytes_per_file

    @property
    def min_bytes_per_write(self) -> int | None:
        """Blocks are bundled so each write task receives at least this many bytes."""
        return self.min_bytes_per_file

    def _check_filename(self, filename: str, write_uuid: str) -> None:
        if self.mode == SaveMode.APPEND and write_uuid not in filename:
            raise ValueError(
                f"file name {filename!r} from the filename provider does not contain the "
                f"write id {write_uuid!r}; with mode='append' a later write could overwrite "
                f"these files. Include write_uuid in the name or use mode='overwrite'")

    def _stream_compression(self) -> str | None:
        return None  # Parquet compresses pages itself

    def _open_format_writer(self, stream: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        kwargs = dict(self.arrow_parquet_args)
        if self.arrow_parquet_args_fn is not None:
            kwargs.update(self.arrow_parquet_args_fn())
        kwargs.pop("partitioning_flavor", None)
        user_schema = kwargs.pop("schema", None)
        row_group_size = kwargs.pop("row_group_size", None)
        return _ParquetFormatWriter(stream, user_schema or schema, kwargs, row_group_size)


class _ParquetFormatWriter:
    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, kwargs: dict[str, Any],
                 row_group_size: int | None) -> None:
        self._writer = pq.ParquetWriter(stream, schema, **kwargs)
        self._schema = schema
        self._row_group_size = row_group_size
        self._max_bytes = DataContext.get_current().max_block_bytes()
        self._pending: list[pa.Table] = []
        self._rows = 0
        self._bytes = 0

    def write(self, table: pa.Table) -> None:
        if not table.schema.equals(self._schema):
            table = table.select(self._schema.names).cast(self._schema)
        self._pending.append(table)
        self._rows += table.num_rows
        self._bytes += table.nbytes
        full = (self._rows >= self._row_group_size if self._row_group_size
                else self._bytes >= self._max_bytes)
        if full:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.concat_tables(self._pending)
            self._pending, self._rows, self._bytes = [], 0, 0
            self._writer.write_table(table, row_group_size=self._row_group_size)

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def abandon(self) -> None:
        self._pending = []
        with contextlib.suppress(Exception):
            self._writer.close()
        self._writer.is_open = False  # or its __del__ tries to finish the file again
