"""Logical all-to-all operators: each output row may depend on any input row.

One typed operator per operation, each with its own planner entry: ``Sort``, ``TopK`` (a
sort followed by a limit, written by the optimizer), ``Aggregate`` (groupby), ``MapGroups``,
``Join``, ``RandomShuffle``, ``Repartition``, ``RandomizeBlocks`` and ``Zip``. Sort keys are
``(column, "ascending" | "descending")`` pairs; nulls sort last.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from engine.logical.operators import LogicalOperator, UdfMap

SortKeys = tuple[tuple[str, str], ...]


@dataclass(frozen=True, eq=False)
class AllToAllOp(LogicalOperator):
    """Base: one input."""

    input: LogicalOperator

    @property
    def inputs(self) -> tuple[LogicalOperator, ...]:
        return (self.input,)


def describe_keys(keys: SortKeys) -> str:
    return ", ".join(k if d == "ascending" else f"{k} desc" for k, d in keys)


@dataclass(frozen=True, eq=False)
class Sort(AllToAllOp):
    sort_keys: SortKeys = ()
    boundaries: tuple[Any, ...] | None = None

    @property
    def name(self) -> str:
        return f"Sort({describe_keys(self.sort_keys)})"


@dataclass(frozen=True, eq=False)
class TopK(AllToAllOp):
    """The first ``k`` rows in sort order (``sort(...).limit(k)``)."""

    sort_keys: SortKeys = ()
    k: int = 0

    @property
    def name(self) -> str:
        return f"TopK({describe_keys(self.sort_keys)}, k={self.k})"


@dataclass(frozen=True, eq=False)
class Aggregate(AllToAllOp):
    """``groupby(keys).aggregate(*aggs)``; ``keys`` empty: one row for the dataset."""

    keys: tuple[str, ...] = ()
    aggs: tuple[Any, ...] = ()
    num_partitions: int | None = None

    @property
    def name(self) -> str:
        names = ", ".join(getattr(a, "name", "?") for a in self.aggs)
        return f"Aggregate(keys=[{', '.join(self.keys)}], {names})"


@dataclass(frozen=True, eq=False)
class GroupPartition(AllToAllOp):
    """Rows hash partitioned by ``keys``, each partition one block sorted by the keys (the
    exchange under ``map_groups``: every group whole in one block)."""

    keys: tuple[str, ...] = ()
    num_partitions: int | None = None

    @property
    def name(self) -> str:
        return f"GroupPartition({', '.join(self.keys)})"


@dataclass(frozen=True, eq=False)
class MapGroups(UdfMap):
    """``map_groups``: the UDF on each group of ``keys`` (blocks from GroupPartition)."""

    udf_name: str = "map_groups"
    keys: tuple[str, ...] = ()
    batch_format: str = "default"

    @property
    def name(self) -> str:
        return f"MapGroups({self.udf_name})"


@dataclass(frozen=True, eq=False)
class RandomShuffle(AllToAllOp):
    seed: Any = None  # a RandomSeedConfig
    num_blocks: int | None = None

    @property
    def name(self) -> str:
        return "RandomShuffle"


@dataclass(frozen=True, eq=False)
class Repartition(AllToAllOp):
    num_blocks: int | None = None
    target_num_rows_per_block: int | None = None
    shuffle: bool = False
    keys: tuple[str, ...] = ()
    sort: bool = False
    strict: bool = False

    @property
    def name(self) -> str:
        arg = (f"{self.num_blocks}" if self.num_blocks is not None
               else f"target_num_rows_per_block={self.target_num_rows_per_block}")
        if self.keys:
            arg += f", keys=[{', '.join(self.keys)}]"
        if self.shuffle:
            arg += ", shuffle"
        return f"Repartition({arg})"


@dataclass(frozen=True, eq=False)
class RandomizeBlocks(AllToAllOp):
    seed: Any = None

    @property
    def name(self) -> str:
        return "RandomizeBlockOrder"


@dataclass(frozen=True, eq=False)
class Join(LogicalOperator):
    left: LogicalOperator
    right: LogicalOperator
    join_type: str = "inner"
    left_on: tuple[str, ...] = ()
    right_on: tuple[str, ...] = ()
    left_suffix: str | None = None
    right_suffix: str | None = None
    num_partitions: int = 1

    @property
    def inputs(self) -> tuple[LogicalOperator, ...]:
        return (self.left, self.right)

    def with_inputs(self, *inputs: LogicalOperator) -> LogicalOperator:
        return replace(self, left=inputs[0], right=inputs[1])

    @property
    def name(self) -> str:
        right = "" if self.left_on == self.right_on else \
            f", right_on=[{', '.join(self.right_on)}]"
        return f"Join({self.join_type}, on=[{', '.join(self.left_on)}]{right})"


@dataclass(frozen=True, eq=False)
class Zip(LogicalOperator):
    input_ops: tuple[LogicalOperator, ...] = ()

    @property
    def inputs(self) -> tuple[LogicalOperator, ...]:
        return self.input_ops

    def with_inputs(self, *inputs: LogicalOperator) -> LogicalOperator:
        return replace(self, input_ops=tuple(inputs))

    @property
    def name(self) -> str:
        return "Zip"
