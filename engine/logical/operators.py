"""Logical operators: immutable descriptions of what a dataset computes.

Each ``Dataset`` method appends one. A plan is a DAG of these (``inputs`` point upstream).
They carry user functions and arguments as-is; the planner decides how they run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class ComputeStrategy:
    """How a map runs: ``"tasks"``, or an actor pool of ``min_size``..``max_size`` actors."""

    kind: str = "tasks"
    min_size: int = 1
    max_size: int | None = None
    max_tasks_in_flight_per_actor: int | None = None

    @property
    def is_actors(self) -> bool:
        return self.kind == "actors"


TASKS = ComputeStrategy()


@dataclass(frozen=True, eq=False)
class LogicalOperator:
    """Base class. ``inputs`` are the upstream operators (none for sources)."""

    @property
    def inputs(self) -> tuple[LogicalOperator, ...]:
        return ()

    def with_inputs(self, *inputs: LogicalOperator) -> LogicalOperator:
        """Return a copy of this operator reading from ``inputs``."""
        if not inputs:
            return self
        return replace(self, input=inputs[0])  # type: ignore[call-arg]

    @property
    def name(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        return self.name


# ------------------------------------------------------------------------------ sources


@dataclass(frozen=True, eq=False)
class Read(LogicalOperator):
    """Read a datasource. ``parallelism`` is the user's ``override_num_blocks`` (or -1)."""

    datasource: Any
    parallelism: int = -1
    ray_remote_args: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"Read{self.datasource.get_name()}"

    def describe(self) -> str:
        pushed = self.datasource.pushdown_description()
        return f"{self.name}[{pushed}]" if pushed else self.name


@dataclass(frozen=True, eq=False)
class InputData(LogicalOperator):
    """Blocks that already exist (from ``from_*`` or a materialized dataset)."""

    refs: tuple[Any, ...]
    source_name: str = "InputData"
    input_files: tuple[str, ...] = ()  # the files the blocks were read from, if any

    @property
    def name(self) -> str:
        return self.source_name


# ------------------------------------------------------------------------------ maps


@dataclass(frozen=True, eq=False)
class AbstractMap(LogicalOperator):
    """A one-input operator that transforms blocks independently (fusable)."""

    input: LogicalOperator

    @property
    def inputs(self) -> tuple[LogicalOperator, ...]:
        return (self.input,)

    # Resource shape: maps fuse only when these agree (like Ray Data).
    @property
    def compute(self) -> ComputeStrategy:
        return TASKS

    @property
    def num_cpus(self) -> float:
        return 1.0

    @property
    def num_gpus(self) -> float:
        return 0.0

    @property
    def row_preserving(self) -> bool:
        """Whether each input row gives exactly one output row, in order."""
        return False


@dataclass(frozen=True, eq=False)
class UdfMap(AbstractMap):
    """Fields shared by the maps that run a user's function (``map_batches``, ``map``,
    ``flat_map``, ``filter(fn)``): a function, or a callable class built once per actor
    with the constructor arguments, and the resources a task or actor asks for."""

    fn: Any = None
    udf_name: str = "udf"
    fn_args: tuple[Any, ...] = ()
    fn_kwargs: dict[str, Any] = field(default_factory=dict)
    fn_constructor_args: tuple[Any, ...] = ()
    fn_constructor_kwargs: dict[str, Any] = field(default_factory=dict)
    strategy: ComputeStrategy = TASKS
    cpus: float = 1.0
    gpus: float = 0.0
    memory: float | None = None
    max_retries: int | None = None
    resources: tuple[tuple[str, float], ...] = ()  # custom resources per task or actor

    @property
    def compute(self) -> ComputeStrategy:
        return self.strategy

    @property
    def num_cpus(self) -> float:
        return self.cpus

    @property
    def num_gpus(self) -> float:
        return self.gpus


@dataclass(frozen=True, eq=False)
class MapBatches(UdfMap):
    udf_name: str = "map_batches"
    batch_size: int | None = None
    batch_format: str = "default"
    zero_copy_batch: bool = False

    @property
    def name(self) -> str:
        return f"MapBatches({self.udf_name})"


@dataclass(frozen=True, eq=False)
class MapRows(UdfMap):
    udf_name: str = "map"

    @property
    def name(self) -> str:
        return f"Map({self.udf_name})"

    @property
    def row_preserving(self) -> bool:
        return True


@dataclass(frozen=True, eq=False)
class FlatMap(UdfMap):
    udf_name: str = "flat_map"

    @property
    def name(self) -> str:
        return f"FlatMap({self.udf_name})"


@dataclass(frozen=True, eq=False)
class Filter(UdfMap):
    """Keep rows where ``fn(row)`` is true, or where the expression ``expr`` is true."""

    expr: Any = None
    udf_name: str = "filter"

    @property
    def name(self) -> str:
        return f"Filter({self.expr!r})" if self.expr is not None else f"Filter({self.udf_name})"


@dataclass(frozen=True, eq=False)
class Project(AbstractMap):
    """Column operations evaluated on whole blocks.

    ``select`` keeps (and orders) columns; ``drop`` removes; ``rename`` maps old to new;
    ``exprs`` adds or replaces columns from expressions (``with_column``); ``udf_columns``
    adds columns from batch functions (``add_column``).
    """

    select: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    exprs: tuple[tuple[str, Any], ...] = ()
    udf_columns: tuple[tuple[str, Any, str], ...] = ()
    # an actor pool when the expressions hold callable-class UDFs (state across batches)
    strategy: ComputeStrategy = TASKS
    cpus: float = 1.0
    gpus: float = 0.0
    memory: float | None = None

    @property
    def compute(self) -> ComputeStrategy:
        return self.strategy

    @property
    def num_cpus(self) -> float:
        return self.cpus

    @property
    def num_gpus(self) -> float:
        return self.gpus

    @property
    def name(self) -> str:
        parts = []
        if self.exprs or self.udf_columns:
            parts.append("with_column " + ", ".join(
                [n for n, _ in self.exprs] + [n for n, _, _ in self.udf_columns]))
        if self.rename:
            parts.append("rename " + ", ".join(f"{a}->{b}" for a, b in self.rename))
        if self.drop:
            parts.append("drop " + ", ".join(self.drop))
        if self.select is not None:
            parts.append("select " + ", ".join(self.select))
        return f"Project({'; '.join(parts)})"

    @property
    def row_preserving(self) -> bool:
        return True


@dataclass(frozen=True, eq=False)
class PruneColumns(AbstractMap):
    """Keep only the columns in ``keep`` (an optimizer's projection: a block lacking one of
    them passes whole, so the operator that uses it reports the missing column as written)."""

    keep: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"PruneColumns({', '.join(self.keep)})"

    @property
    def row_preserving(self) -> bool:
        return True


@dataclass(frozen=True, eq=False)
class FusedMap(AbstractMap):
    """Consecutive maps (optionally starting with a Read) fused into one stage."""

    ops: tuple[LogicalOperator, ...] = ()

    @property
    def inputs(self) -> tuple[LogicalOperator, ...]:
        return () if isinstance(self.ops[0], Read) else (self.input,)

    @property
    def name(self) -> str:
        return "->".join(op.name for op in self.ops)

    def describe(self) -> str:
        return "->".join(op.describe() for op in self.ops)

    @property
    def compute(self) -> ComputeStrategy:
        return getattr(self.ops[-1], "compute", TASKS)  # type: ignore[no-any-return]

    @property
    def num_cpus(self) -> float:
        return max(getattr(op, "num_cpus", 1.0) for op in self.ops)

    @property
    def num_gpus(self) -> float:
        return max(getattr(op, "num_gpus", 0.0) for op in self.ops)

    @property
    def max_retries(self) -> int | None:
        """The strictest retry limit a fused step asked for (None: the context's)."""
        asked = [r for op in self.ops if (r := getattr(op, "max_retries", None)) is not None]
        if not asked:
            return None
        finite = [r for r in asked if r >= 0]  # -1 retries forever: the loosest of all
        return min(finite) if finite else -1

    @property
    def row_preserving(self) -> bool:
        return all(getattr(op, "row_preserving", False) for op in self.ops)


# ------------------------------------------------------------------------------ others


@dataclass(frozen=True, eq=False)
class Limit(LogicalOperator):
    input: LogicalOperator
    limit: int

    @property
    def inputs(self) -> tuple[LogicalOperator, ...]:
        return (self.input,)

    @property
    def name(self) -> str:
        return f"Limit[{self.limit}]"


@dataclass(frozen=True, eq=False)
class NAry(LogicalOperator):
    """An operator of several inputs: ``kind`` is ``"union"``."""

    input_ops: tuple[LogicalOperator, ...]
    kind: str

    @property
    def inputs(self) -> tuple[LogicalOperator, ...]:
        return self.input_ops

    def with_inputs(self, *inputs: LogicalOperator) -> LogicalOperator:
        return replace(self, input_ops=tuple(inputs))

    @property
    def name(self) -> str:
        return self.kind.capitalize()


@dataclass(frozen=True, eq=False)
class Write(AbstractMap):
    """Write every block with ``datasink`` (fuses with the maps before it)."""

    datasink: Any = None

    @property
    def name(self) -> str:
        return f"Write{self.datasink.get_name()}"


@dataclass(frozen=True, eq=False)
class PartialAggregate(AbstractMap):
    """Fold blocks into aggregation states per task; the driver merges them."""

    aggs: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        return "Aggregate(" + ", ".join(getattr(a, "name", "?") for a in self.aggs) + ")"
