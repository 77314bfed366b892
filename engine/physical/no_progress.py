"""The no-progress guard: an execution that moves nothing for too long fails, naming why.

Progress is any change in what the operators have taken in, produced, finished, or hold
in their queues. Time the execution spends waiting on its consumer (the output queue is
full: a training loop evaluating, a user paused in a debugger) is not a stall of the
execution and never counts. ``DataContext.execution_no_progress_timeout_s`` sets the limit
(Ray Data's name and default, 30 minutes); ``-1`` disables the guard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.errors import ExecutionTimeoutError
from engine.physical.interfaces import PhysicalOperator


@dataclass(frozen=True)
class OperatorProgress:
    """What one operator has done so far; any change between two checks is progress."""

    rows_in: int
    rows_out: int
    blocks_out: int
    tasks_finished: int
    queued: int
    outputs_queued: int


def progress_of(op: PhysicalOperator) -> OperatorProgress:
    s = op.stats
    return OperatorProgress(s.rows_in, s.rows_out, s.blocks_out, s.tasks_finished,
                            sum(len(q) for q in op.inqueues), len(op.outqueue))


def check_timeout(timeout_s: float) -> None:
    """Reject a setting that could only fail every execution (``0``)."""
    if timeout_s == 0:
        raise ValueError("DataContext.execution_no_progress_timeout_s must be positive, or "
                         "-1 to disable the guard; 0 would fail every execution at once")


class NoProgressGuard:
    """Raises :class:`ExecutionTimeoutError` once nothing moved for ``timeout_s`` seconds.

    Args:
        ops: The execution's operators.
        timeout_s: The limit; a negative value disables the guard.
        describe: Returns one line per operator saying what it waits on.
        clock: Monotonic seconds (a fake one in tests).
    """

    def __init__(self, ops: Sequence[PhysicalOperator], timeout_s: float,
                 describe: Callable[[], list[str]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_timeout(timeout_s)
        self._ops = ops
        self._timeout_s = timeout_s
        self._describe = describe
        self._clock = clock
        self._last_time = clock()
        self._last = self._snapshot()

    @property
    def enabled(self) -> bool:
        return self._timeout_s > 0

    def _snapshot(self) -> list[OperatorProgress]:
        return [progress_of(op) for op in self._ops]

    def check(self, waiting_on_consumer: bool) -> None:
        """Call once per scheduling step."""
        if not self.enabled:
            return
        now = self._clock()
        current = self._snapshot()
        if current != self._last or waiting_on_consumer:
            self._last, self._last_time = current, now
            return
        stalled = now - self._last_time
        if stalled >= self._timeout_s:
            lines = [f"the execution made no progress for {stalled:.0f}s "
                     f"(DataContext.execution_no_progress_timeout_s={self._timeout_s:g}; "
                     "-1 disables this check). Operator states:"]
            lines += [f"  {line}" for line in self._describe()]
            raise ExecutionTimeoutError("\n".join(lines))
