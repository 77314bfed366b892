"""Exchange plans: what the exchange operator runs for each all-to-all operation.

A plan answers the driver-side questions: how many partitions (``start``, called at
construction for a streaming map stage, or once all input arrived when ``gather_first``),
which map callable cuts a block of each input side, which reduce callable merges a
partition, and (plans without a map stage) which input blocks each output reads. Plans see
block references and a few sampled key values, never the rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from engine.block import number_array
from engine.physical.exchange.grouping import AggregateReduce
from engine.physical.exchange.partial_agg import (
    PartialAggregateMap,
    PartialAggregateReduce,
    supports_partials,
)
from engine.physical.exchange.tasks import (
    ConcatReduce,
    HashPartitioner,
    JoinReduce,
    PartitionMap,
    RandomPartitioner,
    RangePartitioner,
    ShuffleReduce,
    SliceReduce,
    SortReduce,
    TopKMap,
    combine,
    sort_table,
)
from engine.runtime.interfaces import BlockRef

SortKeys = Sequence[tuple[str, str]]
_SAMPLES_PER_BLOCK = 16


class ExchangePlan:
    """Base: one input side, a streaming map stage."""

    gather_first = False
    has_map_stage = True
    seeded = False  # random draws that must not depend on how inputs are bundled
    label = "Exchange"

    def start(self, counts: list[int], rows: list[int]) -> int:
        """Return the number of partitions (``counts``/``rows`` per side when gathered)."""
        raise NotImplementedError

    def observe(self, side: int, ref: BlockRef) -> None:
        """See an input block as it arrives (sorts sample it)."""

    def map_fn(self, side: int) -> Callable[..., Any]:
        raise NotImplementedError

    def reduce_fn(self) -> Callable[..., Any]:
        raise NotImplementedError

    def reduce_extra(self, index: int) -> Any:
        return None

    def direct_partitions(self, refs: list[list[BlockRef]]) -> \
            list[tuple[list[list[BlockRef]], Any]]:
        """Plans without a map stage: per output, the input blocks of each side it reads
        and the reduce's extra."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.label


class SortPlan(ExchangePlan):
    """Range partitions from sampled boundaries (or the user's ``boundaries`` on the first
    key); each reduce sorts one range. As many partitions as input blocks (as Ray Data)."""

    gather_first = True
    label = "sort: sample -> range partition -> sort"

    def __init__(self, sort_keys: SortKeys, boundaries: Sequence[Any] | None,
                 max_block_bytes: int | None, seed: int = 0) -> None:
        self.sort_keys = list(sort_keys)
        self.user_boundaries = list(boundaries) if boundaries is not None else None
        self.max_block_bytes = max_block_bytes
        self._samples: list[pa.Table] = []
        self._rng = np.random.default_rng(seed)
        self._boundaries: pa.Table | None = None
        self._partitions = 1

    def observe(self, side: int, ref: BlockRef) -> None:
        if self.user_boundaries is not None or not ref.num_rows:
            return
        table = ref.get()
        names = [k for k, _ in self.sort_keys]
        missing = [k for k in names if k not in table.column_names]
        if missing:
            raise ValueError(f"sort: key column(s) {missing} not found; the dataset has "
                             f"columns {table.column_names}")
        n = table.num_rows
        take = min(n, _SAMPLES_PER_BLOCK)
        idx = np.sort(self._rng.choice(n, size=take, replace=False))
        self._samples.append(table.select(names).take(number_array(idx)))

    def start(self, counts: list[int], rows: list[int]) -> int:
        if self.user_boundaries is not None:
            name, order = self.sort_keys[0]
            values = sorted(self.user_boundaries, reverse=order == "descending")
            self._boundaries = pa.table({name: pa.array(values)})
            self._partitions = len(values) + 1
            return self._partitions
        partitions = self._partitions = max(1, counts[0])
        samples = combine(self._samples)
        self._samples = []
        if samples is None or partitions == 1:
            self._boundaries = pa.table({})
            return partitions
        samples = samples.drop_null()
        ordered = sort_table(samples, self.sort_keys)
        m = ordered.num_rows
        picks = [min(m - 1, (i * m) // partitions) for i in range(1, partitions)] if m else []
        self._boundaries = ordered.take(number_array(np.array(picks, dtype=np.int64))) \
            if picks else ordered.slice(0, 0)
        return partitions

    def map_fn(self, side: int) -> Callable[..., Any]:
        # Few distinct samples give fewer boundaries than partitions: the last partitions
        # then stay empty (they still exist, as in Ray Data).
        assert self._boundaries is not None, "start() ran"
        return PartitionMap(RangePartitioner(self.sort_keys, self._boundaries),
                            self._partitions)

    def reduce_fn(self) -> Callable[..., Any]:
        return SortReduce(self.sort_keys, self.max_block_bytes)


class TopKPlan(ExchangePlan):
    """``sort(...).limit(k)``: each map keeps its bundle's first ``k`` rows, one reduce
    merges them; never a full sort."""

    label = "top-k: per-block top-k -> merge"

    def __init__(self, sort_keys: SortKeys, k: int) -> None:
        self.sort_keys = list(sort_keys)
        self.k = k

    def start(self, counts: list[int], rows: list[int]) -> int:
        return 1

    def map_fn(self, side: int) -> Callable[..., Any]:
        return TopKMap(self.sort_keys, self.k)

    def reduce_fn(self) -> Callable[..., Any]:
        return SortReduce(self.sort_keys, limit=self.k)


class HashPlan(ExchangePlan):
    """Hash partitions of ``keys`` with a given reduce (groupby, map_groups, repartition by
    keys); ``columns`` keeps only the columns the reduce needs."""

    def __init__(self, keys: Sequence[str], num_partitions: int, reduce: Callable[..., Any],
                 label: str, columns: Sequence[str] | None = None) -> None:
        self.keys = list(keys)
        self.partitions = num_partitions if keys else 1
        self.reduce = reduce
        self.label = label
        self.columns = columns

    def start(self, counts: list[int], rows: list[int]) -> int:
        return self.partitions

    def map_fn(self, side: int) -> Callable[..., Any]:
        return PartitionMap(HashPartitioner(self.keys), self.partitions, self.columns)

    def reduce_fn(self) -> Callable[..., Any]:
        return self.reduce


class PartialAggregatePlan(HashPlan):
    """groupby of built-ins: each map task aggregates its bundle to one row per group and
    partitions those partial rows; each reduce merges and finalizes its groups."""

    def __init__(self, keys: Sequence[str], aggs: list[Any], num_partitions: int) -> None:
        super().__init__(keys, num_partitions, PartialAggregateReduce(keys, aggs),
                         "groupby: partial aggregate -> hash partition -> merge")
        self.aggs = aggs
        self.partials_in = False  # set where the upstream tasks aggregate partially

    def map_fn(self, side: int) -> Callable[..., Any]:
        return PartialAggregateMap(self.keys, self.aggs, self.partitions, self.partials_in)


def aggregate_plan(keys: Sequence[str], aggs: list[Any], num_partitions: int) -> HashPlan:
    """groupby(keys).aggregate(*aggs): built-ins aggregate partially on the map side; any
    other aggregation gets whole groups (hash partitions by key) in its reduce."""
    if keys and supports_partials(aggs):
        return PartialAggregatePlan(keys, aggs, num_partitions)
    columns: list[str] | None = list(keys)
    for agg in aggs:
        read = agg.columns_read()
        if read is None or columns is None:
            columns = None
        else:
            columns += [c for c in read if c not in columns]
    return HashPlan(keys, num_partitions, AggregateReduce(keys, aggs),
                    "groupby: hash partition -> aggregate", columns)


class ShufflePlan(ExchangePlan):
    """Rows to random partitions, each permuted (random_shuffle, repartition(shuffle=True))."""

    label = "random_shuffle: random partition -> permute"

    def __init__(self, seed: int | None, num_partitions: int,
                 max_block_bytes: int | None) -> None:
        self.seed = seed
        self.seeded = seed is not None
        self.partitions = num_partitions
        self.max_block_bytes = max_block_bytes

    def start(self, counts: list[int], rows: list[int]) -> int:
        return self.partitions

    def map_fn(self, side: int) -> Callable[..., Any]:
        return PartitionMap(RandomPartitioner(self.seed), self.partitions)

    def reduce_fn(self) -> Callable[..., Any]:
        return ShuffleReduce(self.seed, self.max_block_bytes)


class JoinPlan(ExchangePlan):
    """Both sides hash partitioned on their keys; each reduce joins one pair."""

    label = "join: hash partition both sides -> hash join"

    def __init__(self, join_type: str, left_on: Sequence[str], right_on: Sequence[str],
                 left_suffix: str | None, right_suffix: str | None, num_partitions: int,
                 max_block_bytes: int | None) -> None:
        self.join_type = join_type
        self.on = [list(left_on), list(right_on)]
        self.suffixes = (left_suffix, right_suffix)
        self.partitions = num_partitions
        self.max_block_bytes = max_block_bytes
        self.label = f"join[{join_type}]: hash partition both sides -> hash join"

    def start(self, counts: list[int], rows: list[int]) -> int:
        return self.partitions

    def map_fn(self, side: int) -> Callable[..., Any]:
        return PartitionMap(HashPartitioner(self.on[side]), self.partitions)

    def reduce_fn(self) -> Callable[..., Any]:
        return JoinReduce(self.join_type, self.on[0], self.on[1], *self.suffixes,
                          max_block_bytes=self.max_block_bytes)


def _covering(refs: list[BlockRef], start: int, stop: int) -> tuple[list[BlockRef], int]:
    """The blocks holding rows ``[start, stop)`` of ``refs`` laid end to end, and the offset
    of ``start`` in the first of them."""
    out: list[BlockRef] = []
    offset = 0
    first = 0
    for ref in refs:
        n = ref.num_rows
        if offset + n > start and offset < stop:
            if not out:
                first = start - offset
            out.append(ref)
        offset += n
        if offset >= stop:
            break
    return out, first


class SplitPlan(ExchangePlan):
    """repartition without a shuffle: ``num_blocks`` outputs of about equal rows (or blocks
    of ``target_num_rows_per_block`` rows), each cut from consecutive input blocks, in
    order. Needs the row count of every block, so it runs once all input arrived."""

    gather_first = True
    has_map_stage = False

    def __init__(self, num_blocks: int | None, target_rows: int | None) -> None:
        self.num_blocks = num_blocks
        self.target_rows = target_rows
        self.label = (f"repartition: split and combine into {num_blocks} blocks"
                      if num_blocks else
                      f"repartition: blocks of {target_rows} rows")
        self._total = 0

    def start(self, counts: list[int], rows: list[int]) -> int:
        self._total = rows[0]
        if self.num_blocks is not None:
            return self.num_blocks
        assert self.target_rows, "num_blocks or target_num_rows_per_block is set"
        return max(1, math.ceil(self._total / self.target_rows)) if self._total else 0

    def _range(self, i: int, n: int) -> tuple[int, int]:
        if self.num_blocks is not None:
            return self._total * i // n, self._total * (i + 1) // n
        assert self.target_rows, "num_blocks or target_num_rows_per_block is set"
        return i * self.target_rows, min(self._total, (i + 1) * self.target_rows)

    def direct_partitions(self, refs: list[list[BlockRef]]) -> \
            list[tuple[list[list[BlockRef]], Any]]:
        blocks = [r for r in refs[0] if r.num_rows] or refs[0][:1]
        n = self.start([len(refs[0])], [sum(r.num_rows for r in refs[0])])
        out = []
        for i in range(n):
            start, stop = self._range(i, n)
            covering, first = _covering(blocks, start, stop)
            if not covering and blocks:  # an empty output keeps the schema
                covering, first = blocks[:1], 0
            out.append(([covering], [(first, stop - start)]))
        return out

    def reduce_fn(self) -> Callable[..., Any]:
        return SliceReduce()


class ZipPlan(ExchangePlan):
    """zip: each block of the first input, with the same rows of every other input."""

    gather_first = True
    has_map_stage = False
    label = "zip: align rows of every input"

    def __init__(self, num_inputs: int) -> None:
        self.num_inputs = num_inputs
        self._blocks = 0

    def start(self, counts: list[int], rows: list[int]) -> int:
        if len(set(rows)) > 1:
            raise ValueError(f"zip needs datasets of equal row counts; got {rows}")
        self._blocks = counts[0] if counts else 0
        return self._blocks

    def direct_partitions(self, refs: list[list[BlockRef]]) -> \
            list[tuple[list[list[BlockRef]], Any]]:
        out = []
        offset = 0
        for left in refs[0]:
            n = left.num_rows
            sides: list[list[BlockRef]] = [[left]]
            extra = [(0, n)]
            for other in refs[1:]:
                covering, first = _covering(other, offset, offset + n)
                sides.append(covering)
                extra.append((first, n))
            out.append((sides, extra))
            offset += n
        return out

    def reduce_fn(self) -> Callable[..., Any]:
        return SliceReduce()


__all__ = ["ConcatReduce", "ExchangePlan", "HashPlan", "JoinPlan", "ShufflePlan",
           "SortPlan", "SplitPlan", "TopKPlan", "ZipPlan", "aggregate_plan"]
