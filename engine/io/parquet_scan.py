"""The worker side of a Parquet read: what one read task does with its pieces.

A :class:`ParquetScan` holds what every task of one read shares (filesystem, schemas,
pushed-down columns and predicate, partition columns); a :class:`ParquetRead` is one task:
a scan and the pieces (files and their row groups) it reads. Each row group is read in
batches sized to ``target_max_block_size``, conformed to the read's unified schema,
given its partition and ``path`` columns, filtered exactly by the predicate and cut down
to the output columns. A failure names the file and the row group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.block import empty_table_like
from engine.errors import DatasetReadError
from engine.io.block_output import BlockOutputBuffer, append_constant_columns
from engine.io.file_datasource import PATH_COLUMN, FileInfo, wrap_read_error
from engine.io.filesystem import FileSystemHandle
from engine.io.parquet_metadata import conform


@dataclass
class ParquetPiece:
    """What one read task reads of one file."""

    file: FileInfo
    row_groups: list[int] | None  # None: every row group (footer unknown at planning)
    metadata: pq.FileMetaData | None


@dataclass
class ParquetScan:
    """How every read task of one read reads (picklable, shared by its tasks)."""

    fs: FileSystemHandle
    read_schema: pa.Schema | None
    output_names: list[str] | None
    predicate: pc.Expression | None
    partition_fields: pa.Schema
    include_paths: bool
    batch_size: int | None
    file_kwargs: dict[str, Any]
    scan_kwargs: dict[str, Any]
    tensor_columns: dict[str, tuple[Any, tuple[int, ...]]]
    max_bytes: int
    min_bytes: int = 1 << 20

    def read(self, pieces: list[ParquetPiece]) -> Iterator[pa.Table]:
        out = BlockOutputBuffer(self.max_bytes, self.min_bytes)
        for piece in pieces:
            display = self.fs.display(piece.file.path)
            where = "footer"
            try:
                with self.fs.open_input_file(piece.file.path) as f:
                    pf = pq.ParquetFile(f, metadata=piece.metadata, **self.file_kwargs)
                    names = set(pf.schema_arrow.names)
                    columns = ([c for c in self.read_schema.names if c in names]
                               if self.read_schema is not None else None)
                    groups = (piece.row_groups if piece.row_groups is not None
                              else range(pf.num_row_groups))
                    for rg in groups:
                        where = f"row group {rg}"
                        for batch in pf.iter_batches(batch_size=self._batch_rows(pf, rg),
                                                     row_groups=[rg], columns=columns,
                                                     **self.scan_kwargs):
                            table = self._finish(pa.Table.from_batches([batch]), piece.file)
                            del batch  # neither held while the next batch is decoded
                            yield from out.add(table)
                            del table
            except Exception as exc:
                raise wrap_read_error(exc, display, where) from exc
        yield from out.finish()

    def _batch_rows(self, pf: pq.ParquetFile, rg: int) -> int:
        if self.batch_size:
            return int(self.batch_size)
        meta = pf.metadata.row_group(rg)
        per_row = max(1.0, meta.total_byte_size / max(1, meta.num_rows))
        return max(1, min(meta.num_rows or 1, int(self.max_bytes / per_row)))

    def _finish(self, table: pa.Table, info: FileInfo) -> pa.Table:
        table = conform(table, self.read_schema)
        values: list[tuple[pa.Field, Any]] = list(zip(self.partition_fields,
                                                      info.partition_values, strict=True))
        if self.include_paths:
            values.append((pa.field(PATH_COLUMN, pa.string()), info.path))
        table = append_constant_columns(table, values)
        if self.predicate is not None:
            table = table.filter(self.predicate)
        if self.output_names is not None:
            table = table.select(self.output_names)
        for name, (dtype, shape) in self.tensor_columns.items():
            if name in table.column_names:
                index = table.schema.get_field_index(name)
                table = table.set_column(index, name, bytes_to_tensor(table.column(index),
                                                                      dtype, shape))
        return table


def bytes_to_tensor(column: pa.ChunkedArray, dtype: Any, shape: tuple[int, ...]) -> pa.Array:
    """Decode a binary column of raw tensor bytes into a fixed-shape tensor column."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_large_binary(array.type):
        offsets_type: Any = np.int64
    elif pa.types.is_binary(array.type):
        offsets_type = np.int32
    else:
        raise DatasetReadError(f"tensor_column_schema: column has type {array.type}, "
                               f"expected binary")
    offsets = np.frombuffer(array.buffers()[1], dtype=offsets_type)[
        array.offset:array.offset + len(array) + 1]
    values = np.frombuffer(array.buffers()[2] or b"", dtype=np.uint8)[offsets[0]:offsets[-1]]
    tensors = values.view(np.dtype(dtype)).reshape((len(array), *shape))
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(tensors))


class ParquetRead:
    """The picklable body of a Parquet read task."""

    def __init__(self, scan: ParquetScan, pieces: list[ParquetPiece]) -> None:
        self.scan = scan
        self.pieces = pieces

    def __call__(self) -> Iterator[pa.Table]:
        return self.scan.read(self.pieces)


class EmptyRead:
    """A read task that yields one empty block with the read's schema."""

    def __init__(self, schema: pa.Schema | None) -> None:
        self.schema = schema

    def __call__(self) -> Iterator[pa.Table]:
        if self.schema is not None:
            yield empty_table_like(self.schema)
