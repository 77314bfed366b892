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

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from engine.block import concat_tables, rebatch, table_to_batch, validate_batch_format
from engine.consumption.iter_stats import IterStats

_END = object()

# The local shuffle, in Ray Data's proportions: a refill permutes at least
# 1.5 x buffer_size + batch_size rows and hands out batches while at least half a buffer is
# left, so the rest is carried into the next refill and mixed with the new rows.
_CARRY_FRACTION = 0.5
_REFILL_FRACTION = 1.5

Collate = Callable[[Any, bool], Any]  # (batch, owned) -> what the consumer gets


def shuffled_batches(tables: Iterator[pa.Table], batch_size: int, buffer_size: int,
                     rng: np.random.Generator) -> Iterator[pa.Table]:
    """Yield batches drawn at random from a buffer of at least ``buffer_size`` rows.

    One permutation and one ``take`` per refill: the buffer (the rows carried over and the
    new blocks, concatenated without a copy) is gathered once in a random order, and
    batches are zero-copy slices of the result. Rows left when the buffer falls to half
    its size are carried into the next refill.
    """
    min_rows = max(buffer_size, batch_size)
    carry = max(1, int(min_rows * _CARRY_FRACTION))
    refill_at = int(min_rows * _REFILL_FRACTION) + batch_size
    pending: list[pa.Table] = []
    pending_rows = 0
    shuffled: pa.Table | None = None
    head = 0  # rows of ``shuffled`` handed out

    def refill(limit: int | None = None) -> pa.Table:
        """Gather the carried rows and (up to ``limit`` rows in all of) the pending blocks
        in a random order."""
        nonlocal pending, pending_rows, head
        parts = []
        if shuffled is not None and head < shuffled.num_rows:
            parts.append(shuffled.slice(head))
        rows = sum(p.num_rows for p in parts)
        rest: list[pa.Table] = []
        for block in pending:
            room = block.num_rows if limit is None else max(0, limit - rows)
            if room >= block.num_rows:
                parts.append(block)
            else:
                if room:
                    parts.append(block.slice(0, room))
                rest.append(block.slice(room))
            rows += min(room, block.num_rows)
        merged = concat_tables(parts)
        pending, pending_rows, head = rest, sum(p.num_rows for p in rest), 0
        return merged.take(_indices(rng.permutation(merged.num_rows)))

    for table in tables:
        if not table.num_rows:
            continue
        pending.append(table)
        pending_rows += table.num_rows
        left = shuffled.num_rows - head if shuffled is not None else 0
        while left - batch_size < carry and left + pending_rows >= refill_at:
            # The first refill gathers only what it needs: the first batch comes sooner
            # when blocks are much larger than the buffer.
            shuffled = refill(refill_at if shuffled is None else None)
            while shuffled.num_rows - head - batch_size >= carry:
                yield shuffled.slice(head, batch_size)
                head += batch_size
            left = shuffled.num_rows - head
    if pending:
        shuffled = refill()
    while shuffled is not None and head < shuffled.num_rows:
        yield shuffled.slice(head, batch_size)
        head += batch_size


def _indices(values: np.ndarray) -> pa.Array:
    """``values`` (int64) as an Arrow array without a copy, and without the pandas import
    that converting a numpy array with ``pa.array`` starts (a cold start's quarter second)."""
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def batch_tables(blocks: Iterator[pa.Table], batch_size: int | None, drop_last: bool,
                 local_shuffle_buffer_size: int | None,
                 rng: np.random.Generator | None = None) -> Iterator[tuple[pa.Table, bool]]:
    """Blocks in, ``(table, owned)`` out: tables of exactly ``batch_size`` rows (the last
    one short unless ``drop_last``)."""
    owned = bool(local_shuffle_buffer_size)
    if local_shuffle_buffer_size:
        stream = shuffled_batches(blocks, batch_size or 256, local_shuffle_buffer_size,
                                  rng if rng is not None else np.random.default_rng())
    else:
        stream = rebatch(blocks, batch_size)
    for table in stream:
        if drop_last and batch_size is not None and table.num_rows < batch_size:
            return
        yield table, owned


def _timed_blocks(refs: Iterator[Any], stats: IterStats) -> Iterator[pa.Table]:
    """The tables behind ``refs``; waiting for the execution and mapping timed apart."""
    while True:
        started = time.perf_counter()
        try:
            ref = next(refs)
        except StopIteration:
            return
        got = time.perf_counter()
        stats.wait.add(got - started)
        table = ref.get()
        stats.get.add(time.perf_counter() - got)
        yield table


def iter_batches(refs: Iterator[Any], *, batch_size: int | None, batch_format: str | None,
                 prefetch_batches: int, drop_last: bool,
                 local_shuffle_buffer_size: int | None, local_shuffle_seed: Any,
                 collate_fn: Collate | None = None, finalize_fn: Callable[[Any], Any] |
                 None = None, stats: IterStats | None = None,
                 epoch: int = 0) -> Iterator[Any]:
    """Batches of the blocks behind ``refs`` (an iterator that owns the execution).

    ``local_shuffle_seed`` is an int, a ``RandomSeedConfig`` or ``None``; ``epoch`` is the
    number of this pass, for a config that reseeds after each execution. ``collate_fn``
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
                    stats if stats is not None else IterStats())


def _batches(refs: Iterator[Any], fmt: str, batch_size: int | None, prefetch_batches: int,
             drop_last: bool, local_shuffle_buffer_size: int | None,
             rng: np.random.Generator | None, collate_fn: Collate | None,
             finalize_fn: Callable[[Any], Any] | None, stats: IterStats) -> Iterator[Any]:
    """The generator behind :func:`iter_batches` (its arguments checked)."""
    source = iter(refs)

    def produce() -> Iterator[Any]:
        blocks = _timed_blocks(source, stats)
        batches = batch_tables(blocks, batch_size, drop_last, local_shuffle_buffer_size, rng)
        while True:
            started = time.perf_counter()
            before = stats.wait.total + stats.get.total
            try:
                table, owned = next(batches)
            except StopIteration:
                return
            formatted = time.perf_counter()
            stats.next.add(formatted - started - (stats.wait.total + stats.get.total - before))
            stats.rows += table.num_rows
            batch = table_to_batch(table, fmt)
            collated = time.perf_counter()
            stats.format.add(collated - formatted)
            if collate_fn is not None:
                batch = collate_fn(batch, owned)
                done = time.perf_counter()
                stats.collate.add(done - collated)
                collated = done
            if finalize_fn is not None:
                batch = finalize_fn(batch)
                stats.finalize.add(time.perf_counter() - collated)
            yield batch

    def close_source() -> None:
        close = getattr(refs, "close", None)
        if close is not None:
            close()

    if prefetch_batches <= 0:
        yield from _timed_consumer(_closing(produce(), close_source), stats)
        return
    yield from _timed_consumer(_background(produce(), prefetch_batches, close_source), stats)


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


def _background(source: Iterator[Any], depth: int, close_owner: Callable[[], None]) -> \
        Iterator[Any]:
    """Run ``source`` on a daemon thread, ``depth`` items ahead of the consumer."""
    out: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as exc:
            failure.append(exc)
        finally:
            with contextlib.suppress(Exception):
                source.close()  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                close_owner()
            while True:
                try:
                    out.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    if stop.is_set():
                        break

    thread = threading.Thread(target=run, name="engine-iter-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                break
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                out.get(timeout=0.1)
            thread.join(timeout=0.1)
