"""Block references on Ray: an ``ObjectRef`` of an Arrow table plus its metadata.

The driver counts the bytes of the blocks its references hold (the executor's budget is
about what *this* driver keeps alive, not what other jobs put in the shared object store).
Pickled into a task's arguments a :class:`RayBlockRef` becomes a :class:`BlockArg`: Ray
tracks the nested ``ObjectRef`` (the borrower keeps the block alive) and the task resolves
it to a zero-copy table from its node's object store.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from engine.runtime.interfaces import BlockRef
from engine.runtime.store_account import StoreAccount


class BlockArg:
    """What a :class:`RayBlockRef` is inside a task's arguments: the bare ``ObjectRef``."""

    __slots__ = ("object_ref",)

    def __init__(self, object_ref: Any) -> None:
        self.object_ref = object_ref

    def __reduce__(self) -> tuple[Any, ...]:
        return (BlockArg, (self.object_ref,))


class RayBlockRef(BlockRef):
    """One block in Ray's object store; holding it keeps the block alive."""

    __slots__ = ("__weakref__", "_account", "_schema", "_schema_bytes", "block_id",
                 "input_files", "num_rows", "object_ref", "size_bytes")

    def __init__(self, object_ref: Any, num_rows: int, size_bytes: int, *,
                 schema: pa.Schema | None = None, schema_bytes: bytes | None = None,
                 account: StoreAccount | None = None,
                 input_files: tuple[str, ...] = ()) -> None:
        self.object_ref = object_ref
        self.block_id = object_ref.hex()
        self.num_rows = num_rows
        self.size_bytes = size_bytes
        self.input_files = input_files
        self._schema = schema
        self._schema_bytes = schema_bytes
        self._account = account
        if account is not None:
            account.add(size_bytes)

    @property
    def schema(self) -> pa.Schema | None:
        if self._schema is None and self._schema_bytes is not None:
            self._schema = pa.ipc.read_schema(pa.py_buffer(self._schema_bytes))
        return self._schema

    @property
    def in_store(self) -> bool:
        return True

    @property
    def location(self) -> BlockArg:
        """What another process needs to read the block: the bare ``ObjectRef`` (Ray
        counts that process as a borrower while it holds it)."""
        return BlockArg(self.object_ref)

    def get(self) -> pa.Table:
        """Fetch the block (zero-copy from this node's object store)."""
        import ray

        from engine.runtime.ray_backend.errors import from_ray_error

        try:
            table: pa.Table = ray.get(self.object_ref)
        except ray.exceptions.RayError as exc:
            raise from_ray_error(exc, f"reading block {self.block_id}") from exc
        return table

    def release(self) -> None:
        """Stop counting the block against the budget (Ray frees it with the last ref)."""
        account, self._account = self._account, None
        if account is not None:
            account.remove(self.size_bytes)

    def __reduce__(self) -> tuple[Any, ...]:
        return (BlockArg, (self.object_ref,))

    def __del__(self) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RayBlockRef({self.block_id[:16]}, rows={self.num_rows}, bytes={self.size_bytes})"
