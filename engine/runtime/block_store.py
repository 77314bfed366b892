"""The node-local shared-memory block store.

A producer writes a block once, as an uncompressed Arrow IPC file with one record batch,
under ``/dev/shm/<prefix><session>/``; readers memory-map it read-only and get a zero-copy
table. Tiny blocks travel inline (IPC bytes inside a message) instead.

The driver owns every block: it counts bytes, frees a block's file when its last
:class:`BlockRef` goes away, and spills kept blocks to a disk directory when the store passes
its budget. Readers fall back to the spill directory transparently, so spilling needs no
coordination with workers (a reader that already mapped the shm file keeps a valid mapping).

Each session's store and spill directories are private and locked; see
:mod:`engine.runtime.session_dirs` for who removes them and when.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from engine.private_memory import map_private
from engine.runtime.session_dirs import (
    SESSION_PREFIX,
    SPILL_PREFIX,
    create_locked_dir,
    remove_stale_sessions,
    short_temp_root,
)

logger = logging.getLogger(__name__)

# The ids the runtime makes: "<worker id>-<pid>-<n>" from a worker, "d<16 hex>" from the driver.
_BLOCK_ID = re.compile(r"(?:w[0-9]{1,9}-[0-9]{1,10}-[0-9]{1,15}|d[0-9a-f]{16})\Z")


def is_valid_block_id(block_id: object) -> bool:
    """Whether ``block_id`` is an id the runtime makes (so it safely names a file)."""
    return isinstance(block_id, str) and _BLOCK_ID.match(block_id) is not None


@dataclass(frozen=True)
class BlockLocation:
    """Where a block's bytes are: a file in the store, or inline IPC bytes."""

    block_id: str
    path: str | None  # shm path (or spill path, see read_block)
    inline: bytes | None
    spill_dir: str | None


# ---------------------------------------------------------------- writing and reading


def serialize_table(table: pa.Table) -> bytes:
    """Return ``table`` as Arrow IPC stream bytes (for inline blocks)."""
    if any(c.num_chunks > 1 for c in table.columns):
        table = table.combine_chunks()  # one batch, as in block files: single-chunk columns
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]


def deserialize_table(data: bytes | memoryview | pa.Buffer) -> pa.Table:
    """Read inline IPC stream bytes back into a table (zero-copy over ``data``)."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def write_block_file(path: str, table: pa.Table) -> int:
    """Write ``table`` as an IPC file with one record batch; return the file size.

    Writes with ordinary file I/O (never through an mmap: past the tmpfs limit that is a
    SIGBUS) to ``path + '.tmp'``, then renames, so a reader never sees a partial file.
    """
    if any(c.num_chunks > 1 for c in table.columns):
        table = table.combine_chunks()
    tmp = path + ".tmp"
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))
    os.rename(tmp, path)
    return os.path.getsize(path)


def direct_spill_path(store_dir: str, spill_dir: str, block_id: str, nbytes: int,
                      budget_bytes: int) -> str:
    """Where a producer writes a new block: the store, or straight to the spill directory
    for a block larger than the store's whole budget (it could never fit)."""
    return os.path.join(spill_dir if nbytes > budget_bytes else store_dir, block_id)


def read_block_file(path: str, spill_dir: str | None = None) -> pa.Table:
    """Memory-map a block file copy-on-write and return a zero-copy table (a reader may
    then write its columns' memory without copying, and the file stays as it was).

    If the file has moved to the spill directory, read it from there.
    """
    try:
        source = map_private(path)
    except FileNotFoundError:
        if spill_dir is None:
            raise
        source = map_private(os.path.join(spill_dir, os.path.basename(path)))
    reader = pa.ipc.open_file(pa.BufferReader(source))
    if reader.num_record_batches == 1:
        return pa.Table.from_batches([reader.get_batch(0)])
    return reader.read_all()


def read_location(loc: BlockLocation) -> pa.Table:
    """Return the table a :class:`BlockLocation` points at."""
    if loc.inline is not None:
        return deserialize_table(loc.inline)
    assert loc.path is not None, "a block location has neither a path nor inline bytes"
    return read_block_file(loc.path, loc.spill_dir)


# ---------------------------------------------------------------- the driver's store


def _shm_capacity(root: str) -> int:
    try:
        st = os.statvfs(root)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


class BlockStore:
    """The driver's view of the store: session directory, byte accounting, spill, free.

    Args:
        budget_bytes: Bytes of blocks the shared-memory directory may hold before kept
            blocks spill to disk. Capped by what ``/dev/shm`` can hold.
        root: Where session directories live (``/dev/shm`` by default).
        spill_root: Where the session's private spill directory is made (``TMPDIR`` by
            default).
    """

    def __init__(self, budget_bytes: int, root: str = "/dev/shm",
                 spill_root: str | None = None) -> None:
        self.session_id = secrets.token_hex(6)
        capacity = _shm_capacity(root) if os.path.isdir(root) else 0
        if capacity < 256 * 1024 * 1024:
            # Containers often give /dev/shm 64 MB: use a disk-backed directory instead.
            logger.warning("/dev/shm holds only %d bytes; the block store uses a disk "
                           "directory instead", capacity)
            root = short_temp_root()
            capacity = _shm_capacity(root)
        spill_root = spill_root or tempfile.gettempdir()
        os.makedirs(spill_root, mode=0o700, exist_ok=True)
        remove_stale_sessions(root)
        if os.path.realpath(spill_root) != os.path.realpath(root):
            remove_stale_sessions(spill_root)
        self.root = root
        self.dir, self._lock_fd = create_locked_dir(root, SESSION_PREFIX + self.session_id)
        try:
            self.spill_dir, self._spill_lock_fd = create_locked_dir(
                spill_root, SPILL_PREFIX + secrets.token_hex(8))
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._lock_fd)
            raise
        self.budget_bytes = int(min(budget_bytes, capacity * 0.9)) if capacity else budget_bytes
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}  # block id -> bytes in shm
        self._spillable: OrderedDict[str, str] = OrderedDict()  # block id -> path, LRU order
        self._spilled: dict[str, int] = {}
        self._owners: dict[str, str] = {}  # kept block id -> who kept it (for stats)
        self._spilled_by_owner: dict[str, int] = {}
        self.used_bytes = 0
        self.peak_bytes = 0
        self.spilled_bytes_total = 0
        self.spill_failures = 0
        # Set by the runtime: rebuild a lost block (lineage); returns (rebuilt, why not).
        self.recover: Callable[[str], tuple[bool, str]] | None = None
        self._closed = False
        # A process forked from the driver inherits this object (and BlockRefs that point at
        # it): only the driver may delete or move block files.
        self._owner_pid = os.getpid()

    # -- accounting -------------------------------------------------------------------
    def block_path(self, block_id: str) -> str:
        """The file of a block; ``ValueError`` for an id the runtime would not make."""
        if not is_valid_block_id(block_id):
            raise ValueError(f"invalid block id {block_id!r}")
        return os.path.join(self.dir, block_id)

    def _spill_path(self, block_id: str) -> str:
        return os.path.join(self.spill_dir, os.path.basename(self.block_path(block_id)))

    def register(self, block_id: str, size: int, spill: bool = True) -> None:
        """Record a block file a worker (or the driver) wrote into the session directory;
        over budget, spill now unless ``spill`` is False (the caller spills elsewhere).

        A block larger than the whole budget is written straight to the spill directory
        by its producer (see :meth:`direct_spill_path`): it is recorded as spilled."""
        if size > self.budget_bytes and not os.path.exists(self.block_path(block_id)) and \
                os.path.exists(self._spill_path(block_id)):
            with self._lock:
                self._spilled[block_id] = size
                self.spilled_bytes_total += size
            return
        with self._lock:
            self._sizes[block_id] = size
            self.used_bytes += size
            self.peak_bytes = max(self.peak_bytes, self.used_bytes)
            if size > self.budget_bytes:  # could never fit: straight to disk
                self._spillable[block_id] = self.block_path(block_id)
        if spill and self.used_bytes > self.budget_bytes:
            self.spill_until_under_budget()

    def put(self, table: pa.Table, block_id: str | None = None) -> tuple[str, int]:
        """Write a block from the driver; return its id and size."""
        block_id = block_id or "d" + secrets.token_hex(8)
        path = direct_spill_path(self.dir, self.spill_dir, block_id, table.nbytes,
                                 self.budget_bytes)
        size = write_block_file(path, table)
        self.register(block_id, size)
        return block_id, size

    def mark_spillable(self, block_id: str, owner: str | None = None) -> None:
        """Allow a kept block (materialized, all-to-all input) to spill when over budget;
        its spilled bytes count for ``owner`` (see :meth:`take_spilled_bytes`)."""
        with self._lock:
            if block_id in self._sizes:
                self._spillable[block_id] = self.block_path(block_id)
                if owner is not None:
                    self._owners[block_id] = owner
        if self.used_bytes > self.budget_bytes:
            self.spill_until_under_budget()

    def free(self, block_id: str) -> None:
        """Delete a block's file (shm or spilled); safe from any thread, idempotent."""
        if os.getpid() != self._owner_pid:
            return
        with self._lock:
            size = self._sizes.pop(block_id, None)
            self._spillable.pop(block_id, None)
            spilled = self._spilled.pop(block_id, None)
            self._owners.pop(block_id, None)
            if size is not None:
                self.used_bytes -= size
        if self._closed:
            return
        if size is not None:
            _unlink(self.block_path(block_id))
        if spilled is not None:
            _unlink(self._spill_path(block_id))

    def remove_unreported(self, prefix: str) -> None:
        """Delete files named ``prefix*`` that the store does not account for: blocks (or
        partial ``.tmp`` writes) of a worker that died before reporting them."""
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for name in names:
            if not name.startswith(prefix):
                continue
            block_id = name[:-4] if name.endswith(".tmp") else name
            with self._lock:
                known = block_id in self._sizes or block_id in self._spilled
            if not known:
                _unlink(os.path.join(self.dir, name))

    # -- spilling ---------------------------------------------------------------------
    def spill_until_under_budget(self, target_bytes: int | None = None) -> int:
        """Move least recently kept spillable blocks to disk until under budget (or under
        ``target_bytes``, an execution's smaller budget); return the bytes moved.

        A block that cannot be spilled (disk full, unwritable directory) stays in shared
        memory, still spillable later: nothing is lost; this pass stops there."""
        if os.getpid() != self._owner_pid:
            return 0
        target = self.budget_bytes if target_bytes is None else target_bytes
        moved = 0
        while True:
            with self._lock:
                if self.used_bytes <= target or not self._spillable:
                    return moved
                block_id, path = self._spillable.popitem(last=False)
                size = self._sizes.get(block_id)
            if size is None:
                continue
            dest = self._spill_path(block_id)
            try:
                os.makedirs(self.spill_dir, mode=0o700, exist_ok=True)
                shutil.copyfile(path, dest + ".tmp")
                os.rename(dest + ".tmp", dest)
            except FileNotFoundError as exc:
                if exc.filename == path or not os.path.exists(path):
                    continue  # freed meanwhile
                self._spill_failed(block_id, path, dest, exc)
                return moved
            except OSError as exc:
                self._spill_failed(block_id, path, dest, exc)
                return moved
            with self._lock:
                if self._sizes.pop(block_id, None) is None:  # freed while copying
                    _unlink(dest)
                    continue
                self.used_bytes -= size
                self._spilled[block_id] = size
                self.spilled_bytes_total += size
                owner = self._owners.get(block_id)
                if owner is not None:
                    self._spilled_by_owner[owner] = self._spilled_by_owner.get(owner, 0) + size
            _unlink(path)
            moved += size

    def take_spilled_bytes(self, owner: str) -> int:
        """Bytes spilled so far of blocks ``owner`` kept; forget the owner."""
        with self._lock:
            for block_id in [b for b, o in self._owners.items() if o == owner]:
                del self._owners[block_id]
            return self._spilled_by_owner.pop(owner, 0)
    def _spill_failed(self, block_id: str, path: str, dest: str, exc: OSError) -> None:
        with contextlib.suppress(OSError):
            os.unlink(dest + ".tmp")
        with self._lock:
            if block_id in self._sizes:  # still here: keep it, and spillable for a later try
                self._spillable[block_id] = path
                self._spillable.move_to_end(block_id, last=False)
            self.spill_failures += 1
        if self.spill_failures == 1:
            logger.warning("spilling block %s failed (%s: %s); it stays in shared memory",
                           block_id, type(exc).__name__, exc)

    def holds(self, block_id: str) -> bool:
        """Whether the block is accounted for (not freed), in memory or spilled."""
        with self._lock:
            return block_id in self._sizes or block_id in self._spilled

    def restore(self, block_id: str, source: str) -> bool:
        """Put a rebuilt copy (a file in the session directory) in place of a lost block;
        return False (and delete ``source``) if the block was freed meanwhile."""
        with self._lock:  # the rename too: free() must not miss the file
            if block_id not in self._sizes and block_id not in self._spilled:
                _unlink(source)
                return False
            spilled = self._spilled.pop(block_id, None)
            if spilled is not None:  # back in memory: its spill file is gone anyway
                self._sizes[block_id] = spilled
                self.used_bytes += spilled
            os.rename(source, self.block_path(block_id))
            return True

    def is_spilled(self, block_id: str) -> bool:
        with self._lock:
            return block_id in self._spilled

    # -- shutdown ---------------------------------------------------------------------
    def close(self) -> None:
        """Remove the session directory and the spill directory."""
        if self._closed or os.getpid() != self._owner_pid:
            return
        self._closed = True
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.spill_dir, ignore_errors=True)
        for fd in (self._lock_fd, self._spill_lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
