"""The shared half of every file write: names, save modes, partitions, atomic commits.

Each write task (:meth:`FileDatasink.write`) streams its blocks into files, one per
partition directory (``partition_cols``, hive ``k=v`` directories) and per
``max_rows_per_file`` rows, and returns the files it committed (:class:`WrittenFiles`).

Atomicity:

- Filesystems with an atomic rename (local, ``memory://``, HDFS): every file is written
  under a hidden temporary name in its destination directory
  (``.{final name}.{attempt token}.tmp``) and all of a task's files are renamed into place
  only after the last one is complete. A task that fails deletes its temporaries, so it
  leaves nothing behind; one killed outright leaves hidden temporaries that readers skip
  and that the driver deletes in ``on_write_complete``/``on_write_failed``.
- Object stores (S3, GCS, ...), where a rename is a copy and a delete: each file is
  uploaded once under its final name (fsspec commits the upload when the file is closed),
  and a task that fails aborts its open upload and deletes the files it had completed.
- File names derive from (write id, task index) only, so a retried task replaces its own
  files instead of adding copies.
- ``on_write_complete`` is the commit point: only then does ``mode="overwrite"`` delete the
  old files. ``on_write_failed`` deletes the files of the failed write that can be told
  apart by the write id in their names, leaving the destination as it was.

State set in ``on_write_start`` (``mode="ignore"`` skipping) must reach the workers: the
executor pickles the datasink for its tasks after calling ``on_write_start``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import urllib.parse
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.io.exceptions import DestinationExistsError
from engine.io.filename_provider import FilenameProvider, numbered, task_filename
from engine.io.filesystem import check_reachable_from_workers, resolve_filesystem
from engine.io.interfaces import Datasink, TaskContext, WriteResult
from engine.io.partitioning import HIVE_NULL
from engine.io.save_mode import SaveMode

logger = logging.getLogger(__name__)
WRITE_UUID_KWARG = "write_uuid"
_ROW_INDEX = "__engine_partition_row__"


@dataclass(frozen=True)
class WrittenFiles:
    """What one write task returns: the files it committed and the rows in them."""

    paths: tuple[str, ...]
    num_rows: int


class FormatWriter(Protocol):
    """Writes tables of one schema into an open stream in some file format."""

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None:
        """Finish the format (footer, buffered rows); the stream is closed by the caller."""

    # Optional: ``abandon()`` gives up on the file without finishing it, never raising.


class FileDatasink(Datasink):
    """Base class of the file formats' datasinks.

    Args:
        path: The destination directory (local path or URL).
        file_format: The extension of written files (``"parquet"``, ``"csv"``, ...).
        filesystem: An fsspec or pyarrow filesystem (else inferred from ``path``).
        try_create_dir: Create the destination directory if missing (not on object stores).
        open_stream_args: ``compression`` (e.g. ``"gzip"``) and other arguments of
            ``open_output_stream``.
        filename_provider: Names the files (see :mod:`engine.io.filename_provider`).
        dataset_uuid: Prefix of the default file names.
        mode: A :class:`SaveMode` or its name.
        min_rows_per_file: Blocks are bundled so each task writes at least this many rows.
        max_rows_per_file: A task starts a new file after this many rows.
        partition_cols: Columns whose values become hive ``k=v`` directories.
    """

    _ALWAYS_NUMBER_FILES = False

    def __init__(self, path: str | os.PathLike[str], *, file_format: str, filesystem: Any = None,
                 try_create_dir: bool = True, open_stream_args: dict[str, Any] | None = None,
                 filename_provider: Any = None, dataset_uuid: str | None = None,
                 mode: SaveMode | str = SaveMode.APPEND, min_rows_per_file: int | None = None,
                 max_rows_per_file: int | None = None,
                 partition_cols: list[str] | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a string or os.PathLike, got {type(path).__name__}")
        path = os.fspath(path)
        paths, self._fs = resolve_filesystem(path, filesystem)
        self.path = paths[0]
        self.unresolved_path = path
        self.file_format = file_format
        self.mode = SaveMode.parse(mode)
        if self.mode == SaveMode.UPSERT:
            raise ValueError("mode='upsert' needs row keys; file datasinks do not support it")
        for name, value in (("min_rows_per_file", min_rows_per_file),
                            ("max_rows_per_file", max_rows_per_file)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if min_rows_per_file and max_rows_per_file and min_rows_per_file > max_rows_per_file:
            raise ValueError(f"min_rows_per_file ({min_rows_per_file}) must not exceed "
                             f"max_rows_per_file ({max_rows_per_file})")
        self.min_rows_per_file = min_rows_per_file
        self.max_rows_per_file = max_rows_per_file
        self.partition_cols = list(partition_cols) if partition_cols else None
        self.try_create_dir = try_create_dir
        self.open_stream_args = dict(open_stream_args or {})
        self.filename_provider = filename_provider or FilenameProvider(dataset_uuid,
                                                                       file_format)
        self.dataset_uuid = dataset_uuid
        self.write_uuid = uuid.uuid4().hex
        self._skip_write = False
        self._created_dir = False

    @property
    def min_rows_per_write(self) -> int | None:
        return self.min_rows_per_file

    # -- driver side ----------------------------------------------------------------------
    def check_reachable_from_workers(self) -> None:
        """Raise ``ValueError`` if worker processes cannot write where this sink writes."""
        check_reachable_from_workers(self._fs, self._fs.display(self.path))

    def on_write_start(self, schema: pa.Schema | None = None) -> None:
        checks = self.mode in (SaveMode.ERROR, SaveMode.CREATE, SaveMode.IGNORE)
        exists = checks and self._fs.has_files(self.path)
        if exists and self.mode in (SaveMode.ERROR, SaveMode.CREATE):
            raise DestinationExistsError(
                17, f"destination already holds files (mode={self.mode.value!r}; use "
                    f"mode='append', 'overwrite' or 'ignore')", self._fs.display(self.path))
        if exists and self.mode == SaveMode.IGNORE:
            logger.warning("%s already holds files; writing nothing (mode='ignore')",
                           self._fs.display(self.path))
            self._skip_write = True
            return
        if self.try_create_dir and not self._fs.object_store:
            info = self._fs.pa_fs.get_file_info(self.path)
            if info.type == pa.fs.FileType.NotFound:
                self._fs.create_dir(self.path)
                self._created_dir = True

    def on_write_complete(self, write_result: WriteResult) -> None:
        if self._skip_write:
            return
        written = {p for r in write_result.write_returns if isinstance(r, WrittenFiles)
                   for p in r.paths}
        self._fs.invalidate_cache(self.path)
        if self.mode == SaveMode.OVERWRITE:  # the commit: now the old files can go
            for entry in self._fs.list_files(self.path, skip_hidden=False):
                if entry.path not in written:
                    self._fs.delete_file(entry.path)
            self._fs.delete_empty_dirs(self.path)
        elif not self._fs.object_store:
            # Temporaries of killed attempts, in the directories this write used (a
            # retried task writes to the same ones), without listing the whole tree.
            for directory in {posixpath.dirname(p) for p in written} | {self.path}:
                for entry in self._fs.list_dir(directory):
                    name = posixpath.basename(entry.path)
                    if name.startswith(".") and self.write_uuid in name:
                        self._fs.delete_file(entry.path)
        if self._created_dir and write_result.num_rows == 0:
            with contextlib.suppress(OSError):
                self._fs.pa_fs.delete_dir(self.path)

    def on_write_failed(self, error: Exception) -> None:
        if self._skip_write:
            return
        self._fs.invalidate_cache(self.path)
        for entry in self._fs.list_files(self.path, skip_hidden=False):
            if self.write_uuid in posixpath.basename(entry.path):
                self._fs.delete_file(entry.path)
        self._fs.delete_empty_dirs(self.path)

    # -- worker side ----------------------------------------------------------------------
    def write(self, blocks: Iterable[pa.Table], ctx: TaskContext) -> WrittenFiles:
        if self._skip_write:
            return WrittenFiles((), 0)
        write_uuid = ctx.kwargs.get(WRITE_UUID_KWARG, self.write_uuid)
        task = _TaskWrite(self, write_uuid, ctx)
        try:
            for block in blocks:
                if block.num_rows:
                    task.write(block)
            return task.commit()
        except BaseException:
            task.abort()
            raise

    def _open_format_writer(self, stream: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        raise NotImplementedError

    def _stream_compression(self) -> str | None:
        compression = self.open_stream_args.get("compression")
        return None if compression in (None, "detect") else str(compression)

    def _split_partitions(self, table: pa.Table) -> list[tuple[str, pa.Table]]:
        if not self.partition_cols:
            return [("", table)]
        return split_by_partition(table, self.partition_cols)

    def _check_filename(self, filename: str, write_uuid: str) -> None:
        """Hook: reject names a format cannot use (Parquet checks the write id)."""


def split_by_partition(table: pa.Table, columns: list[str]) -> list[tuple[str, pa.Table]]:
    """Split ``table`` by the values of ``columns`` into ``(hive subdirectory, rows)``
    pairs; the partition columns are dropped from the rows, as Hive layouts do."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"partition_cols {missing} are not columns of the data: "
                         f"{table.column_names}")
    keys = table.select(columns).append_column(_ROW_INDEX,
                                               pa.array(np.arange(table.num_rows)))
    groups = keys.group_by(columns, use_threads=False).aggregate([(_ROW_INDEX, "list")])
    out = []
    rows_column = groups.column(f"{_ROW_INDEX}_list")
    for i in range(groups.num_rows):
        parts = [f"{c}={_hive_value(groups.column(c)[i])}" for c in columns]
        rows = rows_column[i].values
        out.append(("/".join(parts), table.take(rows).drop_columns(columns)))
    return out


def _hive_value(value: pa.Scalar) -> str:
    if not value.is_valid:
        return HIVE_NULL
    text = pc.cast(value, pa.string()).as_py()
    return urllib.parse.quote(text, safe="")


class _OpenFile:
    """One file being written: its stream, format writer and how to commit or abort it."""

    def __init__(self, sink: FileDatasink, final_path: str, schema: pa.Schema) -> None:
        fs = sink._fs
        self.final_path = final_path
        self.schema = schema
        self.rows = 0
        self.renamed = False
        self._fs = fs
        self._raw: Any = None
        args = {k: v for k, v in sink.open_stream_args.items() if k != "compression"}
        if fs.object_store:
            self.temp_path = None
            if fs.fsspec_fs is not None:
                self._raw = fs.fsspec_fs.open(final_path, "wb")
                stream: pa.NativeFile = pa.PythonFile(self._raw, mode="w")
            else:
                stream = fs.pa_fs.open_output_stream(final_path, compression=None, **args)
        else:
            directory, name = posixpath.split(final_path)
            token = uuid.uuid4().hex[:12]
            self.temp_path = posixpath.join(directory, f".{name}.{token}.tmp")
            stream = fs.pa_fs.open_output_stream(self.temp_path, compression=None, **args)
        compression = sink._stream_compression()
        self._stream = (pa.CompressedOutputStream(stream, compression) if compression
                        else stream)
        self._writer: FormatWriter | None = sink._open_format_writer(self._stream, schema)

    def write(self, table: pa.Table) -> None:
        assert self._writer is not None, "write after close"
        self._writer.write(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Finish the file (on object stores this completes the upload)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._stream.close()

    def abort(self) -> None:
        """Throw the file away, leaving nothing under its final or temporary name."""
        raw, writer, self._writer = self._raw, self._writer, None
        if raw is not None and writer is not None:
            discard = getattr(raw, "discard", None)
            if callable(discard):
                discard()  # abort a multipart upload before anything can complete it
            with contextlib.suppress(AttributeError):
                raw.closed = True  # fsspec: closing now would upload what was buffered
        if writer is not None:
            _close_quietly(writer, self._stream)
        if self.temp_path is not None:
            self._fs.delete_file(self.temp_path)
        if self.renamed or (self.temp_path is None and (raw is None or writer is None)):
            self._fs.delete_file(self.final_path)


def _close_quietly(writer: FormatWriter, stream: pa.NativeFile) -> None:
    """Close a file that is being thrown away; it may fail (its sink is gone) and must not
    try again when garbage collected."""
    abandon = getattr(writer, "abandon", None)
    if callable(abandon):
        abandon()
    else:
        with contextlib.suppress(Exception):
            writer.close()
    with contextlib.suppress(Exception):
        stream.close()


class _DirWriter:
    """The files one task writes into one directory, rolling over at max_rows_per_file."""

    def __init__(self, task: _TaskWrite, directory: str) -> None:
        self._task = task
        self._directory = directory
        self._index = 0
        self.current: _OpenFile | None = None

    def write(self, table: pa.Table) -> None:
        sink = self._task.sink
        limit = sink.max_rows_per_file
        while table.num_rows:
            if self.current is not None and not self.current.schema.equals(table.schema):
                conformed = _conform_or_none(table, self.current.schema)
                if conformed is not None:
                    table = conformed
                else:
                    self._finish_current()
            if self.current is None:
                self.current = self._task.open_file(self._directory, self._index, table)
                self._index += 1
            room = table.num_rows if limit is None else limit - self.current.rows
            self.current.write(table.slice(0, room))
            table = table.slice(room)
            if limit is not None and self.current.rows >= limit:
                self._finish_current()

    def _finish_current(self) -> None:
        if self.current is not None:
            self.current.close()
            self._task.closed.append(self.current)
            self.current = None


def _conform_or_none(table: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """``table`` cast to ``schema`` if it has the same columns and the cast is safe."""
    if sorted(table.column_names) != sorted(schema.names):
        return None
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


class _TaskWrite:
    """Everything one write task writes, committed or aborted together."""

    def __init__(self, sink: FileDatasink, write_uuid: str, ctx: TaskContext) -> None:
        self.sink = sink
        self.write_uuid = write_uuid
        self.ctx = ctx
        self.closed: list[_OpenFile] = []
        self.rows = 0
        self._dirs: dict[str, _DirWriter] = {}
        self._filename: str | None = None

    def write(self, block: pa.Table) -> None:
        if self._filename is None:
            self._filename = task_filename(self.sink.filename_provider, self.write_uuid,
                                           self.ctx.task_idx, block)
            self.sink._check_filename(self._filename, self.write_uuid)
        for subdir, part in self.sink._split_partitions(block):
            writer = self._dirs.get(subdir)
            if writer is None:
                directory = posixpath.join(self.sink.path, subdir) if subdir else self.sink.path
                if subdir and not self.sink._fs.object_store:
                    self.sink._fs.create_dir(directory)
                writer = self._dirs[subdir] = _DirWriter(self, directory)
            writer.write(part)
            self.rows += part.num_rows

    def open_file(self, directory: str, index: int, table: pa.Table) -> _OpenFile:
        assert self._filename is not None
        sink = self.sink
        name = self._filename
        if sink._ALWAYS_NUMBER_FILES or sink.max_rows_per_file or index or "{i}" in name:
            name = numbered(name, index, sink.file_format)
        return _OpenFile(sink, posixpath.join(directory, name), table.schema)

    def commit(self) -> WrittenFiles:
        for writer in self._dirs.values():
            writer._finish_current()
        for f in self.closed:
            if f.temp_path is not None:
                self.sink._fs.move(f.temp_path, f.final_path)
                f.renamed = True
        return WrittenFiles(tuple(f.final_path for f in self.closed), self.rows)

    def abort(self) -> None:
        files = list(self.closed) + [w.current for w in self._dirs.values()
                                     if w.current is not None]
        for f in files:
            try:
                f.abort()
            except Exception as exc:  # keep cleaning up the others
                logger.warning("could not clean up %s: %s", f.final_path, exc)
