"""Bulk functions of all-to-all operators: they see every input block at once.

Each returns the output items. Blocks are read zero-copy (memory maps), sliced without
copying, and written back with ``cluster.put`` only where a new block is needed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.block import concat_tables
from engine.runtime.interfaces import is_block

if TYPE_CHECKING:
    from engine.physical.executor import ExecutorState

BulkFn = Callable[[list[list[Any]], "ExecutorState"], list[Any]]


def _blocks(items: list[Any]) -> list[Any]:
    return [i for i in items if is_block(i)]


def slice_rows(refs: list[Any], start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` across consecutive blocks, as one table (zero-copy slices)."""
    pieces = []
    offset = 0
    for ref in refs:
        n = ref.num_rows
        lo, hi = max(start, offset), min(stop, offset + n)
        if lo < hi:
            pieces.append(ref.get().slice(lo - offset, hi - lo))
        offset += n
        if offset >= stop:
            break
    return concat_tables(pieces) if pieces else pa.table({})


def randomize_blocks(inputs: list[list[Any]], state: ExecutorState, seed: int | None) -> \
        list[Any]:
    items = list(inputs[0])
    random.Random(seed).shuffle(items)
    return items


def repartition(inputs: list[list[Any]], state: ExecutorState, num_blocks: int,
                shuffle: bool = False, seed: int | None = None) -> list[Any]:
    refs = _blocks(inputs[0])
    if shuffle:
        refs = random_shuffle(inputs, state, seed, num_blocks)
    total = sum(r.num_rows for r in refs)
    out = []
    for i in range(num_blocks):
        start, stop = total * i // num_blocks, total * (i + 1) // num_blocks
        table = slice_rows(refs, start, stop)
        if not table.num_columns and refs:
            table = refs[0].get().slice(0, 0)
        out.append(state.cluster.put(table))
    return out


def random_shuffle(inputs: list[list[Any]], state: ExecutorState, seed: int | None,
                   num_blocks: int | None = None) -> list[Any]:
    refs = _blocks(inputs[0])
    if not refs:
        return []
    table = concat_tables([r.get() for r in refs])
    order = np.random.default_rng(seed).permutation(table.num_rows)
    shuffled = table.take(pa.array(order))
    n = num_blocks or len(refs)
    total = shuffled.num_rows
    return [state.cluster.put(shuffled.slice(total * i // n, total * (i + 1) // n - total * i
                                             // n)) for i in range(n)]


def zip_blocks(inputs: list[list[Any]], state: ExecutorState) -> list[Any]:
    """The columns of every input side by side, cut along the first input's blocks; a name
    already taken gets the first free suffix ``_1``, ``_2``... (as Ray Data)."""
    sides = [_blocks(items) for items in inputs]
    counts = [sum(r.num_rows for r in refs) for refs in sides]
    if len(set(counts)) > 1:  # a user error: fail the execution without logging a bug
        state.fail(ValueError(f"zip needs datasets of equal row counts; got {counts}"))
    left, others = sides[0], sides[1:]
    out = []
    offset = 0
    for ref in left:
        table = ref.get()
        stop = offset + table.num_rows
        for right in others:
            other = slice_rows(right, offset, stop)
            for name, column in zip(other.column_names, other.columns, strict=True):
                new_name = name
                suffix = 1
                while new_name in table.column_names:
                    new_name = f"{name}_{suffix}"
                    suffix += 1
                table = table.append_column(new_name, column)
        offset = stop
        out.append(state.cluster.put(table))
    return out


def bulk_function(kind: str, args: dict[str, Any]) -> BulkFn:
    """The bulk function of an all-to-all kind, with its arguments bound."""
    if kind == "randomize_blocks":
        return lambda inputs, state: randomize_blocks(inputs, state, args.get("seed"))
    if kind == "repartition":
        return lambda inputs, state: repartition(inputs, state, args["num_blocks"],
                                                 args.get("shuffle", False), args.get("seed"))
    if kind == "random_shuffle":
        return lambda inputs, state: random_shuffle(inputs, state, args.get("seed"),
                                                    args.get("num_blocks"))
    if kind == "zip":
        return zip_blocks
    raise TypeError(f"unknown all-to-all operation {kind!r}")
