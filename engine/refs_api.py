"""Block references handed to users, and ``engine.get`` to read them (like ``ray.get``)."""

from __future__ import annotations

from typing import Any

from engine.block import table_to_batch


class FormattedRef:
    """A block reference whose ``get()`` converts the block (numpy or pandas)."""

    def __init__(self, ref: Any, fmt: str, column: str | None) -> None:
        self.ref = ref
        self.fmt = fmt
        self.column = column
        self.num_rows = ref.num_rows
        self.size_bytes = ref.size_bytes

    def get(self) -> Any:
        batch = table_to_batch(self.ref.get(), self.fmt)
        return batch[self.column] if self.column is not None else batch


def get(refs: Any) -> Any:
    """Read one block reference, or a list of them (what ``ray.get`` does for refs)."""
    if isinstance(refs, list):
        return [r.get() for r in refs]
    return refs.get()
