"""Running a datasink's write tasks: the piece the executor calls in a worker, and the
driver-side bookkeeping around it.

The executor runs :func:`run_write_task` as the body of each write task (in a worker) and
gathers the returned :class:`WriteTaskResult` records; when every task has succeeded it
passes :func:`collect_write_results` of them to ``on_write_complete``, otherwise it calls
``on_write_failed``. :func:`write_blocks` does the whole sequence in one process (tests,
and small local writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from engine.io.interfaces import Datasink, TaskContext, WriteResult, start_write


@dataclass(frozen=True)
class WriteTaskResult:
    """What one write task reports: rows and bytes it consumed, and ``write``'s return."""

    num_rows: int
    size_bytes: int
    write_return: Any


class _Counted:
    """Passes blocks through, counting rows and bytes."""

    def __init__(self, blocks: Iterable[pa.Table]) -> None:
        self._blocks = blocks
        self.rows = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[pa.Table]:
        for block in self._blocks:
            self.rows += block.num_rows
            self.bytes += block.nbytes
            yield block


def run_write_task(datasink: Datasink, blocks: Iterable[pa.Table],
                   ctx: TaskContext) -> WriteTaskResult:
    """Run ``datasink.write(blocks, ctx)`` (in a worker); return a picklable result."""
    counted = _Counted(blocks)
    returned = datasink.write(counted, ctx)
    return WriteTaskResult(counted.rows, counted.bytes, returned)


def collect_write_results(results: Iterable[WriteTaskResult]) -> WriteResult:
    """Combine the tasks' results into what ``on_write_complete`` receives."""
    results = list(results)
    return WriteResult(num_rows=sum(r.num_rows for r in results),
                       size_bytes=sum(r.size_bytes for r in results),
                       write_returns=[r.write_return for r in results])


def write_blocks(datasink: Datasink, tasks: Iterable[Iterable[pa.Table]],
                 write_uuid: str | None = None) -> WriteResult:
    """Run a whole write in this process: start, one task per item of ``tasks``, then
    complete (or ``on_write_failed`` and re-raise)."""
    start_write(datasink, None)
    kwargs = {"write_uuid": write_uuid} if write_uuid else {}
    try:
        results = [run_write_task(datasink, blocks, TaskContext(task_idx=i, kwargs=kwargs))
                   for i, blocks in enumerate(tasks)]
        summary = collect_write_results(results)
    except Exception as exc:
        datasink.on_write_failed(exc)
        raise
    datasink.on_write_complete(summary)
    return summary
