"""Lineage: how to make each live stored block again, and the rebuilds under way.

For every block a task (not an actor call: an actor's state is not replayable) wrote to the
store, the runtime keeps the task's code, arguments and the output's index. When a block's
file is found missing (a worker cannot read an input, or the driver cannot read a ref), the
task that made it runs again and its output at that index takes the lost block's place;
whoever waited for the block goes on. If that task's own inputs are gone too, the rebuild
fails and so do its waiters, with ``ObjectLostError`` naming the block.

Plain data, no IO: the cluster's IO thread drives it. Entries of freed blocks are pruned
as the table grows, so it stays as large as the set of live blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Producer:
    """A task's recipe: enough to run it again."""

    name: str
    digest: bytes
    fn_bytes: bytes
    args_bytes: bytes
    index: int  # which of its outputs the block was


class BlockWaiter:
    """A caller outside the IO thread blocked until a block is rebuilt (or cannot be)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = False
        self.reason = ""

    def resolve(self, ok: bool, reason: str) -> None:
        self.ok = ok
        self.reason = reason
        self.event.set()


@dataclass
class Rebuild:
    """One rebuild under way: the task re-run (by key) and who waits for its block."""

    block_id: str
    index: int
    task_keys: list[int] = field(default_factory=list)  # tasks waiting to run again
    waiters: list[BlockWaiter] = field(default_factory=list)
    restored: bool = False


class Lineage:
    """Producers of live blocks and the rebuilds in progress.

    Args:
        is_live: Whether the store still accounts for a block (freed blocks are pruned).
        prune_every: Prune after this many new entries.
    """

    def __init__(self, is_live: Callable[[str], bool], prune_every: int = 512) -> None:
        self._is_live = is_live
        self._prune_every = prune_every
        self._since_prune = 0
        self._producers: dict[str, Producer] = {}
        self.rebuilds: dict[int, Rebuild] = {}  # rebuild task key -> rebuild
        self._by_block: dict[str, int] = {}  # block id -> rebuild task key

    def __len__(self) -> int:
        return len(self._producers)

    def record(self, block_id: str, producer: Producer) -> None:
        self._producers[block_id] = producer
        self._since_prune += 1
        if self._since_prune >= self._prune_every:
            self._since_prune = 0
            self._producers = {b: p for b, p in self._producers.items() if self._is_live(b)}

    def producer(self, block_id: str) -> Producer | None:
        """The recipe of a block that is still referenced, if known."""
        found = self._producers.get(block_id)
        if found is None or not self._is_live(block_id):
            return None
        return found

    def rebuilding(self, block_id: str) -> Rebuild | None:
        key = self._by_block.get(block_id)
        return None if key is None else self.rebuilds.get(key)

    def start(self, key: int, block_id: str, index: int) -> Rebuild:
        rebuild = Rebuild(block_id, index)
        self.rebuilds[key] = rebuild
        self._by_block[block_id] = key
        return rebuild

    def end(self, key: int) -> Rebuild | None:
        rebuild = self.rebuilds.pop(key, None)
        if rebuild is not None:
            self._by_block.pop(rebuild.block_id, None)
        return rebuild

    def fail_all(self, reason: str) -> None:
        """The runtime failed: nobody may wait for a rebuild any more."""
        for rebuild in self.rebuilds.values():
            for waiter in rebuild.waiters:
                waiter.resolve(False, reason)
        self.rebuilds.clear()
        self._by_block.clear()
