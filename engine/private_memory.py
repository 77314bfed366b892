"""Copy-on-write mappings of block files, so a reader may write what it was handed.

A block in the store is a file shared by every process that reads it. Mapping it privately
(``MAP_PRIVATE``) costs the same as a shared read-only mapping until a page is written; a
write then copies that one page into the writer's memory and the file stays as it was. A
consumer that hands out tensors over a block (``iter_torch_batches``) can so give writable
views instead of copying every batch to make it safe to modify.

Only mappings made here count as private: a mutable Arrow buffer in general may be memory a
user or a kept block still owns.
"""

from __future__ import annotations

import mmap
import weakref

import numpy as np
import pyarrow as pa

# The address and length of every live private mapping, by the address of its root buffer.
_private: dict[int, int] = {}


def map_private(path: str) -> pa.Buffer:
    """The whole file at ``path`` as a buffer over a copy-on-write mapping of it."""
    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    buffer = pa.py_buffer(mapping)
    address = buffer.address
    _private[address] = buffer.size
    # The mapping lives as long as any Arrow buffer sliced from it (they hold ``buffer``,
    # which holds ``mapping``); forget its address when it goes.
    weakref.finalize(mapping, _private.pop, address, None)
    return buffer


def _private_root(buffer: pa.Buffer) -> pa.Buffer | None:
    root = buffer
    while root.parent is not None:
        root = root.parent
    if _private.get(root.address) != root.size or not root.is_mutable:
        return None
    return root


def writable_view(buffer: pa.Buffer, dtype: np.dtype, count: int, offset: int) -> \
        np.ndarray | None:
    """A writable numpy view of ``count`` items of ``dtype`` at byte ``offset`` of
    ``buffer``, where ``buffer`` lies in a private mapping made by :func:`map_private`;
    else None (the caller copies)."""
    root = _private_root(buffer)
    if root is None:
        return None
    start = buffer.address - root.address + offset
    return np.frombuffer(root, dtype=dtype, count=count, offset=start)
