"""The consumer side of ``iter_batches``: a small pipeline on a background thread.

Block references from the executor are read zero-copy, sliced and concatenated into exact
``batch_size`` batches, optionally shuffled through a local buffer, converted to the batch
format, and queued ``prefetch_batches`` ahead of the consumer. Closing (or dropping) the
iterator stops the thread and the execution behind it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from engine.block import concat_tables, table_to_batch, validate_batch_format
from engine.physical.transform import rebatch

_END = object()


def shuffled_batches(tables: Iterator[pa.Table], batch_size: int, buffer_size: int,
                     seed: int | None) -> Iterator[pa.Table]:
    """Yield random batches drawn from a buffer of at least ``buffer_size`` rows."""
    rng = np.random.default_rng(seed)
    buffer: pa.Table | None = None

    def draw(buf: pa.Table, n: int) -> tuple[pa.Table, pa.Table]:
        picked = rng.choice(buf.num_rows, size=n, replace=False)
        mask = np.ones(buf.num_rows, dtype=bool)
        mask[picked] = False
        return buf.take(pa.array(picked)), buf.filter(pa.array(mask))

    for table in tables:
        buffer = table if buffer is None else concat_tables([buffer, table])
        while buffer.num_rows >= buffer_size + batch_size:
            batch, buffer = draw(buffer, batch_size)
            yield batch
    while buffer is not None and buffer.num_rows:
        batch, buffer = draw(buffer, min(batch_size, buffer.num_rows))
        yield batch


def batch_tables(blocks: Iterator[pa.Table], batch_size: int | None, drop_last: bool,
                 local_shuffle_buffer_size: int | None,
                 local_shuffle_seed: int | None) -> Iterator[pa.Table]:
    """Blocks in, tables of exactly ``batch_size`` rows out (last one short unless
    ``drop_last``)."""
    if local_shuffle_buffer_size:
        stream = shuffled_batches(blocks, batch_size or 256, local_shuffle_buffer_size,
                                  local_shuffle_seed)
    else:
        stream = rebatch(blocks, batch_size)
    for table in stream:
        if drop_last and batch_size is not None and table.num_rows < batch_size:
            return
        yield table


def iter_batches(refs: Iterator[Any], *, batch_size: int | None, batch_format: str | None,
                 prefetch_batches: int, drop_last: bool,
                 local_shuffle_buffer_size: int | None, local_shuffle_seed: int | None,
                 collate_fn: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """Batches of the blocks behind ``refs`` (an iterator that owns the execution)."""
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None; got {batch_size!r}")
    if local_shuffle_buffer_size is not None and local_shuffle_buffer_size < 1:
        raise ValueError("local_shuffle_buffer_size must be positive; got "
                         f"{local_shuffle_buffer_size}")
    if local_shuffle_buffer_size is not None and batch_size is None:
        raise ValueError("a local shuffle needs a batch_size: local_shuffle_buffer_size="
                         f"{local_shuffle_buffer_size} with batch_size=None")
    fmt = validate_batch_format(batch_format)

    def produce() -> Iterator[Any]:
        blocks = (ref.get() for ref in refs)
        for table in batch_tables(blocks, batch_size, drop_last, local_shuffle_buffer_size,
                                  local_shuffle_seed):
            batch = table_to_batch(table, fmt)
            yield collate_fn(batch) if collate_fn is not None else batch

    if prefetch_batches <= 0:
        try:
            yield from produce()
        finally:
            close = getattr(refs, "close", None)
            if close is not None:
                close()
        return
    yield from _background(produce(), prefetch_batches, refs)


def _background(source: Iterator[Any], depth: int, owner: Any) -> Iterator[Any]:
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
            close = getattr(owner, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
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
