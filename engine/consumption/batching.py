"""The consumer side of ``iter_batches``: a small pipeline on a background thread.

Block references from the executor are read zero-copy, sliced and concatenated into exact
``batch_size`` batches, optionally shuffled through a local buffer, converted to the batch
format, collated, and queued ``prefetch_batches`` ahead of the consumer. Closing (or
dropping) the iterator stops the thread and the execution behind it. Every pass records
its timings in an :class:`~engine.consumption.iter_stats.IterStats`.

Each batch travels with an ``owned`` flag: ``True`` when its memory was made by this
pipeline for this batch alone (the shuffle buffer's output), ``False`` when it is a view of
a block that others may read (a read-only memory map of the block store, or a block a
materialized dataset keeps). Tensor conversion copies only what is not owned, so tensors
are zero-copy where they can be and always safe to modify in place.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from engine.block import rebatch, table_to_batch, validate_batch_format
from engine.consumption.iter_stats import IterStats
from engine.consumption.local_shuffle import shuffled_batches

Collate = Callable[[Any, bool], Any]  # (batch, owned) -> what the consumer gets


def batch_tables(blocks: Iterator[pa.Table], batch_size: int | None, drop_last: bool,
                 local_shuffle_buffer_size: int | None,
                 rng: np.random.Generator | None = None, *,
                 permuted: bool = False,
                 exclusive: Callable[[], bool] | None = None) -> Iterator[tuple[pa.Table, bool]]:
    """Blocks in, ``(table, owned)`` out: tables of exactly ``batch_size`` rows (the last
    one short unless ``drop_last``). ``permuted``: the blocks of a shuffled pass come in
    random order already (see ``engine.consumption.local_shuffle``). ``exclusive``: whether
    every block taken from ``blocks`` so far is this pass's alone (then the slices of them
    an unshuffled pass yields are owned too)."""
    owned = bool(local_shuffle_buffer_size)
    if local_shuffle_buffer_size:
        stream = shuffled_batches(blocks, batch_size or 256, local_shuffle_buffer_size,
                                  rng if rng is not None else np.random.default_rng(),
                                  permuted=permuted)
    else:
        stream = rebatch(blocks, batch_size)
    for table in stream:
        if drop_last and batch_size is not None and table.num_rows < batch_size:
            return
        yield table, owned or (exclusive is not None and exclusive())


class _Exclusive:
    """Whether every block a pass has read so far was its alone to modify (see
    ``BlockRef.exclusive``)."""

    def __init__(self) -> None:
        self.so_far = True

    def __call__(self) -> bool:
        return self.so_far


def _timed_blocks(refs: Iterator[Any], stats: IterStats,
                  before_wait: Callable[[], None] | None = None,
                  exclusive: _Exclusive | None = None) -> Iterator[pa.Table]:
    """The tables behind ``refs``; waiting for the execution and mapping timed apart.
    ``before_wait`` runs before each wait for the execution; ``exclusive`` learns whether
    each block is the pass's alone."""
    while True:
        if before_wait is not None:
            before_wait()
        started = time.perf_counter()
        try:
            ref = next(refs)
        except StopIteration:
            return
        got = time.perf_counter()
        stats.wait.add(got - started)
        if exclusive is not None and not getattr(ref, "exclusive", False):
            exclusive.so_far = False
        table = ref.get()
        stats.get.add(time.perf_counter() - got)
        yield table
        del table  # not held while the execution makes the next block


def iter_batches(refs: Iterator[Any], *, batch_size: int | None, batch_format: str | None,
                 prefetch_batches: int, drop_last: bool,
                 local_shuffle_buffer_size: int | None, local_shuffle_seed: Any,
                 collate_fn: Collate | None = None, finalize_fn: Callable[[Any], Any] |
                 None = None, stats: IterStats | None = None,
                 epoch: int = 0, permuted: bool = False) -> Iterator[Any]:
    """Batches of the blocks behind ``refs`` (an iterator that owns the execution).

    ``local_shuffle_seed`` is an int, a ``RandomSeedConfig`` or ``None``; ``epoch`` is the
    number of this pass, for a config that reseeds after each execution; ``permuted``: the
    blocks of a shuffled pass are each in random order already. ``collate_fn``
    gets each formatted batch and whether its memory is owned; ``finalize_fn`` its result
    (the host to device transfer). Timings go to ``stats``.
    """
    from engine.random_seed import rng_entropy

    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None; got {batch_size!r}")
    if local_shuffle_buffer_size is not None and local_shuffle_buffer_size < 1:
        raise ValueError("local_shuffle_buffer_size must be positive; got "
                         f"{local_shuffle_buffer_size}")
    if local_shuffle_buffer_size is not None and batch_size is None:
        raise ValueError("a local shuffle needs a batch_size: local_shuffle_buffer_size="
                         f"{local_shuffle_buffer_size} with batch_size=None")
    fmt = validate_batch_format(batch_format)
    rng = None
    if local_shuffle_buffer_size:
        rng = np.random.default_rng(rng_entropy(local_shuffle_seed, epoch))
    return _batches(refs, fmt, batch_size, prefetch_batches, drop_last,
                    local_shuffle_buffer_size, rng, collate_fn, finalize_fn,
                    stats if stats is not None else IterStats(), permuted)


def _batches(refs: Iterator[Any], fmt: str, batch_size: int | None, prefetch_batches: int,
             drop_last: bool, local_shuffle_buffer_size: int | None,
             rng: np.random.Generator | None, collate_fn: Collate | None,
             finalize_fn: Callable[[Any], Any] | None, stats: IterStats,
             permuted: bool = False) -> Iterator[Any]:
    """The generator behind :func:`iter_batches` (its arguments checked)."""
    source = iter(refs)

    wake = _Wake()

    def produce() -> Iterator[tuple[Any, int]]:
        """(batch, bytes of its table)"""
        exclusive = _Exclusive()
        blocks = _timed_blocks(source, stats, wake.flush, exclusive)
        batches = batch_tables(blocks, batch_size, drop_last, local_shuffle_buffer_size, rng,
                               permuted=permuted, exclusive=exclusive)
        fresh = bool(local_shuffle_buffer_size)  # every batch gathered into its own memory
        clock = time.perf_counter
        while True:
            started = clock()
            before = stats.wait.total + stats.get.total
            try:
                table, owned = next(batches)
            except StopIteration:
                return
            formatted = clock()
            stats.next.add(formatted - started - (stats.wait.total + stats.get.total - before))
            stats.rows += table.num_rows
            batch = table_to_batch(table, fmt)
            collated = clock()
            stats.format.add(collated - formatted)
            if collate_fn is not None:
                batch = collate_fn(batch, owned)
                done = clock()
                stats.collate.add(done - collated)
                collated = done
            if finalize_fn is not None:
                batch = finalize_fn(batch)
                stats.finalize.add(clock() - collated)
            # A freshly gathered table's buffers are its own, so their total is its size
            # (``nbytes``, which handles buffers shared with other tables, costs 50x more).
            yield batch, table.get_total_buffer_size() if fresh else table.nbytes

    def close_source() -> None:
        close = getattr(refs, "close", None)
        if close is not None:
            close()

    if prefetch_batches <= 0:
        batches = (batch for batch, _ in produce())
        yield from _timed_consumer(_closing(batches, close_source), stats)
        return
    yield from _timed_consumer(_background(produce(), prefetch_batches, close_source, wake),
                               stats)


def _closing(items: Iterator[Any], close: Callable[[], None]) -> Iterator[Any]:
    try:
        yield from items
    finally:
        close()


def _timed_consumer(items: Iterator[Any], stats: IterStats) -> Iterator[Any]:
    """Yield ``items``, timing how long the consumer waits for each one and how long it
    spends between them."""
    started = time.perf_counter()
    try:
        while True:
            asked = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            got = time.perf_counter()
            stats.blocked.add(got - asked)
            if stats.first_batch_s is None:
                stats.first_batch_s = got - started
            stats.batches += 1
            yield item
            stats.user.add(time.perf_counter() - got)  # the consumer's work on the batch
    finally:
        stats.total_s = time.perf_counter() - started
        close = getattr(items, "close", None)
        if close is not None:
            close()


# The background thread may run further ahead than ``prefetch_batches`` while what it holds
# is small: handing small batches over one at a time makes the two threads wait for each
# other (a GIL hand-off per batch), which cost a shuffled 8192-row pass a third of its time.
_LOOKAHEAD_BYTES = 8 << 20
_LOOKAHEAD_MAX_BATCHES = 256
# A consumer waiting for batches is woken when one is ready and it has waited this long
# (at once for a slower producer): one wake per few batches, not one per batch.
_WAKE_AFTER_S = 0.002
_POLL_S = 0.1  # a waiting consumer looks again this often (a backstop: it is woken)


class _Wake:
    """When the background thread wakes a consumer that waits for batches: once a batch is
    ready and the consumer has waited ``_WAKE_AFTER_S`` (at once for a slower producer),
    before the producer itself waits (for room, for the execution) and at the end; not
    for every batch, which costs both threads a switch per batch. The consumer wakes the
    producer only when it waits for room."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.waiting_since = 0.0  # when the consumer began to wait; 0: it does not
        self.pending = False  # batches are ready that the waiting consumer was not told of
        self.producer_waits = False  # the producer waits for room

    def added(self, room: bool) -> None:
        """A batch was added (called holding ``changed``); ``room``: more may follow."""
        since = self.waiting_since
        if not since:
            return
        if not room or time.perf_counter() - since >= _WAKE_AFTER_S:
            self.pending = False
            self.changed.notify_all()
        else:
            self.pending = True

    def flush(self) -> None:
        """The producer is about to wait: wake a consumer that waits for a batch."""
        if self.pending:
            with self.changed:
                self.pending = False
                self.changed.notify_all()


def _background(source: Iterator[tuple[Any, int]], depth: int,
                close_owner: Callable[[], None], wake: _Wake | None = None) -> Iterator[Any]:
    """Run ``source`` (batches and their sizes) on a daemon thread, at least ``depth``
    batches ahead of the consumer, or more while they hold under ``_LOOKAHEAD_BYTES``."""
    ready: collections.deque[tuple[Any, int]] = collections.deque()
    held = [0]  # bytes in ``ready``
    wake = wake if wake is not None else _Wake()
    changed = wake.changed
    stop = threading.Event()
    finished = threading.Event()
    failure: list[BaseException] = []

    def has_room() -> bool:
        return len(ready) < depth or (held[0] < _LOOKAHEAD_BYTES and
                                      len(ready) < _LOOKAHEAD_MAX_BATCHES)

    def run() -> None:
        try:
            for item, size in source:
                with changed:
                    while not has_room() and not stop.is_set():
                        wake.producer_waits = True
                        changed.wait(0.1)
                    wake.producer_waits = False
                    if stop.is_set():
                        break
                    ready.append((item, size))
                    held[0] += size
                    wake.added(has_room())
        except BaseException as exc:
            failure.append(exc)
        finally:
            with contextlib.suppress(Exception):
                source.close()  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                close_owner()
            with changed:
                finished.set()
                changed.notify_all()

    thread = threading.Thread(target=run, name="engine-iter-batches", daemon=True)
    thread.start()
    try:
        while True:
            with changed:
                while not ready and not finished.is_set():
                    wake.waiting_since = wake.waiting_since or time.perf_counter()
                    changed.wait(_POLL_S)
                wake.waiting_since = 0.0
                if not ready:
                    break
                item, size = ready.popleft()
                held[0] -= size
                if wake.producer_waits:
                    changed.notify_all()
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        with changed:
            ready.clear()
            changed.notify_all()
        while thread.is_alive():
            thread.join(timeout=0.1)
