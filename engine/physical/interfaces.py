"""Contracts of the physical layer: operators, the items they pass, their statistics.

Items flowing between operators are typed by the runtime contract: ``BlockRef`` (a block),
``ValueOutput`` (write results, partial aggregates), or a task input made before execution
(a read task), which is neither. Each operator has one input queue per
upstream operator and one output queue; the executor moves items between them, collects
finished work (``poll``) and starts new work (``dispatch``) within the limits it computes.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.runtime.interfaces import BlockRef, ValueOutput

if TYPE_CHECKING:
    from engine.physical.executor import ExecutorState


def item_rows(item: Any) -> int:
    """Rows of a block; 0 for values and task inputs."""
    return item.num_rows if isinstance(item, BlockRef) else 0


def item_bytes(item: Any) -> int:
    """Bytes an item holds in the store (inline blocks and values count too)."""
    if isinstance(item, (BlockRef, ValueOutput)):
        return item.size_bytes
    return 0


def wait_all(waits: list[Callable[[float | None], bool]], timeout: float | None) -> bool:
    """Call each ``wait(timeout_left)`` in turn within one overall ``timeout`` (None: no
    limit); return whether every one succeeded."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for wait in waits:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not wait(left):
            return False
    return True


@dataclass
class OperatorStats:
    """Per-operator metrics shown by ``Dataset.stats()``."""

    name: str
    tasks_submitted: int = 0
    tasks_finished: int = 0
    tasks_failed_skipped: int = 0
    rows_in: int = 0
    bytes_in: int = 0
    rows_out: int = 0
    bytes_out: int = 0
    blocks_out: int = 0
    cpu_seconds: float = 0.0
    cpu_wait_seconds: float = 0.0  # had work ready but no CPU (task slot or actor) free
    memory_wait_seconds: float = 0.0  # had work ready but the memory budget was used up
    spilled_bytes: int = 0  # of the blocks it kept (materialized, all-to-all partitions)
    started_at: float | None = None
    finished_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wall_seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.perf_counter()) - self.started_at


class PhysicalOperator:
    """Base class: queues, statistics and the executor's hooks."""

    def __init__(self, name: str, inputs: list[PhysicalOperator]) -> None:
        self.name = name
        self.inputs = inputs
        self.inqueues: list[collections.deque[Any]] = [collections.deque() for _ in inputs]
        self.inqueue_bytes = [0 for _ in inputs]
        self.outqueue: collections.deque[Any] = collections.deque()
        self.inputs_done = [False for _ in inputs]
        self.stats = OperatorStats(name)
        self.cancelled = False

    # -- queues (called by the executor) ---------------------------------------------------
    def add_input(self, item: Any, index: int = 0) -> None:
        self.inqueues[index].append(item)
        self.inqueue_bytes[index] += item_bytes(item)
        self.stats.rows_in += item_rows(item)
        self.stats.bytes_in += item_bytes(item)

    def pop_input(self, index: int = 0) -> Any:
        item = self.inqueues[index].popleft()
        self.inqueue_bytes[index] -= item_bytes(item)
        return item

    def mark_input_done(self, index: int) -> None:
        self.inputs_done[index] = True

    def emit(self, item: Any) -> None:
        self.outqueue.append(item)
        self.stats.rows_out += item_rows(item)
        self.stats.bytes_out += item_bytes(item)
        self.stats.blocks_out += 1

    @property
    def all_inputs_done(self) -> bool:
        return all(self.inputs_done)

    @property
    def has_pending_input(self) -> bool:
        return any(self.inqueues)

    @property
    def queued_input_bytes(self) -> int:
        return sum(self.inqueue_bytes)

    # -- hooks -----------------------------------------------------------------------------
    def start(self, state: ExecutorState) -> None:
        """Called once before the first step."""
        if self.stats.started_at is None:
            self.stats.started_at = time.perf_counter()

    def poll(self, state: ExecutorState) -> bool:
        """Collect finished work into ``outqueue``; return whether anything changed."""
        return False

    def can_dispatch(self, state: ExecutorState) -> bool:
        """Whether ``dispatch`` would start work now."""
        return False

    def dispatch(self, state: ExecutorState) -> None:
        """Start one unit of work (a task, an actor call, a driver-side step)."""

    @property
    def num_running(self) -> int:
        """Tasks in flight (they hold a worker)."""
        return 0

    @property
    def num_busy(self) -> int:
        """Tasks in flight that are not stopped waiting for their outputs to be taken."""
        return self.num_running

    @property
    def uses_task_slots(self) -> bool:
        return False

    def completed(self) -> bool:
        """No more output will be produced (the output queue may still hold items)."""
        return self.cancelled or (self.all_inputs_done and not self.has_pending_input
                                  and self.num_running == 0)

    def shutdown(self) -> None:
        """Cancel work in flight and release resources (actors)."""
        self.cancelled = True

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until the work :meth:`shutdown` cancelled has ended in the workers; return
        whether it has. Cancelling only asks a task to stop at its next output."""
        return True

    def finish_stats(self) -> None:
        if self.stats.finished_at is None:
            self.stats.finished_at = time.perf_counter()
