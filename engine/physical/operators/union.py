"""UnionOperator: the items of every input, input by input when order is preserved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.physical.interfaces import PhysicalOperator

if TYPE_CHECKING:
    from engine.physical.executor import ExecutorState


class UnionOperator(PhysicalOperator):
    def __init__(self, inputs: list[PhysicalOperator]) -> None:
        super().__init__("Union", inputs)
        self._current = 0

    def poll(self, state: ExecutorState) -> bool:
        changed = False
        for index in range(len(self.inputs)):
            if state.preserve_order:
                while self._current < len(self.inputs) and self.inputs_done[self._current] \
                        and not self.inqueues[self._current]:
                    self._current += 1
                if index != self._current:
                    continue
            while self.inqueues[index] and state.output_has_room(self):
                self.emit(self.pop_input(index))
                changed = True
        return changed
