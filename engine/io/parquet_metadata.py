"""Parquet footers: fetching them in parallel, unifying schemas, pruning row groups.

Everything here runs in the driver while a read is planned and reads only footers, never
data pages.

- :class:`FooterCache` fetches footers on a thread pool (object stores answer many small
  requests in parallel far faster than in sequence) and keeps them for every copy of a
  datasource that pushdown creates. A footer that cannot be read is kept as the error; the
  file then becomes a read task of its own that fails naming it, so ``max_errored_blocks``
  can skip it.
- :func:`unify_file_schemas` merges the files' schemas: a column missing from some files
  reads as nulls there, compatible types are promoted (int32+int64 -> int64,
  int64+double -> double, string+large_string -> large_string, ...), and anything else
  raises :class:`SchemaMismatchError` naming both files and the column.
- :func:`matching_row_groups` keeps the row groups whose statistics (and the file's
  partition values and path) do not rule the predicate out. It hands the footer to
  ``pyarrow.dataset``, which simplifies the predicate against each row group's min/max.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.errors import DatasetReadError
from engine.io.exceptions import SchemaMismatchError
from engine.io.filesystem import FileSystemHandle

logger = logging.getLogger(__name__)
_MAX_FETCH_THREADS = 32
_LOCAL_SERIAL_MAX = 64  # local files fetched one after another up to this many


class Footer:
    """A file's footer: its Arrow schema and Parquet metadata."""

    def __init__(self, schema: pa.Schema, metadata: pq.FileMetaData) -> None:
        self.schema = schema
        self.metadata = metadata


class FooterCache:
    """Footers by path, fetched on demand (in parallel) and kept."""

    def __init__(self, handle: FileSystemHandle, file_kwargs: dict[str, Any]) -> None:
        self._handle = handle
        self._file_kwargs = file_kwargs
        self._footers: dict[str, Footer | DatasetReadError] = {}

    def get(self, paths: list[str]) -> dict[str, Footer | DatasetReadError]:
        """The footer (or the error reading it) of each of ``paths``."""
        missing = [p for p in dict.fromkeys(paths) if p not in self._footers]
        if len(missing) == 1 or (self._handle.is_local and len(missing) <= _LOCAL_SERIAL_MAX):
            # A local footer is a page-cache read (~0.1 ms): starting threads costs more.
            for path in missing:
                self._footers[path] = self._fetch(path)
        elif missing:
            workers = min(_MAX_FETCH_THREADS, len(missing))
            with ThreadPoolExecutor(workers, thread_name_prefix="parquet-footer") as pool:
                for path, footer in zip(missing, pool.map(self._fetch, missing), strict=True):
                    self._footers[path] = footer
        return {p: self._footers[p] for p in paths}

    def _fetch(self, path: str) -> Footer | DatasetReadError:
        display = self._handle.display(path)
        try:
            with self._handle.open_input_file(path) as f:
                parquet_file = pq.ParquetFile(f, **self._file_kwargs)
                return Footer(parquet_file.schema_arrow, parquet_file.metadata)
        except Exception as exc:
            logger.debug("cannot read the footer of %s: %s", display, exc)
            error = DatasetReadError(f"Failed to read Parquet file {display} (footer): "
                                     f"{type(exc).__name__}: {exc}", path=display)
            error.__cause__ = exc
            return error


def unify_file_schemas(schemas: list[tuple[str, pa.Schema]]) -> pa.Schema:
    """Merge ``(file, schema)`` pairs into one schema (columns in first-seen order)."""
    fields: dict[str, pa.Field] = {}
    origin: dict[str, str] = {}
    previous: pa.Schema | None = None
    metadata = schemas[0][1].metadata if schemas else None
    for display, schema in schemas:
        if previous is not None and schema.equals(previous):
            continue
        previous = schema
        for fld in schema:
            known = fields.get(fld.name)
            if known is None:
                fields[fld.name] = fld
                origin[fld.name] = display
            elif known.type != fld.type:
                fields[fld.name] = _promote(known, fld, origin[fld.name], display)
    return pa.schema(list(fields.values()), metadata=metadata)


def _promote(known: pa.Field, new: pa.Field, known_file: str, new_file: str) -> pa.Field:
    try:
        merged = pa.unify_schemas([pa.schema([known]), pa.schema([new])],
                                  promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatchError(
            f"Column {known.name!r} has type {known.type} in {known_file} but {new.type} in "
            f"{new_file}, and the two cannot be unified; pass an explicit schema "
            f"(arrow_parquet_args schema=...) or read the files separately",
            path=new_file) from exc
    return merged.field(0)


def conform(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """Reorder, cast and null-fill ``table``'s columns to ``schema`` (None: unchanged)."""
    if schema is None or table.schema.equals(schema):
        return table
    if len(schema) == 0:
        return table.select([])
    arrays = []
    for fld in schema:
        index = table.schema.get_field_index(fld.name)
        if index < 0:
            arrays.append(pa.nulls(table.num_rows, fld.type))
            continue
        column = table.column(index)
        arrays.append(column if column.type == fld.type else column.cast(fld.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def top_level_columns(metadata: pq.FileMetaData) -> dict[str, list[int]]:
    """Parquet leaf column indices of each top-level column name."""
    out: dict[str, list[int]] = {}
    for i in range(metadata.num_columns):
        name = metadata.schema.column(i).path.split(".", 1)[0]
        out.setdefault(name, []).append(i)
    return out


def row_group_bytes(metadata: pq.FileMetaData, row_group: int,
                    columns: list[str] | None) -> int:
    """Uncompressed bytes of ``columns`` (None: all) in one row group."""
    rg = metadata.row_group(row_group)
    if columns is None:
        return int(rg.total_byte_size)
    leaves = top_level_columns(metadata)
    return sum(rg.column(i).total_uncompressed_size for c in columns for i in leaves.get(c, []))


def matching_row_groups(metadata: pq.FileMetaData, predicate: pc.Expression,
                        schema: pa.Schema, guarantee: pc.Expression | None) -> list[int] | None:
    """Row groups that may hold rows matching ``predicate`` (None: could not tell).

    ``guarantee`` is what holds for every row of the file (its partition values, its path).
    """
    import pyarrow.dataset as pads  # here: it imports pandas, which a plain read never needs

    sink = pa.BufferOutputStream()
    metadata.write_metadata_file(sink)
    fragment = pads.ParquetFileFormat().make_fragment(
        pa.BufferReader(sink.getvalue()),
        partition_expression=guarantee if guarantee is not None else pc.scalar(True))
    try:
        subset = fragment.subset(filter=predicate, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        logger.debug("row-group statistics not usable for %s: %s", predicate, exc)
        return None
    return [rg.id for rg in subset.row_groups]


def matching_partitions(guarantees: list[pc.Expression | None], predicate: pc.Expression,
                        schema: pa.Schema) -> list[int]:
    """Indices of files whose partition values do not rule ``predicate`` out (no I/O)."""
    import pyarrow.dataset as pads
    from pyarrow.fs import LocalFileSystem

    dataset = pads.FileSystemDataset.from_paths(
        [f"/{i}" for i in range(len(guarantees))], schema=schema,
        format=pads.ParquetFileFormat(), filesystem=LocalFileSystem(),
        partitions=[g if g is not None else pc.scalar(True) for g in guarantees])
    return sorted(int(f.path[1:]) for f in dataset.get_fragments(filter=predicate))
