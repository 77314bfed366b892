"""Bulk functions of all-to-all operators that move no rows (they see every input item at
once and only reorder references)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.physical.executor import ExecutorState


def randomize_blocks(inputs: list[list[Any]], state: ExecutorState, seed: int | None) -> \
        list[Any]:
    """The input items in a random order (``randomize_block_order``)."""
    items = list(inputs[0])
    random.Random(seed).shuffle(items)
    return items
