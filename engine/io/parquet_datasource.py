"""Parquet files (Ray's ``read_parquet``), with projection and predicate pushdown.

Planning reads footers only (in parallel, see :mod:`engine.io.parquet_metadata`): the
schema, exact row counts and each row group's size and statistics. Read tasks are cut from
row groups: small files are combined into one task and big files are split between tasks
at row-group boundaries, in file order, to about equal uncompressed bytes each.

Pushdown:

- ``apply_projection(columns)`` reads only those columns' pages.
- ``apply_predicate(expr)`` first drops whole files whose hive partition values rule the
  predicate out (before their footers are even fetched, when the predicate reads only
  partition columns), then skips row groups whose min/max statistics rule it out, then
  filters the remaining rows exactly. The columns the predicate needs are read even when
  they are not projected, and dropped afterwards.

Output columns: the unified data columns, then partition keys (strings unless
``Partitioning(field_types=...)``), then ``path`` with ``include_paths``, or exactly
``columns`` in their order.

``arrow_parquet_args`` (Ray's ``**arrow_parquet_args``) may hold ``filter`` (an
expression, pushed down like a predicate), ``schema`` (the schema to read files as, instead
of unifying theirs), ``batch_size`` (rows per read batch), ``use_threads`` (default
``False``: a task per core decodes on its own thread),
``use_pandas_metadata``, and the options of ``pyarrow.parquet.ParquetFile``
(``buffer_size``, ``pre_buffer``, ``read_dictionary``, ``decryption_properties``, ...).
Anything else raises ``TypeError``.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.block import BlockMetadata
from engine.context import DataContext
from engine.io.file_datasource import (
    PATH_COLUMN,
    FileBasedDatasource,
    FileInfo,
    group_contiguous,
    plan_task_count,
    shuffle_in_place,
)
from engine.io.interfaces import Datasource, ReadTask
from engine.io.parquet_metadata import (
    Footer,
    FooterCache,
    matching_partitions,
    matching_row_groups,
    top_level_columns,
    unify_file_schemas,
)
from engine.io.parquet_scan import EmptyRead, ParquetPiece, ParquetRead, ParquetScan
from engine.io.partitioning import Partitioning, partition_expression
from engine.io.predicates import check_predicate, combine, referenced_columns

_FILE_ARGS = set(inspect.signature(pq.ParquetFile.__init__).parameters) - {
    "self", "source", "metadata", "common_metadata", "filesystem"}
_SCAN_ARGS = {"use_threads", "use_pandas_metadata"}


@dataclass
class _Unit:
    """An indivisible piece of work: one row group (or a whole file of unknown layout)."""

    file: FileInfo
    row_group: int | None
    size: int
    rows: int | None
    footer: Footer | None


class ParquetDatasource(FileBasedDatasource):
    """Reads Parquet files.

    Args:
        paths: Files, directories, globs or URLs.
        columns: The columns to read (data, partition or ``path`` columns), in order.
        tensor_column_schema: ``{column: (numpy dtype, shape)}``: decode binary columns
            holding raw tensor bytes into fixed-shape tensors.
        arrow_parquet_args: See the module docstring.
        **file_kwargs: See :class:`FileBasedDatasource`; ``file_extensions`` defaults to
            ``["parquet"]`` and ``partitioning`` to ``Partitioning("hive")``, as in Ray.
    """

    def __init__(self, paths: str | list[str], *, columns: list[str] | None = None,
                 tensor_column_schema: dict[str, tuple[Any, tuple[int, ...]]] | None = None,
                 arrow_parquet_args: dict[str, Any] | None = None, **file_kwargs: Any) -> None:
        file_kwargs.setdefault("file_extensions", ["parquet"])
        file_kwargs.setdefault("partitioning", Partitioning("hive"))
        args = dict(arrow_parquet_args or {})
        predicate = args.pop("filter", None)
        self._explicit_schema: pa.Schema | None = args.pop("schema", None)
        self._batch_size: int | None = args.pop("batch_size", None)
        self._file_kwargs = {k: args.pop(k) for k in list(args) if k in _FILE_ARGS}
        # Each read task decodes its columns on its own thread unless told otherwise: the
        # engine already runs a task per core, so Arrow's pool would only add a hand-off
        # per batch (and, in the driver, two threads touching every fresh buffer).
        self._scan_kwargs = {"use_threads": False,
                             **{k: args.pop(k) for k in list(args) if k in _SCAN_ARGS}}
        if args:
            raise TypeError(f"unsupported arrow_parquet_args {sorted(args)}")
        super().__init__(paths, **file_kwargs)
        self._columns = list(columns) if columns is not None else None
        if self._columns is not None and self._include_paths and \
                PATH_COLUMN not in self._columns:
            self._columns.append(PATH_COLUMN)  # Ray adds it after `columns`
        self._predicate = check_predicate(predicate) if predicate is not None else None
        self._tensor_columns = dict(tensor_column_schema or {})
        self._footers = FooterCache(self._fs, self._file_kwargs)
        self._units: list[_Unit] | None = None
        self._schema_cache: tuple[Any, ...] | None = None
        self._candidates: list[FileInfo] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_footers"] = None
        state["_units"] = None
        state["_schema_cache"] = None
        state["_candidates"] = None
        return state

    # -- pushdown -----------------------------------------------------------------------
    def supports_projection_pushdown(self) -> bool:
        return True

    def apply_projection(self, columns: list[str]) -> Datasource:
        if self._columns is not None:
            unknown = [c for c in columns if c not in self._columns]
            if unknown:
                raise ValueError(f"cannot project {unknown}: this read only has columns "
                                 f"{self._columns}")
        new = copy.copy(self)
        new._columns = list(columns)
        new._units = new._schema_cache = None
        return new

    def supports_predicate_pushdown(self) -> bool:
        return True

    def apply_predicate(self, predicate: Any) -> Datasource:
        new = copy.copy(self)
        new._predicate = combine(self._predicate, check_predicate(predicate))
        new._units = new._schema_cache = new._candidates = None
        return new

    def pushdown_description(self) -> str:
        parts = []
        if self._columns is not None:
            parts.append(f"columns={self._columns}")
        if self._predicate is not None:
            parts.append(f"filter={self._predicate}")
        return ", ".join(parts)

    # -- schemas ------------------------------------------------------------------------
    def _pruning_schema(self) -> pa.Schema:
        """Partition keys and ``path``: what is known of a file before its footer."""
        fields = list(self._partition_fields)
        if self._include_paths:
            fields.append(pa.field(PATH_COLUMN, pa.string()))
        return pa.schema(fields)

    def _guarantee(self, info: FileInfo) -> pc.Expression | None:
        values = dict(zip(self._partition_fields.names, info.partition_values, strict=True))
        expr = partition_expression(values, self._partition_fields) if values else None
        if self._include_paths:
            expr = combine(expr, pc.field(PATH_COLUMN) == info.path)
        return expr

    def _candidate_files(self) -> list[FileInfo]:
        """Files whose partition values do not rule the predicate out (no I/O)."""
        if self._candidates is None:
            self._candidates = self._prune_partitions()
        return self._candidates

    def _prune_partitions(self) -> list[FileInfo]:
        files = self._files
        if self._predicate is None or not len(self._pruning_schema()):
            return files
        try:
            refs = referenced_columns(self._predicate, self._pruning_schema())
        except ValueError:  # reads data columns too: pruned with statistics later
            return files
        if refs is None:
            return files
        keep = matching_partitions([self._guarantee(f) for f in files], self._predicate,
                                   self._pruning_schema())
        return [files[i] for i in keep]

    def _data_schema_of(self, files: list[FileInfo]) -> pa.Schema | None:
        if self._explicit_schema is not None:
            return self._explicit_schema
        footers = self._footers.get([f.path for f in files])
        known = [(self._fs.display(p), f.schema) for p, f in footers.items()
                 if isinstance(f, Footer)]
        return unify_file_schemas(known) if known else None

    def _full_schema(self, data: pa.Schema) -> pa.Schema:
        return pa.schema(list(data) + self._extra_fields(data.names))

    def _output_schema(self, full: pa.Schema) -> pa.Schema:
        if self._columns is None:
            out = full
        else:
            missing = [c for c in self._columns if c not in full.names]
            if missing:
                raise ValueError(f"columns {missing} not found in {self._describe_paths()}; "
                                 f"available columns: {full.names}")
            out = pa.schema([full.field(c) for c in self._columns])
        for name, (dtype, shape) in self._tensor_columns.items():
            if name in out.names:
                typ = pa.fixed_shape_tensor(pa.from_numpy_dtype(np.dtype(dtype)), list(shape))
                out = out.set(out.get_field_index(name), pa.field(name, typ))
        return out

    def _describe_paths(self) -> str:
        shown = self.input_files()[:3]
        return ", ".join(shown) + (", ..." if len(self._files) > 3 else "")

    def _schemas(self) -> tuple[pa.Schema, pa.Schema, pa.Schema] | None:
        """(data, full, output) schemas of the files this read may touch."""
        if self._schema_cache is None:
            self._schema_cache = (self._compute_schemas(),)
        return self._schema_cache[0]  # type: ignore[no-any-return]

    def _compute_schemas(self) -> tuple[pa.Schema, pa.Schema, pa.Schema] | None:
        candidates = self._candidate_files()
        data = self._data_schema_of(candidates) if candidates else None
        if data is None:  # every file pruned (or unreadable): the schema is still the read's
            data = self._data_schema_of(self._files)
        if data is None:
            return None
        full = self._full_schema(data)
        if self._columns is not None and any(c not in full.names for c in self._columns):
            # A pruned file may be the one holding a requested column.
            data = self._data_schema_of(self._files) or data
            full = self._full_schema(data)
        if self._predicate is not None:
            _check_predicate_types(self._predicate, full)
        return data, full, self._output_schema(full)

    def schema(self) -> pa.Schema | None:
        schemas = self._schemas()
        return None if schemas is None else schemas[2]

    def schema_of(self, columns: set[str]) -> pa.Schema | None:
        pruning = self._pruning_schema()
        if columns and columns <= set(pruning.names):
            return pruning  # known from the paths: no footer is fetched to plan the filter
        return self.schema()

    # -- planning -----------------------------------------------------------------------
    def _read_columns(self, data: pa.Schema, output: pa.Schema, full: pa.Schema) -> list[str]:
        """Data columns to read: the projected ones plus those the predicate needs."""
        wanted = set(output.names)
        if self._predicate is not None:
            refs = referenced_columns(self._predicate, full)
            wanted |= set(full.names if refs is None else refs)
        return [n for n in data.names if n in wanted]

    def _plan_units(self) -> list[_Unit]:
        if self._units is not None:
            return self._units
        schemas = self._schemas()
        files = self._candidate_files()
        footers = self._footers.get([f.path for f in files])
        read_cols = None
        if schemas is not None:
            data, full, output = schemas
            read_cols = self._read_columns(data, output, full)
        units: list[_Unit] = []
        for info in files:
            footer = footers[info.path]
            if not isinstance(footer, Footer):
                units.append(_Unit(info, None, info.size or 0, None, None))
                continue
            md = footer.metadata
            groups: list[int] | None = list(range(md.num_row_groups))
            if self._predicate is not None and schemas is not None:
                groups = matching_row_groups(md, self._predicate, schemas[1],
                                             self._guarantee(info))
                if groups is None:
                    groups = list(range(md.num_row_groups))
            leaves = top_level_columns(md)
            leaf_ids = None if read_cols is None else [i for c in read_cols
                                                       for i in leaves.get(c, [])]
            for rg in groups or []:
                meta = md.row_group(rg)
                size = (meta.total_byte_size if leaf_ids is None else
                        sum(meta.column(i).total_uncompressed_size for i in leaf_ids))
                units.append(_Unit(info, rg, int(size), meta.num_rows, footer))
        self._units = units
        return units

    def num_rows(self) -> int | None:
        if self._predicate is not None:
            return None
        footers = self._footers.get([f.path for f in self._files])
        if not all(isinstance(f, Footer) for f in footers.values()):
            return None
        return sum(f.metadata.num_rows for f in footers.values())  # type: ignore[union-attr]

    def input_files(self) -> list[str]:
        if self._predicate is None:
            files = self._candidate_files()
        else:  # only the files that pruning by partition and statistics leaves
            files = list({u.file.path: u.file for u in self._plan_units()}.values())
        return [self._fs.display(f.path) for f in files]

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(u.size for u in self._plan_units())

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        units = list(self._plan_units())
        schemas = self._schemas()
        output = schemas[2] if schemas is not None else None
        max_bytes = DataContext.get_current().max_block_bytes()
        scan = self._make_scan(schemas, max_bytes)
        if not units:
            meta = BlockMetadata(0, 0, output, ())
            return [ReadTask(EmptyRead(output), meta)]
        if self._shuffle is not None:
            shuffle_in_place(units, self._shuffle)
        sizes = [u.size for u in units]
        groups = group_contiguous(sizes, plan_task_count(parallelism, sum(sizes), len(units)))
        groups = _isolate_unreadable(groups, units)
        if DataContext.get_current().max_errored_blocks != 0:
            groups = _split_at_files(groups, units)
        tasks = []
        for group in groups:
            chosen = [units[i] for i in group]
            pieces = _merge_units(chosen)
            rows = [u.rows for u in chosen]
            exact = self._predicate is None and all(r is not None for r in rows)
            meta = BlockMetadata(
                num_rows=sum(r or 0 for r in rows) if exact else None,  # type: ignore[arg-type]
                size_bytes=sum(u.size for u in chosen), schema=output,
                input_files=tuple(dict.fromkeys(self._fs.display(p.file.path)
                                                for p in pieces)))
            tasks.append(ReadTask(ParquetRead(scan, pieces), meta))
        return tasks

    def _make_scan(self, schemas: tuple[pa.Schema, pa.Schema, pa.Schema] | None,
                   max_bytes: int) -> ParquetScan:
        read_schema = output_names = None
        if schemas is not None:
            data, full, output = schemas
            cols = self._read_columns(data, output, full)
            read_schema = pa.schema([data.field(c) for c in cols])
            output_names = output.names
        elif self._columns is not None:
            output_names = list(self._columns)
        return ParquetScan(
            fs=self._fs, read_schema=read_schema, output_names=output_names,
            predicate=self._predicate, partition_fields=self._partition_fields,
            include_paths=self._include_paths, batch_size=self._batch_size,
            file_kwargs=self._file_kwargs, scan_kwargs=self._scan_kwargs,
            tensor_columns=self._tensor_columns, max_bytes=max_bytes,
            min_bytes=DataContext.get_current().target_min_block_size)


def _check_predicate_types(predicate: pc.Expression, schema: pa.Schema) -> None:
    """Raise a clear error at planning time for a predicate the columns cannot satisfy."""
    referenced_columns(predicate, schema)  # names an unknown column
    try:
        schema.empty_table().filter(predicate)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise TypeError(f"filter {predicate} does not apply to the columns {schema}: "
                        f"{exc}") from exc


def _isolate_unreadable(groups: list[list[int]], units: list[_Unit]) -> list[list[int]]:
    """Give each file whose footer could not be read a task of its own: that task fails
    naming the file, and ``max_errored_blocks`` then skips that file only, not the readable
    files that would have shared its task."""
    out: list[list[int]] = []
    for group in groups:
        run: list[int] = []
        for i in group:
            if units[i].footer is not None:
                run.append(i)
                continue
            if run:
                out.append(run)
                run = []
            out.append([i])
        if run:
            out.append(run)
    return out


def _split_at_files(groups: list[list[int]], units: list[_Unit]) -> list[list[int]]:
    """Split tasks where the file changes: a failed task is dropped whole under
    ``max_errored_blocks``, so a file with a bad row group must not take the rows of the
    files sharing its task with it."""
    out: list[list[int]] = []
    for group in groups:
        run: list[int] = []
        for i in group:
            if run and units[run[-1]].file.path != units[i].file.path:
                out.append(run)
                run = []
            run.append(i)
        out.append(run)
    return out


def _merge_units(units: list[_Unit]) -> list[ParquetPiece]:
    """Consecutive row groups of one file become one piece."""
    pieces: list[ParquetPiece] = []
    for u in units:
        last = pieces[-1] if pieces else None
        if (last is not None and last.file.path == u.file.path and u.row_group is not None
                and last.row_groups is not None):
            last.row_groups.append(u.row_group)
            continue
        row_groups = None if u.row_group is None else [u.row_group]
        metadata = u.footer.metadata if u.footer is not None else None
        pieces.append(ParquetPiece(u.file, row_groups, metadata))
    return pieces
