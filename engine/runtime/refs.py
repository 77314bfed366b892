"""Block references: the driver's owning handle on a block in the store.

A :class:`LocalBlockRef` keeps its block alive; when the last Python reference to it goes, its
file is freed. Pickled into a task's arguments it becomes a plain :class:`BlockLocation`,
which owns nothing: only the driver counts references.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine.errors import ObjectLostError
from engine.runtime.block_store import BlockLocation, read_location
from engine.runtime.interfaces import BlockRef

if TYPE_CHECKING:
    from engine.runtime.block_store import BlockStore


class LocalBlockRef(BlockRef):
    """A reference to one block of the local store, owned by the driver.

    Attributes:
        block_id: Unique within the session.
        num_rows, size_bytes: Known without reading the block.
    """

    __slots__ = ("__weakref__", "_schema", "_schema_bytes", "_store", "block_id", "inline",
                 "input_files", "num_rows", "path", "size_bytes", "spill_dir")

    def __init__(self, block_id: str, num_rows: int, size_bytes: int, *,
                 path: str | None = None, inline: bytes | None = None,
                 schema: pa.Schema | None = None, schema_bytes: bytes | None = None,
                 store: BlockStore | None = None, spill_dir: str | None = None,
                 input_files: tuple[str, ...] = ()) -> None:
        self.block_id = block_id
        self.num_rows = num_rows
        self.size_bytes = size_bytes
        self.path = path
        self.inline = inline
        self.spill_dir = spill_dir
        self.input_files = input_files
        self._schema = schema
        self._schema_bytes = schema_bytes
        self._store = store  # set only when this ref owns a file in the store

    @property
    def schema(self) -> pa.Schema | None:
        if self._schema is None and self._schema_bytes is not None:
            self._schema = pa.ipc.read_schema(pa.py_buffer(self._schema_bytes))
        return self._schema

    @property
    def location(self) -> BlockLocation:
        return BlockLocation(self.block_id, self.path, self.inline, self.spill_dir)

    @property
    def in_store(self) -> bool:
        """Whether the block occupies the shared store (inline blocks do not)."""
        return self.inline is None

    def get(self) -> pa.Table:
        """Read the block (zero-copy memory map for stored blocks).

        Raises:
            ObjectLostError: the block's file is gone (from the store and the spill
                directory).
        """
        try:
            return read_location(self.location)
        except FileNotFoundError as exc:
            lost = exc
        reason = "its file is in neither the store nor the spill directory"
        store = self._store
        if store is not None and store.recover is not None:
            rebuilt, why_not = store.recover(self.block_id)  # re-run the task that made it
            if rebuilt:
                try:
                    return read_location(self.location)
                except FileNotFoundError as exc:
                    lost, why_not = exc, "it was lost again"
            reason += f", and it could not be rebuilt: {why_not}"
        raise ObjectLostError(f"block {self.block_id} is lost: {reason}") from lost

    def __reduce__(self) -> tuple[Any, ...]:
        return (BlockLocation, (self.block_id, self.path, self.inline, self.spill_dir))

    def release(self) -> None:
        """Free the block's file now (idempotent); the ref must not be read afterwards."""
        store = self._store
        if store is not None:
            self._store = None
            # At interpreter shutdown this may fail: the session directory goes anyway.
            with contextlib.suppress(Exception):
                store.free(self.block_id)

    def __del__(self) -> None:
        self.release()

    def __repr__(self) -> str:
        where = "inline" if self.inline is not None else "store"
        return (f"LocalBlockRef({self.block_id}, rows={self.num_rows}, "
                f"bytes={self.size_bytes}, {where})")
