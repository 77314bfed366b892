"""LimitOperator: pass the first ``limit`` rows, then stop everything upstream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.physical.interfaces import PhysicalOperator, item_rows

if TYPE_CHECKING:
    from engine.physical.executor import ExecutorState


class LimitOperator(PhysicalOperator):
    def __init__(self, input_op: PhysicalOperator, limit: int) -> None:
        super().__init__(f"Limit[{limit}]", [input_op])
        self.remaining = limit
        self._upstream_stopped = False

    def poll(self, state: ExecutorState) -> bool:
        changed = False
        while self.inqueues[0] and self.remaining > 0:
            item = self.pop_input()
            rows = item_rows(item)
            if rows > self.remaining:
                table = item.get().slice(0, self.remaining)
                item = state.cluster.put(table)
                rows = self.remaining
            self.remaining -= rows
            self.emit(item)
            changed = True
        if self.remaining <= 0:
            while self.inqueues[0]:
                self.pop_input()
            if not self._upstream_stopped:
                self._upstream_stopped = True
                state.stop_upstream(self)
        return changed

    def completed(self) -> bool:
        return self.remaining <= 0 or super().completed()
