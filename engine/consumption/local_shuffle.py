"""The local shuffle buffer of ``iter_batches``: batches drawn at random from buffered rows.

Every block is permuted once as a whole (by the workers, fused into the tasks that make it,
when the dataset's own execution feeds the iterator; otherwise here, as it arrives). The
buffer is then a list of such permuted runs, and drawing a batch needs no gather of the
buffer: the number of rows a batch takes from each run is drawn from the multivariate
hypergeometric distribution (what a uniform draw without replacement from the whole buffer
would take from it), and because each run is in random order its next rows are a uniform
sample of what it has left. So every batch is a uniform random sample of a buffer of at least
``buffer_size`` rows beyond the batch (the rows left after each draw stay buffered, mixed
with the next blocks), at the cost of one gather per batch instead of one per row buffered.
Rows within a batch are placed by a random permutation (one per pass), so no part of a batch
comes from one block.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from engine.block import concat_tables, row_indices, take_rows

# Runs left shorter than this are merged (and permuted together) once there are more than
# _MAX_RUNS: drawing costs a slice per run, and proportional draws leave many short tails.
_MAX_RUNS = 32


def permute_rows(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """``table``'s rows in a uniformly random order (one gather into fresh memory)."""
    if table.num_rows <= 1:
        return table
    return take_rows(table, rng.permutation(table.num_rows))


def _fingerprint(table: pa.Table) -> int:
    """A number that is the same for blocks of the same contents (what a seeded pass uses
    to permute a block the same way whichever task made it and whenever it finished)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(table.num_rows.to_bytes(8, "little"))
    for column in table.columns:
        for chunk in column.chunks[:1] + column.chunks[-1:]:
            for buf in chunk.buffers():
                if buf is not None and buf.size:
                    digest.update(memoryview(buf)[:32])
                    digest.update(memoryview(buf)[-32:])
    return int.from_bytes(digest.digest(), "little")


def permute_block(table: pa.Table, entropy: Any = None) -> pa.Table:
    """The map step a local shuffle adds to the tasks that make its blocks: the block in a
    random order; with ``entropy`` (a seeded pass) the order depends only on it and on the
    block's contents."""
    seed = None if entropy is None else [*np.atleast_1d(entropy).tolist(), _fingerprint(table)]
    # SFC64: a tenth faster than the default generator at drawing a permutation
    return permute_rows(table, np.random.Generator(np.random.SFC64(seed)))


def shuffled_batches(tables: Iterator[pa.Table], batch_size: int, buffer_size: int,
                     rng: np.random.Generator, *, permuted: bool = False) -> \
        Iterator[pa.Table]:
    """Yield ``batch_size``-row batches (the last one may be short) drawn at random from a
    buffer that keeps at least ``buffer_size`` rows beyond each batch until the input ends.

    ``permuted``: each table arrives in random order already (``permute_block`` ran on it);
    otherwise each is permuted here first. Every batch is one contiguous table of its own.
    """
    keep = max(buffer_size, 1)
    runs: list[list[Any]] = []  # [permuted table, rows of it drawn]
    buffered = 0
    placement = row_indices(rng.permutation(batch_size))
    for table in tables:
        if not table.num_rows:
            continue
        runs.append([table if permuted else permute_rows(table, rng), 0])
        buffered += table.num_rows
        if buffered - batch_size >= keep:
            batches = (buffered - keep) // batch_size  # the draws until the next block
            yield from _draw_batches(runs, batches, batch_size, rng, placement)
            buffered -= batches * batch_size
        if len(runs) > _MAX_RUNS:
            _merge_short_runs(runs, batch_size, rng)
    if buffered >= batch_size:
        yield from _draw_batches(runs, buffered // batch_size, batch_size, rng, placement)
        buffered %= batch_size
    if buffered:  # the rest, in one short batch
        yield _place([run[0].slice(run[1]) for run in runs],
                     row_indices(rng.permutation(buffered)))


def _place(parts: list[pa.Table], placement: pa.Array) -> pa.Table:
    """The rows of ``parts`` as one table of fresh memory, in the order ``placement``
    gives them."""
    return take_rows(parts[0] if len(parts) == 1 else concat_tables(parts), placement)


# Batches whose counts are drawn together (bounds the counts array of a huge block drawn
# in small batches).
_COUNTED_TOGETHER = 1024


def _draw_batches(runs: list[list[Any]], batches: int, batch_size: int,
                  rng: np.random.Generator, placement: pa.Array) -> Iterator[pa.Table]:
    """Yield ``batches`` batches taken one after another from ``runs`` (as uniform draws
    without replacement from all their rows would), each placed by ``placement``; drop the
    runs they empty."""
    while batches:
        together = min(batches, _COUNTED_TOGETHER)
        counts = _batch_counts([t.num_rows - head for t, head in runs], together,
                               batch_size, rng)
        for per_run in counts.T.tolist():
            parts = []
            for run, count in zip(runs, per_run, strict=True):
                if count:
                    head = run[1]
                    parts.append(run[0].slice(head, count))
                    run[1] = head + count
            yield _place(parts, placement)
        runs[:] = [run for run in runs if run[1] < run[0].num_rows]
        batches -= together


def _batch_counts(left: list[int], batches: int, batch_size: int,
                  rng: np.random.Generator) -> np.ndarray:
    """How many rows each of ``batches`` successive batches of ``batch_size`` rows, drawn
    uniformly without replacement from runs with ``left`` rows each, takes from each run:
    a (runs, batches) array.

    Drawn run by run rather than batch by batch (the same distribution, a few numpy calls
    per block instead of one per batch): the rows all the batches take from a run are
    hypergeometric given what the runs after it hold, and where they fall among the batches'
    places still free is a uniform choice of places, multivariate hypergeometric over them.
    """
    counts = np.zeros((len(left), batches), dtype=np.int64)
    free = np.full(batches, batch_size, dtype=np.int64)  # places each batch has left
    wanted = batches * batch_size
    later = sum(left)
    for i, held in enumerate(left[:-1]):
        later -= held
        if not wanted:
            break
        taken = wanted if not later else int(rng.hypergeometric(held, later, wanted)) \
            if held else 0
        if taken:
            counts[i] = rng.multivariate_hypergeometric(free, taken)
            free -= counts[i]
            wanted -= taken
    counts[-1] += free  # the last run fills every place left
    return counts


def _merge_short_runs(runs: list[list[Any]], batch_size: int,
                      rng: np.random.Generator) -> None:
    """Replace the runs with fewer than ``batch_size`` rows left by one permuted run of
    all their rows (so drawing a batch stays a few slices)."""
    short = [run for run in runs if run[0].num_rows - run[1] < batch_size]
    if len(short) < 2:
        return
    merged = permute_rows(concat_tables([t.slice(head) for t, head in short]), rng)
    merged_ids = {id(run) for run in short}
    runs[:] = [run for run in runs if id(run) not in merged_ids] + [[merged, 0]]
