"""Exchanges fused with the task-pool maps before and after them.

``read_parquet(...).map_batches(f).random_shuffle()`` runs the read, ``f`` and the
partitioning in one task: the transform's output blocks never reach the store, only the
exchange's partitions do (one store write and one read of every row saved, and one task per
input instead of two). The planner fuses a map stage into the exchange when the stage runs on
the shared task workers with the exchange's resources (one CPU, no GPU, no concurrency cap),
see ``engine.physical.planner``. Likewise a map stage right after the exchange runs in its
reduce tasks (``FusedExchangeReduce``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from engine.block import concat_tables
from engine.physical.transform import MapTransformer


class FusedExchangeMap:
    """Run ``transformer`` over a bundle of input items (read tasks or blocks), then the
    exchange's map callable ``inner`` over its output as one table.

    The transform's outputs are concatenated without a copy (a chunked table) and handed on
    with the bundle's first sequence number, so a seeded partitioner draws the same ids
    whatever the transform's output blocking.
    """

    def __init__(self, transformer: MapTransformer, inner: Callable[..., Iterator[pa.Table]]
                 ) -> None:
        self.transformer = transformer
        self.inner = inner

    def __call__(self, items: list[Any], seqs: Sequence[int] = ()) -> Iterator[pa.Table]:
        first = seqs[0] if seqs else 0
        tables = [t for t in self.transformer(items, first) if isinstance(t, pa.Table)]
        real = [t for t in tables if t.num_columns or t.num_rows]
        if not real:
            yield from self.inner(tables[:1], [first] * len(tables[:1]))
            return
        yield from self.inner([concat_tables(real)], [first])


class FusedExchangeReduce:
    """Run an exchange's reduce callable, then ``transformer`` over the blocks it yields
    (streamed: each reduce output goes through the maps as it comes), so
    ``sort(...).write_parquet(...)`` writes each sorted partition in its reduce task
    instead of storing it for a write task to read back."""

    def __init__(self, reduce: Callable[..., Iterator[pa.Table]],
                 transformer: MapTransformer) -> None:
        self.reduce = reduce
        self.transformer = transformer

    def __call__(self, *args: Any) -> Iterator[Any]:
        index = args[-2]  # reduce arguments: (*sides, index, extra)
        yield from self.transformer(self.reduce(*args), index)  # type: ignore[arg-type]
