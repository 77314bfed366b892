"""Contracts between the Dataset API, the planner and the datasources/datasinks.

A :class:`Datasource` plans a read as a list of :class:`ReadTask`; each read task is a small
picklable callable that runs on a worker and yields blocks (``pyarrow.Table``) as it reads,
so a read never materializes a whole file set anywhere. A :class:`Datasink` writes blocks
from worker tasks and commits in the driver.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from engine.block import BlockMetadata


class ReadTask:
    """One unit of a read: ``read_task()`` yields the blocks it reads.

    Args:
        read_fn: A picklable function of no arguments returning an iterable of tables.
        metadata: What is known before reading (rows and bytes may be estimates or None).
    """

    def __init__(self, read_fn: Callable[[], Iterable[pa.Table]],
                 metadata: BlockMetadata) -> None:
        self._read_fn = read_fn
        self.metadata = metadata

    def __call__(self) -> Iterator[pa.Table]:
        yield from self._read_fn()

    def __repr__(self) -> str:
        return f"ReadTask(rows={self.metadata.num_rows}, bytes={self.metadata.size_bytes})"


class Datasource:
    """A source of blocks. Subclasses implement :meth:`get_read_tasks`.

    Pushdown: a datasource that can read fewer columns or rows overrides
    ``supports_projection_pushdown``/``apply_projection`` and
    ``supports_predicate_pushdown``/``apply_predicate``; both return a new datasource and
    never mutate this one.
    """

    def get_name(self) -> str:
        """A short name shown in plans and stats (e.g. ``"Parquet"``)."""
        name = type(self).__name__
        return name[: -len("Datasource")] if name.endswith("Datasource") else name

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        """Return the read tasks, about ``parallelism`` of them (a hint, not a rule)."""
        raise NotImplementedError

    def estimate_inmemory_data_size(self) -> int | None:
        """Bytes the data takes in memory once read, if cheaply known."""
        return None

    def schema(self) -> pa.Schema | None:
        """The schema of the blocks, if known without reading data."""
        return None

    def num_rows(self) -> int | None:
        """The exact row count, if known without reading data."""
        return None

    def schema_of(self, columns: set[str]) -> pa.Schema | None:
        """The schema of at least ``columns``, read as cheaply as this source allows (a
        predicate on partition keys needs no file footers); by default :meth:`schema`."""
        return self.schema()

    def input_files(self) -> list[str]:
        """The files this datasource reads."""
        return []

    # -- pushdown -----------------------------------------------------------------------
    def supports_projection_pushdown(self) -> bool:
        return False

    def apply_projection(self, columns: list[str]) -> Datasource:
        """Return a datasource that reads only ``columns`` (in that order)."""
        raise NotImplementedError

    def supports_predicate_pushdown(self) -> bool:
        return False

    def apply_predicate(self, predicate: Any) -> Datasource:
        """Return a datasource that yields only rows where ``predicate`` (a
        ``pyarrow.compute.Expression``) is true, skipping row groups or partitions that
        cannot match."""
        raise NotImplementedError

    def pushdown_description(self) -> str:
        """What has been pushed into this read, for ``explain()`` (e.g. columns, filter)."""
        return ""


@dataclass
class TaskContext:
    """Passed to ``Datasink.write``: which write task this is and which attempt."""

    task_idx: int
    op_name: str = "Write"
    attempt: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class WriteResult:
    """What ``Datasink.on_write_complete`` receives: totals and each task's return."""

    num_rows: int
    size_bytes: int
    write_returns: list[Any]


class Datasink:
    """A destination for blocks.

    ``on_write_start`` runs once in the driver before any write; ``write`` runs in worker
    tasks, one call per task, with that task's blocks; ``on_write_complete`` runs once in the
    driver after every task succeeded (commit here); ``on_write_failed`` runs instead when
    any task failed (clean up here).
    """

    def get_name(self) -> str:
        name = type(self).__name__
        return name[: -len("Datasink")] if name.endswith("Datasink") else name

    def on_write_start(self, schema: pa.Schema | None = None) -> None:
        """Runs once in the driver before any write; ``schema`` is the data's schema when
        known without executing (Ray 2.60 passes it too), else None. A subclass may also
        define it without the argument (older Ray Data sinks do)."""

    def write(self, blocks: Iterable[pa.Table], ctx: TaskContext) -> Any:
        raise NotImplementedError

    def on_write_complete(self, write_result: WriteResult) -> None:
        pass

    def on_write_failed(self, error: Exception) -> None:
        pass

    @property
    def min_rows_per_write(self) -> int | None:
        """Blocks are bundled so each write task receives at least this many rows."""
        return None


def start_write(datasink: Datasink, schema: pa.Schema | None) -> None:
    """Call ``datasink.on_write_start``, with ``schema`` where the sink takes an argument."""
    try:
        takes_schema = bool(inspect.signature(datasink.on_write_start).parameters)
    except (TypeError, ValueError):  # no signature to read: pass what Ray passes
        takes_schema = True
    if takes_schema:
        datasink.on_write_start(schema)
    else:
        datasink.on_write_start()  # type: ignore[call-arg]
