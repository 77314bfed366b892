"""The shared half of every file-based read: finding files, partitions, tasks, errors.

:class:`FileBasedDatasource` lists the files when it is built (so a missing path fails at
``read_*`` time, as in Ray), parses partition values from their paths, groups files into
read tasks of about equal bytes (contiguous, so reading tasks in order reads files in
order), and wraps every failure while reading a file into ``DatasetReadError`` naming it.
A read task fails as a whole; the executor may skip it under ``max_errored_blocks``.

Subclasses implement :meth:`_read_stream` (or :meth:`_read_file` for formats that need
random access) and may declare a fixed :meth:`_data_schema`.

Output columns: the format's columns, then partition keys (first-seen order), then
``path`` when ``include_paths=True`` (Ray's order).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from engine.block import BlockMetadata
from engine.context import DataContext
from engine.errors import DatasetReadError
from engine.io.block_output import BlockOutputBuffer, append_constant_columns
from engine.io.filesystem import (
    expand_paths,
    filter_extensions,
    resolve_filesystem,
)
from engine.io.interfaces import Datasource, ReadTask
from engine.io.partitioning import (
    Partitioning,
    PathPartitionFilter,
    PathPartitionParser,
    partition_schema,
    typed_value,
)

PATH_COLUMN = "path"


@dataclass(frozen=True)
class FileShuffleConfig:
    """``shuffle=FileShuffleConfig(seed)`` reads files in a seeded random order."""

    seed: int | None = None


@dataclass(frozen=True)
class FileInfo:
    """A file to read: its path, size and typed partition values (aligned with the
    datasource's partition schema)."""

    path: str
    size: int | None
    partition_values: tuple[Any, ...] = ()


def _check_shuffle(shuffle: Any) -> None:
    if shuffle is None or shuffle == "files" or isinstance(shuffle, FileShuffleConfig):
        return
    if hasattr(shuffle, "seed"):  # Ray's own FileShuffleConfig, duck-typed
        return
    raise ValueError(f"shuffle must be None, 'files' or a FileShuffleConfig, got {shuffle!r}")


def plan_task_count(parallelism: int, total_bytes: int, num_units: int) -> int:
    """How many read tasks to make: ``parallelism`` if positive, else enough for blocks of
    about ``target_max_block_size`` (at least ``read_op_min_num_blocks``); never more
    than the number of indivisible units, never fewer than one."""
    if parallelism is None or parallelism <= 0:
        ctx = DataContext.get_current()
        parallelism = max(ctx.read_op_min_num_blocks,
                          math.ceil(total_bytes / max(1, ctx.max_block_bytes())))
    return max(1, min(parallelism, num_units))


def group_contiguous(sizes: list[int], num_groups: int) -> list[list[int]]:
    """Split indices ``0..len(sizes)`` into at most ``num_groups`` contiguous runs of about
    equal total size (by count when sizes are unknown)."""
    if not sizes:
        return []
    if sum(sizes) <= 0:
        sizes = [1] * len(sizes)
    num_groups = max(1, min(num_groups, len(sizes)))
    target = sum(sizes) / num_groups
    groups: list[list[int]] = []
    current: list[int] = []
    acc = 0.0
    for i, size in enumerate(sizes):
        # An item starts the next run when its middle lies past this run's share (the cut
        # nearest the ideal one: cutting only once a run reached its share made runs of
        # 3, 2 and 1 out of six nearly equal files), or when each remaining item must
        # start a run of its own.
        if current and len(groups) + 1 < num_groups and (
                acc + size / 2 > target * (len(groups) + 1)
                or len(sizes) - i <= num_groups - len(groups) - 1):
            groups.append(current)
            current = []
        current.append(i)
        acc += size
    if current:
        groups.append(current)
    return groups


def shuffle_in_place(items: list[Any], shuffle: Any) -> None:
    """Shuffle ``items`` when ``shuffle`` asks for it (seeded if it has a seed)."""
    if shuffle is None:
        return
    random.Random(getattr(shuffle, "seed", None)).shuffle(items)


def wrap_read_error(exc: BaseException, display: str, where: str = "") -> DatasetReadError:
    """A ``DatasetReadError`` naming the file (and where in it) for ``exc``."""
    if isinstance(exc, DatasetReadError):
        return exc
    detail = f" ({where})" if where else ""
    return DatasetReadError(f"Failed to read {display}{detail}: {type(exc).__name__}: {exc}",
                            path=display)


class FileBasedDatasource(Datasource):
    """Base class of the file formats: paths, partitions, task planning, error wrapping.

    Args:
        paths: A path, directory, glob pattern or URL, or a list of them.
        filesystem: An fsspec or pyarrow filesystem (else inferred from the paths).
        arrow_open_stream_args: Passed to ``open_input_stream`` (e.g. ``compression``).
        partition_filter: A :class:`PathPartitionFilter` choosing files by partition.
        partitioning: How partition values are encoded in paths (None: not parsed).
        include_paths: Add a ``path`` column with each row's file.
        ignore_missing_paths: Skip missing paths instead of raising ``FileNotFoundError``.
        shuffle: ``"files"`` or :class:`FileShuffleConfig` to read files in random order.
        file_extensions: Read only files ending with one of these.
    """

    _DEFAULT_FILE_EXTENSIONS: ClassVar[list[str] | None] = None

    def __init__(self, paths: str | list[str], *, filesystem: Any = None,
                 arrow_open_stream_args: dict[str, Any] | None = None,
                 partition_filter: PathPartitionFilter | None = None,
                 partitioning: Partitioning | None = None, include_paths: bool = False,
                 ignore_missing_paths: bool = False, shuffle: Any = None,
                 file_extensions: list[str] | None = None) -> None:
        _check_shuffle(shuffle)
        if partitioning is not None and not isinstance(partitioning, Partitioning):
            raise TypeError(f"partitioning must be a Partitioning or None, got "
                            f"{type(partitioning).__name__}")
        source_paths, self._fs = resolve_filesystem(paths, filesystem)
        self._open_args = dict(arrow_open_stream_args or {})
        unknown = set(self._open_args) - {"compression", "buffer_size"}
        if unknown:
            raise TypeError(f"unsupported arrow_open_stream_args {sorted(unknown)}; expected "
                            f"'compression' or 'buffer_size'")
        self._include_paths = bool(include_paths)
        self._shuffle = shuffle
        entries = expand_paths(source_paths, self._fs, ignore_missing_paths=ignore_missing_paths)
        if partition_filter is not None:
            keep = set(partition_filter.with_normalizer(self._fs.normalize)(
                [e.path for e in entries]))
            entries = [e for e in entries if e.path in keep]
            if not entries:
                raise ValueError("No input files left to read after partition_filter; check "
                                 "the filter and the partition scheme")
        entries = filter_extensions(entries, file_extensions, source_paths, self._fs,
                                    ignore_missing_paths)
        self._partitioning = partitioning
        raw = self._parse_partitions([e.path for e in entries])
        self._partition_fields = (partition_schema(partitioning, raw) if partitioning
                                  else pa.schema([]))
        self._files = [FileInfo(e.path, e.size, self._typed_partitions(v))
                       for e, v in zip(entries, raw, strict=True)]

    # -- planning helpers ---------------------------------------------------------------
    def _parse_partitions(self, paths: list[str]) -> list[dict[str, str | None]]:
        if self._partitioning is None:
            return [{} for _ in paths]
        parser = PathPartitionParser(self._partitioning, self._fs.normalize)
        return [parser(p) for p in paths]

    def _typed_partitions(self, raw: dict[str, str | None]) -> tuple[Any, ...]:
        return tuple(typed_value(raw.get(f.name), f.type) for f in self._partition_fields)

    def __getstate__(self) -> dict[str, Any]:
        # Read tasks carry the datasource to workers; the file list stays in the driver.
        state = self.__dict__.copy()
        state["_files"] = None
        return state

    def __copy__(self) -> FileBasedDatasource:
        # Pushdown copies share the file list (and caches) with the original.
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def _extra_fields(self, data_names: list[str]) -> list[pa.Field]:
        fields = [f for f in self._partition_fields if f.name not in data_names]
        if self._include_paths and PATH_COLUMN not in data_names:
            fields.append(pa.field(PATH_COLUMN, pa.string()))
        return fields

    def _decorate(self, table: pa.Table, info: FileInfo) -> pa.Table:
        """Append partition and path columns to a table read from ``info``."""
        values: list[tuple[pa.Field, Any]] = list(zip(self._partition_fields,
                                                      info.partition_values, strict=True))
        if self._include_paths:
            values.append((pa.field(PATH_COLUMN, pa.string()), info.path))
        return append_constant_columns(table, values) if values else table

    # -- the Datasource contract ----------------------------------------------------------
    def _data_schema(self) -> pa.Schema | None:
        """The format's own columns, when fixed (text, binary, ...)."""
        return None

    def schema(self) -> pa.Schema | None:
        data = self._data_schema()
        if data is None:
            return None
        return pa.schema(list(data) + self._extra_fields(data.names))

    def _rows_per_file(self) -> int | None:
        return None

    def num_rows(self) -> int | None:
        per_file = self._rows_per_file()
        return None if per_file is None else per_file * len(self._files)

    def input_files(self) -> list[str]:
        return [self._fs.display(f.path) for f in self._files]

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(f.size or 0 for f in self._files)

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        files = list(self._files)
        shuffle_in_place(files, self._shuffle)
        sizes = [f.size or 0 for f in files]
        ctx = DataContext.get_current()
        if ctx.max_errored_blocks != 0:
            # A failed task is dropped whole: one file per task, so a bad file costs only
            # its own rows and each bad file counts once against the limit.
            groups = [[i] for i in range(len(files))]
        else:
            groups = group_contiguous(sizes, plan_task_count(parallelism, sum(sizes),
                                                             len(files)))
        max_bytes, min_bytes = ctx.max_block_bytes(), ctx.target_min_block_size
        schema = self.schema()
        per_file = self._rows_per_file()
        tasks = []
        for group in groups:
            chunk = [files[i] for i in group]
            meta = BlockMetadata(
                num_rows=None if per_file is None else per_file * len(chunk),  # type: ignore[arg-type]
                size_bytes=sum(f.size or 0 for f in chunk),
                schema=schema,
                input_files=tuple(self._fs.display(f.path) for f in chunk),
            )
            tasks.append(ReadTask(_ReadFiles(self, chunk, max_bytes, min_bytes), meta))
        return tasks

    # -- reading (runs in workers) ------------------------------------------------------
    def _read_files(self, files: list[FileInfo], max_bytes: int,
                    min_bytes: int = 1 << 20) -> Iterator[pa.Table]:
        out = BlockOutputBuffer(max_bytes, min_bytes)
        for info in files:
            display = self._fs.display(info.path)
            try:
                for table in self._read_file(info.path, max_bytes):
                    yield from out.add(self._decorate(table, info))
            except Exception as exc:
                raise wrap_read_error(exc, display) from exc
        yield from out.finish()

    def _read_file(self, path: str, max_bytes: int) -> Iterator[pa.Table]:
        """Yield the tables of one file; by default opens a stream for :meth:`_read_stream`."""
        with self._fs.open_input_stream(path, **self._open_args) as stream:
            yield from self._read_stream(stream, path, max_bytes)

    def _read_stream(self, stream: pa.NativeFile, path: str,
                     max_bytes: int) -> Iterator[pa.Table]:
        raise NotImplementedError


class _ReadFiles:
    """The picklable body of a file read task."""

    def __init__(self, datasource: FileBasedDatasource, files: list[FileInfo],
                 max_bytes: int, min_bytes: int) -> None:
        self.datasource = datasource
        self.files = files
        self.max_bytes = max_bytes
        self.min_bytes = min_bytes

    def __call__(self) -> Iterator[pa.Table]:
        return self.datasource._read_files(self.files, self.max_bytes, self.min_bytes)
