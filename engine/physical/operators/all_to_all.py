"""AllToAllOperator: gather every input item, then run one bulk function over them.

Used for operations that need all their input before emitting (repartition, block order
shuffles, zip, sort). Gathered blocks are marked spillable: they must be kept, so past the
memory budget they move to disk rather than pausing the pipeline forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.physical.interfaces import PhysicalOperator

if TYPE_CHECKING:
    from engine.physical.executor import ExecutorState

BulkFn = Callable[[list[list[Any]], "ExecutorState"], list[Any]]


class AllToAllOperator(PhysicalOperator):
    """``bulk_fn(items_per_input, state) -> output items`` runs once all input arrived."""

    def __init__(self, name: str, inputs: list[PhysicalOperator], bulk_fn: BulkFn) -> None:
        super().__init__(name, inputs)
        self.bulk_fn = bulk_fn
        self._gathered: list[list[Any]] = [[] for _ in inputs]
        self._ran = False

    def poll(self, state: ExecutorState) -> bool:
        changed = False
        for index, queue in enumerate(self.inqueues):
            while queue:
                item = self.pop_input(index)
                state.keep(item, self)
                self._gathered[index].append(item)
                changed = True
        if not self._ran and self.all_inputs_done and not self.cancelled:
            self._ran = True
            gathered, self._gathered = self._gathered, []
            for item in self.bulk_fn(gathered, state):
                self.emit(item)
            self.finish_stats()
            changed = True
        return changed

    def completed(self) -> bool:
        return self.cancelled or self._ran
