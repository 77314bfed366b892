"""InputDataOperator: items that exist before execution (blocks, or a read's tasks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.physical.interfaces import PhysicalOperator
from engine.runtime.interfaces import BlockRef

if TYPE_CHECKING:
    from engine.physical.executor import ExecutorState


class InputDataOperator(PhysicalOperator):
    def __init__(self, name: str, items: list[Any]) -> None:
        super().__init__(name, [])
        self._items = list(items)

    @property
    def num_items(self) -> int:
        """Items still to hand out (all of them before the execution starts)."""
        return len(self._items)

    @property
    def items_are_blocks(self) -> bool:
        """Whether the items are existing blocks (not read tasks)."""
        return all(isinstance(i, BlockRef) for i in self._items)

    @property
    def blocks(self) -> list[BlockRef]:
        """The blocks still to hand out (all of them before the execution starts)."""
        return [i for i in self._items if isinstance(i, BlockRef)]

    @property
    def total_bytes(self) -> int:
        """Bytes of the items (blocks) still to hand out."""
        return sum(i.size_bytes for i in self._items if isinstance(i, BlockRef))

    def start(self, state: ExecutorState) -> None:
        super().start(state)
        for item in self._items:
            self.emit(item)
        self._items = []

    def completed(self) -> bool:
        return True
