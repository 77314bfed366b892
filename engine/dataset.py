"""Dataset: a lazy, distributed collection of rows (the central class of the API).

Each transform returns a new ``Dataset`` with one more logical operator; nothing runs until
a consuming call (``materialize``, ``iter_batches``, ``take``, ``count``, ``write_*``...),
which optimizes the plan, lowers it to physical operators and streams it through the
executor. Names, arguments and defaults follow ``ray.data.Dataset``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine import session
from engine.arguments import (
    check_callable,
    check_filter_fn,
    check_gpu_batch_size,
    check_max_retries,
    check_resource_args,
    check_seed,
    check_udf_args,
    column_list,
    custom_resources,
    row_udf_fields,
    udf_name,
)
from engine.block import concat_tables, table_to_pandas, validate_batch_format
from engine.compute import expression_compute, resolve_compute
from engine.consumption.iteration import BatchIterable
from engine.context import DataContext
from engine.dataset_info import DatasetInfo
from engine.dataset_writes import DatasetWrites
from engine.logical import all_to_all as la
from engine.logical import operators as lo
from engine.logical.optimizer import optimize
from engine.logical.plan import LogicalPlan
from engine.random_seed import RandomSeedConfig, as_seed_config
from engine.runtime.interfaces import ValueOutput, is_block
from engine.schema import Schema

if TYPE_CHECKING:
    import pandas as pd

    from engine.grouped_data import GroupedData
    from engine.join_args import JoinType
    from engine.physical.executor import StreamingExecutor
    from engine.runtime.interfaces import Runtime

logger = logging.getLogger(__name__)


class Dataset(DatasetWrites, BatchIterable, DatasetInfo):
    """A lazy dataset. Build it with ``engine.range``, ``engine.read_*`` or ``from_*``."""

    def __init__(self, plan: LogicalPlan) -> None:
        self._plan = plan
        self._last_executor: StreamingExecutor | None = None

    def _with(self, op: lo.LogicalOperator) -> Dataset:
        ds = Dataset(LogicalPlan(op))
        ds._name = self._name
        return ds

    @property
    def _dag(self) -> lo.LogicalOperator:
        return self._plan.dag

    # =============================================================== transforms
    def map_batches(self, fn: Any, *, batch_size: int | str | None = None,
                    compute: Any = None, batch_format: str | None = "default",
                    zero_copy_batch: bool = True, fn_args: Iterable[Any] | None = None,
                    fn_kwargs: dict[str, Any] | None = None,
                    fn_constructor_args: Iterable[Any] | None = None,
                    fn_constructor_kwargs: dict[str, Any] | None = None,
                    num_cpus: float | None = None, num_gpus: float | None = None,
                    memory: float | None = None, concurrency: Any = None,
                    max_retries: int | None = None, **ray_remote_args: Any) -> Dataset:
        """Apply ``fn`` to batches of rows.

        Args:
            fn: A function ``batch -> batch`` (or yielding batches), or a callable class
                whose instances are built once per actor (set ``concurrency``).
            batch_size: Rows per batch; ``None`` (default) hands whole blocks.
            batch_format: ``"default"``/``"numpy"`` (dict of arrays), ``"pandas"``,
                ``"pyarrow"`` or ``None`` (pyarrow).
            zero_copy_batch: Hand read-only zero-copy batches (default) instead of copies.
            concurrency: ``n`` tasks at most for a function; ``n`` actors, or ``(min, max)``
                for an autoscaling pool, for a callable class.
            num_cpus, num_gpus, memory: Resources per task or actor.
            ray_remote_args: ``resources={"name": amount}`` asks for custom resources (on a
                Ray cluster); other Ray remote args mean nothing to this engine.

        Returns:
            A new dataset. Example: ``ds.map_batches(lambda b: {"x": b["x"] * 2})``.
        """
        check_callable(fn, "map_batches")
        check_gpu_batch_size(num_gpus, batch_size)
        if batch_size == "auto" or batch_size == "default":
            batch_size = None
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"map_batches: batch_size must be a positive int or None; got "
                             f"{batch_size!r}")
        validate_batch_format(batch_format)
        check_udf_args("map_batches", fn, fn_args, fn_kwargs, fn_constructor_args,
                        fn_constructor_kwargs)
        check_resource_args(num_cpus=num_cpus, num_gpus=num_gpus, memory=memory)
        check_max_retries(max_retries, "map_batches")
        strategy = resolve_compute(fn, compute, concurrency)
        return self._with(lo.MapBatches(
            self._dag, fn=fn, batch_size=batch_size, batch_format=batch_format or "pyarrow",
            zero_copy_batch=zero_copy_batch, fn_args=tuple(fn_args or ()),
            fn_kwargs=dict(fn_kwargs or {}),
            fn_constructor_args=tuple(fn_constructor_args or ()),
            fn_constructor_kwargs=dict(fn_constructor_kwargs or {}), strategy=strategy,
            cpus=1.0 if num_cpus is None else float(num_cpus),
            gpus=0.0 if num_gpus is None else float(num_gpus), memory=memory,
            max_retries=max_retries, udf_name=udf_name(fn),
            resources=custom_resources(ray_remote_args)))

    def map(self, fn: Callable[[dict[str, Any]], dict[str, Any]], *, compute: Any = None,
            fn_args: Iterable[Any] | None = None, fn_kwargs: dict[str, Any] | None = None,
            fn_constructor_args: Iterable[Any] | None = None,
            fn_constructor_kwargs: dict[str, Any] | None = None,
            num_cpus: float | None = None, concurrency: Any = None,
            **ray_remote_args: Any) -> Dataset:
        """Apply ``fn`` to each row (a dict) and keep the dict it returns.

        ``fn`` may be a callable class, built once per actor (``concurrency`` as for
        ``map_batches``). Example: ``ds.map(lambda r: {"id": r["id"] * 2})``.
        """
        check_callable(fn, "map")
        return self._with(lo.MapRows(self._dag, udf_name=udf_name(fn), **row_udf_fields(
            "map", fn, compute, concurrency, fn_args, fn_kwargs, fn_constructor_args,
            fn_constructor_kwargs, num_cpus, ray_remote_args)))

    def flat_map(self, fn: Callable[[dict[str, Any]], list[dict[str, Any]]], *,
                 compute: Any = None, fn_args: Iterable[Any] | None = None,
                 fn_kwargs: dict[str, Any] | None = None,
                 fn_constructor_args: Iterable[Any] | None = None,
                 fn_constructor_kwargs: dict[str, Any] | None = None,
                 num_cpus: float | None = None, concurrency: Any = None,
                 **ray_remote_args: Any) -> Dataset:
        """Apply ``fn`` to each row and keep every row of the list it returns (a function
        or a callable class, as for ``map``)."""
        check_callable(fn, "flat_map")
        return self._with(lo.FlatMap(self._dag, udf_name=udf_name(fn), **row_udf_fields(
            "flat_map", fn, compute, concurrency, fn_args, fn_kwargs, fn_constructor_args,
            fn_constructor_kwargs, num_cpus, ray_remote_args)))

    def filter(self, fn: Callable[[dict[str, Any]], bool] | None = None, expr: Any = None,
               *, compute: Any = None, fn_args: Iterable[Any] | None = None,
               fn_kwargs: dict[str, Any] | None = None,
               fn_constructor_args: Iterable[Any] | None = None,
               fn_constructor_kwargs: dict[str, Any] | None = None,
               num_cpus: float | None = None, concurrency: Any = None,
               **ray_remote_args: Any) -> Dataset:
        """Keep rows for which ``fn(row)`` is truthy, or (vectorized) where ``expr`` is true.

        ``fn`` may be a callable class, as for ``map``.
        Example: ``ds.filter(expr=col("score") > 0.5)``.
        """
        if (fn is None) == (expr is None):
            raise ValueError("Exactly one of 'fn' or 'expr' must be provided to filter.")
        if expr is not None and any(a is not None for a in (
                fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)):
            raise ValueError("filter: when 'expr' is used, 'fn_args/fn_kwargs' or "
                             "'fn_constructor_args/fn_constructor_kwargs' cannot be used.")
        if isinstance(expr, str):
            from engine.expressions import parse_predicate

            warnings.warn("filter(expr=<str>) is deprecated in Ray Data: build the predicate "
                          "with engine.expressions.col instead, e.g. col('x') > 5",
                          DeprecationWarning, stacklevel=2)
            expr = parse_predicate(expr)
        if fn is not None:
            check_filter_fn(fn)
        fields = row_udf_fields("filter", fn, compute, concurrency, fn_args, fn_kwargs,
                                 fn_constructor_args, fn_constructor_kwargs, num_cpus,
                                 ray_remote_args)
        return self._with(lo.Filter(self._dag, expr=expr,
                                    udf_name=udf_name(fn) if fn is not None else "expr",
                                    **fields))

    def limit(self, limit: int) -> Dataset:
        """The first ``limit`` rows. Upstream work stops once they exist."""
        if not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative int; got {limit!r}")
        return self._with(lo.Limit(self._dag, limit))

    # -- column operations ---------------------------------------------------------------
    def select_columns(self, cols: list[str] | str, **_: Any) -> Dataset:
        """Keep only ``cols``, in that order."""
        cols = column_list(cols, "select_columns")
        if len(set(cols)) != len(cols):
            raise ValueError(f"select_columns: duplicate column names in {cols}")
        return self._with(lo.Project(self._dag, select=tuple(cols)))

    def drop_columns(self, cols: list[str] | str, **_: Any) -> Dataset:
        """Remove ``cols``."""
        cols = column_list(cols, "drop_columns")
        if len(set(cols)) != len(cols):
            raise ValueError(f"drop_columns: duplicate column names in {cols}")
        return self._with(lo.Project(self._dag, drop=tuple(cols)))

    def rename_columns(self, names: dict[str, str] | list[str], **_: Any) -> Dataset:
        """Rename columns with a dict ``{old: new}``, or give every column a new name."""
        if isinstance(names, dict):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
                raise TypeError(f"rename_columns: names must map column names (str) to new "
                                f"names (str); got {names}")
            if len(set(names.values())) != len(names):
                raise ValueError(f"rename_columns: new names must be unique; got {names}")
            return self._with(lo.Project(self._dag, rename=tuple(names.items())))
        if isinstance(names, list):
            column_list(names, "rename_columns")
            current = self.columns() or []
            if len(names) != len(current):
                raise ValueError(f"rename_columns: got {len(names)} names for "
                                 f"{len(current)} columns {current}")
            renames = tuple(zip(current, names, strict=True))
            return self._with(lo.Project(self._dag, rename=renames))
        raise TypeError(f"rename_columns takes a dict or a list; got {type(names).__name__}")

    def with_column(self, column_name: str, expr: Any, *, compute: Any = None,
                    **ray_remote_args: Any) -> Dataset:
        """Add (or replace) ``column_name`` computed from the expression ``expr``.

        ``expr`` may hold UDFs (``engine.expressions.udf``); one built from a callable class
        runs on an actor pool (``compute``: an ``ActorPoolStrategy`` sizes it), so the
        instance keeps its state across batches. ``num_cpus``, ``num_gpus`` and ``memory``
        are what each task or actor asks for, as in ``map_batches``.
        Example: ``ds.with_column("total", col("price") * col("qty"))``.
        """
        if not isinstance(column_name, str):
            raise TypeError(f"with_column: column_name must be a str; got {column_name!r}")
        return self.with_columns({column_name: expr}, compute=compute, **ray_remote_args)

    def with_columns(self, exprs: Mapping[str, Any], *, compute: Any = None,
                     **ray_remote_args: Any) -> Dataset:
        """Add (or replace) several columns in one projection: ``exprs`` maps each new
        column's name to its expression, all evaluated on the existing columns, added in
        the mapping's order. ``compute`` as for ``with_column``.
        Example: ``ds.with_columns({"x2": col("x") * 2, "x3": col("x") * 3})``.
        """
        from engine.expressions import Expr

        if not isinstance(exprs, Mapping) or not exprs:
            raise TypeError(f"with_columns takes a non-empty dict of column name -> "
                            f"expression; got {exprs!r}")
        for name, expr in exprs.items():
            if not isinstance(name, str):
                raise TypeError(f"with_columns: column names must be str; got {name!r}")
            if not isinstance(expr, Expr):
                raise TypeError(f"with_column needs an expression such as col('a') * 2 for "
                                f"{name!r}; got {type(expr).__name__}")
        strategy = expression_compute(list(exprs.values()), compute)
        # resources as for map_batches; other Ray remote args mean nothing on one machine
        num_cpus, num_gpus, memory = (ray_remote_args.get(k)
                                      for k in ("num_cpus", "num_gpus", "memory"))
        check_resource_args(num_cpus=num_cpus, num_gpus=num_gpus, memory=memory)
        return self._with(lo.Project(
            self._dag, exprs=tuple(exprs.items()), strategy=strategy,
            cpus=1.0 if num_cpus is None else float(num_cpus),
            gpus=0.0 if num_gpus is None else float(num_gpus), memory=memory))

    def add_column(self, col: str, fn: Callable[[Any], Any], *,
                   batch_format: str | None = "pandas", compute: Any = None,
                   concurrency: Any = None, **_: Any) -> Dataset:
        """Add ``col`` from ``fn(batch)``, which returns one value per row."""
        if not isinstance(col, str):
            raise TypeError(f"add_column: col must be a column name (str); got {col!r}")
        check_callable(fn, "add_column")
        fmt = validate_batch_format(batch_format)
        return self._with(lo.Project(self._dag, udf_columns=((col, fn, fmt),)))

    def random_sample(self, fraction: float, *, seed: int | None = None) -> Dataset:
        """Keep each row with probability ``fraction``."""
        seed = check_seed(seed, "random_sample")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise TypeError(f"random_sample: fraction must be a number; got "
                            f"{type(fraction).__name__}")
        if not 0 <= fraction <= 1:
            raise ValueError(f"random_sample: fraction must be in [0, 1]; got {fraction}")
        from engine.sampling import RandomSampler

        return self.map_batches(RandomSampler(fraction, seed), batch_format="pyarrow")

    def randomize_block_order(self, *, seed: int | RandomSeedConfig | None = None) -> Dataset:
        """Shuffle the order of blocks (not rows)."""
        config = as_seed_config(seed, "randomize_block_order")
        return self._with(la.RandomizeBlocks(self._dag, seed=config))

    def repartition(self, num_blocks: int | None = None,
                    target_num_rows_per_block: int | None = None, *, strict: bool = False,
                    shuffle: bool = False, keys: list[str] | str | None = None,
                    sort: bool = False) -> Dataset:
        """Redistribute the rows into exactly ``num_blocks`` blocks, or into blocks of
        ``target_num_rows_per_block`` rows.

        Args:
            num_blocks: Output blocks. Without ``shuffle``, consecutive rows are split and
                combined in order (no full shuffle).
            target_num_rows_per_block: Blocks of this many rows (the last may be smaller);
                exclusive with ``num_blocks`` and ``shuffle``.
            strict: Accepted for Ray Data compatibility: blocks always hold exactly
                ``target_num_rows_per_block`` rows but the last.
            shuffle: Distribute rows at random (a full distributed shuffle).
            keys: Hash partition by these columns: equal keys end in one block.
            sort: With ``keys``, sort each block by them.

        Example: ``ray.data.range(100).repartition(10).materialize().num_blocks() == 10``.
        """
        if num_blocks is None and target_num_rows_per_block is None:
            raise ValueError("Either `num_blocks` or `target_num_rows_per_block` must be set")
        if num_blocks is not None and target_num_rows_per_block is not None:
            raise ValueError("Only one of `num_blocks` or `target_num_rows_per_block` must be "
                             "set, but not both.")
        if target_num_rows_per_block is not None:
            if isinstance(target_num_rows_per_block, bool) or \
                    not isinstance(target_num_rows_per_block, int) or \
                    target_num_rows_per_block < 1:
                raise ValueError(f"repartition: target_num_rows_per_block must be a "
                                 f"positive int; got {target_num_rows_per_block!r}")
            if shuffle:
                raise ValueError("`shuffle` must be False when `target_num_rows_per_block` "
                                 "is set.")
            if keys:
                raise ValueError("repartition: keys cannot be combined with "
                                 "target_num_rows_per_block")
        if num_blocks is not None and (isinstance(num_blocks, bool) or
                                       not isinstance(num_blocks, int) or num_blocks < 1):
            raise ValueError(f"repartition: num_blocks must be a positive int; got "
                             f"{num_blocks!r}")
        key_cols = tuple(column_list(keys, "repartition")) if keys else ()
        if sort and not key_cols:
            raise ValueError("repartition: sort=True needs keys")
        return self._with(la.Repartition(
            self._dag, num_blocks=num_blocks,
            target_num_rows_per_block=target_num_rows_per_block, shuffle=shuffle,
            keys=key_cols, sort=sort, strict=strict))

    def random_shuffle(self, *, seed: int | RandomSeedConfig | None = None,
                       num_blocks: int | None = None, **ray_remote_args: Any) -> Dataset:
        """Shuffle all rows: each block is cut into random partitions on the workers and
        every partition is permuted (a distributed shuffle; nothing gathers all rows).

        ``seed`` (an int, or a ``RandomSeedConfig``) makes the result reproducible.
        """
        config = as_seed_config(seed, "random_shuffle")
        if num_blocks is not None and (isinstance(num_blocks, bool) or
                                       not isinstance(num_blocks, int) or num_blocks < 1):
            raise ValueError(f"random_shuffle: num_blocks must be a positive int; got "
                             f"{num_blocks!r}")
        return self._with(la.RandomShuffle(self._dag, seed=config, num_blocks=num_blocks))

    def sort(self, key: str | list[str], descending: bool | list[bool] = False,
             boundaries: list[int | float] | None = None) -> Dataset:
        """Sort by ``key`` (a column or a list of columns); stable for ties, nulls last.

        Args:
            key: The column(s) to sort by.
            descending: One bool for every key, or one per key.
            boundaries: Values of the first key at which output blocks are cut (the output
                has ``len(boundaries) + 1`` blocks); by default sampled, one output block
                per input block.

        Example: ``ds.sort(["a", "b"], descending=[False, True])``.
        """
        sort_keys = sort_key_pairs(key, descending)
        numbers_only = boundaries is None or (isinstance(boundaries, (list, tuple)) and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in boundaries))
        if not numbers_only:
            raise ValueError(f"sort: boundaries must be a list of numbers; got {boundaries!r}")
        self._check_columns([k for k, _ in sort_keys], "sort")
        return self._with(la.Sort(self._dag, sort_keys=sort_keys,
                                  boundaries=None if boundaries is None else
                                  tuple(boundaries)))

    def groupby(self, key: str | list[str] | None, num_partitions: int | None = None) -> \
            GroupedData:
        """Group rows by ``key`` (a column, several, or ``None`` for a single group); the
        result's ``count``/``sum``/``min``/``max``/``mean``/``std``/``aggregate`` give one row
        per group and ``map_groups`` runs a function on each group.

        Example: ``ds.groupby("A").sum("B")``.
        """
        from engine.grouped_data import GroupedData

        if key is not None and not (isinstance(key, str) or (
                isinstance(key, (list, tuple)) and all(isinstance(k, str) for k in key))):
            raise ValueError(f"groupby: key must be a column name, a list of column names "
                             f"or None; got {key!r}")
        if num_partitions is not None and (isinstance(num_partitions, bool) or
                                           not isinstance(num_partitions, int) or
                                           num_partitions < 1):
            raise ValueError(f"groupby: num_partitions must be a positive int; got "
                             f"{num_partitions!r}")
        grouped = GroupedData(self, key, num_partitions)
        grouped._check_keys()
        return grouped

    def join(self, ds: Dataset, join_type: str | JoinType, num_partitions: int,
             on: tuple[str, ...] | list[str] = ("id",),
             right_on: tuple[str, ...] | list[str] | None = None,
             left_suffix: str | None = None, right_suffix: str | None = None, *,
             partition_size_hint: int | None = None,
             aggregator_ray_remote_args: dict[str, Any] | None = None,
             validate_schemas: bool = False) -> Dataset:
        """Join with ``ds`` on key columns: both sides are hash partitioned into
        ``num_partitions`` partitions and each pair is joined with Arrow's hash join.

        Args:
            join_type: ``"inner"``, ``"left_outer"``, ``"right_outer"``, ``"full_outer"``,
                ``"left_semi"``, ``"right_semi"``, ``"left_anti"`` or ``"right_anti"``. Null
                keys never match.
            num_partitions: Partitions (and output blocks).
            on: Key columns of this dataset; ``right_on`` those of ``ds`` (default ``on``).
            left_suffix, right_suffix: Appended to non-key columns present on both sides.
            partition_size_hint: Accepted for Ray Data compatibility.
            validate_schemas: Check now that the key columns exist on both sides.

        Example: ``left.join(right, "inner", 4, on=("id",))``.
        """
        from engine.join_args import JoinType, check_join_args

        if isinstance(join_type, JoinType):
            join_type = join_type.value
        left_on, right_on_cols = check_join_args(self, ds, join_type, num_partitions, on,
                                                 right_on, validate_schemas)
        return self._with(la.Join(self._dag, ds._dag, join_type=join_type, left_on=left_on,
                                  right_on=right_on_cols, left_suffix=left_suffix,
                                  right_suffix=right_suffix, num_partitions=num_partitions))

    def _check_columns(self, names: list[str], what: str) -> None:
        """Raise early when the schema is known without running and lacks ``names``."""
        columns = self.columns(fetch_if_missing=False)
        if columns is None or not columns:
            return
        missing = [n for n in names if n not in columns]
        if missing:
            raise ValueError(f"{what}: column(s) {missing} not found; the dataset has "
                             f"columns {columns}")

    def union(self, *other: Dataset) -> Dataset:
        """The rows of this dataset followed by those of ``other`` datasets."""
        for o in other:
            if not isinstance(o, Dataset):
                raise TypeError(f"union takes datasets; got {type(o).__name__}")
        if not other:
            return self
        return self._with(lo.NAry((self._dag, *[o._dag for o in other]), "union"))

    def zip(self, *other: Dataset) -> Dataset:
        """Columns of this dataset side by side with those of the ``other`` datasets (same
        row counts); a repeated name gets a suffix: ``a``, ``a_1``, ``a_2``..."""
        if not other:
            raise TypeError("zip needs at least one other dataset")
        for o in other:
            if not isinstance(o, Dataset):
                raise TypeError(f"zip takes datasets; got {type(o).__name__}")
        return self._with(la.Zip(input_ops=(self._dag, *[o._dag for o in other])))

    # =============================================================== execution
    def _optimized(self) -> LogicalPlan:
        ctx = DataContext.get_current()
        if not ctx.optimizer_enabled:
            return self._plan
        return optimize(self._plan, ctx.disabled_rules)

    def _executor(self, plan: LogicalPlan | None = None, *, keep_outputs: bool = False,
                  preserve_order: bool = False, in_driver: bool = False) -> StreamingExecutor:
        """A fresh execution; ``in_driver``: this process consumes its blocks itself (so
        tasks without user code may run on its threads, ``DataContext.reads_in_driver``)."""
        from engine.physical.executor import StreamingExecutor
        from engine.physical.planner import engine_tasks_only
        from engine.physical.planner import plan as physical_plan

        ctx = run_ctx = DataContext.get_current()
        cluster: Runtime = session.get_cluster()
        if preserve_order and not ctx.execution_options.preserve_order:
            run_ctx = ctx.copy()
            run_ctx.execution_options.preserve_order = True
        ops = physical_plan(plan or self._optimized(), cluster, run_ctx)
        if in_driver and ctx.reads_in_driver and engine_tasks_only(ops):
            cluster = session.driver_tasks() or cluster
        ctx._execution_idx += 1  # reseeds RandomSeedConfig(reseed_after_execution=True)
        executor = StreamingExecutor(cluster, run_ctx, ops, resources=session.resource_manager(),
                                     keep_outputs=keep_outputs)
        self._last_executor = executor
        return executor

    def iter_internal_refs(self) -> Iterator[Any]:
        """Stream the output block references of a fresh execution."""
        return self._executor().iter_output()

    def _collect(self) -> list[Any]:
        return list(self.iter_internal_refs())

    def _tables(self) -> list[pa.Table]:
        return [ref.get() for ref in self._collect() if is_block(ref)]

    def materialize(self) -> MaterializedDataset:
        """Execute and keep every block in the store; returns a ``MaterializedDataset``."""
        # Kept blocks may spill as soon as they are produced: a materialize() larger than
        # the memory budget moves to disk instead of filling RAM.
        refs = [r for r in self._executor(keep_outputs=True).iter_output() if is_block(r)]
        ds = MaterializedDataset(refs, input_files=self.input_files())
        ds._last_executor = ds._production_executor = self._last_executor
        ds._name = self._name
        return ds

    # =============================================================== consumption
    def _block_refs(self) -> Iterator[Any]:
        return (r for r in self._executor(in_driver=True).iter_output() if is_block(r))

    def _ordered_block_refs(self) -> Iterator[Any]:
        return (r for r in self._executor(preserve_order=True, in_driver=True).iter_output()
                if is_block(r))

    def _permuted_block_refs(self, entropy: Any, ordered: bool) -> Iterator[Any] | None:
        # The tasks that make each block permute it (fused into the read or the last map,
        # or a pass over kept blocks): the consumer's shuffle then only draws from
        # permuted runs. Not after an actor pool, a GPU map or an all-to-all step: a task
        # stage of its own there would compete for their slots; the consumer permutes.
        from engine.consumption.local_shuffle import permute_block

        last = self._plan.dag
        fusable = isinstance(last, (lo.Read, lo.InputData)) or (
            isinstance(last, (lo.UdfMap, lo.Project, lo.PruneColumns, lo.FusedMap))
            and not last.compute.is_actors and not last.num_gpus)
        if not fusable:
            return None

        step = functools.partial(permute_block, entropy=entropy)
        step.__name__ = "local_shuffle"  # type: ignore[attr-defined]
        step.engine_internal = True  # type: ignore[attr-defined]  # no user code in it
        permuting = self.map_batches(step, batch_format="pyarrow", batch_size=None,
                                     zero_copy_batch=True)
        refs = permuting._ordered_block_refs() if ordered else permuting._block_refs()
        self._keep_stats_of(permuting)
        return refs

    def take(self, limit: int = 20) -> list[dict[str, Any]]:
        """The first ``limit`` rows, as dicts."""
        limited = self.limit(limit)
        rows = list(itertools.islice(limited.iter_rows(), limit))
        self._keep_stats_of(limited)
        return rows

    def _keep_stats_of(self, ds: Dataset) -> None:
        """Let ``self.stats()`` report a run made on a derived dataset (``take`` runs
        ``self.limit(n)``), as Ray Data does; a materialized dataset keeps the stats of
        its production."""
        if not isinstance(self, MaterializedDataset) and ds._last_executor is not None:
            self._last_executor = ds._last_executor

    def take_all(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every row, as dicts; raises ``ValueError`` if there are more than ``limit``."""
        rows = []
        for row in self.iter_rows():
            rows.append(row)
            if limit is not None and len(rows) > limit:
                raise ValueError(f"the dataset has more than the given limit of {limit} rows")
        return rows

    def take_batch(self, batch_size: int = 20, *,
                   batch_format: str | None = "default") -> Any:
        """The first ``batch_size`` rows as one batch in ``batch_format``; ``ValueError``
        if the dataset is empty."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"take_batch: batch_size must be a positive int; got "
                             f"{batch_size!r}")
        fmt = validate_batch_format(batch_format)
        limited = self.limit(batch_size)
        tables = limited._tables()
        self._keep_stats_of(limited)
        from engine.block import table_to_batch

        table = concat_tables(tables) if tables else pa.table({})
        if not table.num_rows:
            raise ValueError("take_batch: the dataset is empty")
        return table_to_batch(table, fmt)

    def show(self, limit: int = 20) -> None:
        """Print the first ``limit`` rows."""
        for row in self.take(limit):
            print(row)

    def count(self) -> int:
        """The number of rows (from metadata when known, without reading data)."""
        dag = self._optimized().dag
        known = _known_row_count(dag)
        if known is not None:
            return known
        if isinstance(dag, lo.AbstractMap) and not dag.compute.is_actors:
            # Counted where the rows are made: where the count fuses into the last task
            # stage (the common case), no block reaches the store at all.
            from engine.aggregate import Count

            result = self.aggregate(Count())
            return int(result["count()"]) if result else 0
        return sum(getattr(r, "num_rows", 0) for r in self.iter_internal_refs())

    def schema(self, fetch_if_missing: bool = True) -> Schema | None:
        """The schema: column names and types."""
        known = _known_schema(self._dag)
        if known is not None:
            return Schema(known)
        if not fetch_if_missing:
            return None
        for ref in self.limit(1)._block_refs():
            if ref.schema is not None and len(ref.schema):
                return Schema(ref.schema)
        return None

    def columns(self, fetch_if_missing: bool = True) -> list[str] | None:
        """The column names; ``None`` when the schema is unknown (as in Ray Data: e.g.
        ``from_items([])``)."""
        schema = self.schema(fetch_if_missing)
        return None if schema is None else schema.names

    def to_pandas(self, limit: int | None = None) -> pd.DataFrame:
        """All rows as one DataFrame; ``ValueError`` if more than ``limit`` rows."""
        tables = self._tables()
        total = sum(t.num_rows for t in tables)
        if limit is not None and total > limit:
            raise ValueError(f"the dataset has {total} rows, more than limit={limit}; pass "
                             "a larger limit or use iter_batches()")
        if not tables:
            import pandas as pd

            return pd.DataFrame()
        return table_to_pandas(concat_tables(tables))

    def to_arrow_refs(self) -> list[Any]:
        """References to every block (``pyarrow.Table``s); ``ref.get()`` reads one."""
        return list(self.materialize()._refs)

    def num_blocks(self) -> int:
        """The number of blocks (executes the dataset if needed)."""
        return self.materialize().num_blocks()

    def size_bytes(self) -> int:
        """Bytes of all blocks in memory."""
        return sum(r.size_bytes for r in self.materialize()._refs)

    def input_files(self) -> list[str]:
        """The files this dataset reads."""
        files: list[str] = []
        for op in self._plan.sources():
            if isinstance(op, lo.Read):
                files.extend(op.datasource.input_files())
            elif isinstance(op, lo.InputData):
                files.extend(op.input_files)
                for ref in op.refs:
                    files.extend(getattr(ref, "input_files", ()))
        return list(dict.fromkeys(files))

    def to_numpy_refs(self, *, column: str | None = None) -> list[Any]:
        """References whose ``get()`` returns each block as numpy (a dict, or the array of
        ``column``)."""
        from engine.refs_api import FormattedRef

        refs = self.to_arrow_refs()
        if column is not None:
            names = {n for r in refs if r.schema is not None for n in r.schema.names}
            if refs and column not in names:
                raise ValueError(f"to_numpy_refs: column {column!r} not found; the dataset "
                                 f"has columns {sorted(names)}")
        return [FormattedRef(r, "numpy", column) for r in refs]

    def to_pandas_refs(self) -> list[Any]:
        """References whose ``get()`` returns each block as a DataFrame."""
        from engine.refs_api import FormattedRef

        return [FormattedRef(r, "pandas", None) for r in self.to_arrow_refs()]

    # -- splits --------------------------------------------------------------------------
    def split(self, n: int, *, equal: bool = False, locality_hints: Any = None) -> \
            list[MaterializedDataset]:
        """Materialize and split into ``n`` datasets (of exactly equal rows if ``equal``,
        dropping the remainder; else whole blocks balanced by rows)."""
        from engine import splits

        return splits.split(self, n, equal)

    def split_at_indices(self, indices: list[int]) -> list[MaterializedDataset]:
        """Split at the given row indices into ``len(indices) + 1`` datasets."""
        from engine import splits

        return splits.split_at_indices(self, list(indices))

    def split_proportionately(self, proportions: list[float]) -> list[MaterializedDataset]:
        """Split by fractions of the rows; the last split takes the rest."""
        from engine import splits

        return splits.split_proportionately(self, list(proportions))

    def train_test_split(self, test_size: float | int, *, shuffle: bool = False,
                         seed: int | None = None, **_: Any) -> \
            tuple[MaterializedDataset, MaterializedDataset]:
        """Split into (train, test); ``test_size`` is a fraction or a row count."""
        from engine import splits

        return splits.train_test_split(self, test_size, shuffle, seed)

    def streaming_split(self, n: int, *, equal: bool = False,
                        locality_hints: Any = None) -> list[Any]:
        """``n`` ``DataIterator``s that consume one execution per pass concurrently (one
        per trainer rank: threads, or processes the iterators are passed to); ``equal``
        gives each exactly ``total // n`` rows."""
        from engine.splits.streaming import streaming_split

        return streaming_split(self, n, equal)

    # -- aggregates ----------------------------------------------------------------------
    def aggregate(self, *aggs: Any) -> dict[str, Any] | None:
        """Compute aggregations (``AggregateFn``s) over the whole dataset.

        Partial states are computed per block on the workers and merged in the driver.
        Returns a dict of output name to value.
        """
        from engine.aggregate import AggregateFn, finalize_states, init_states, merge_states

        if not aggs:
            raise ValueError("aggregate needs at least one AggregateFn")
        for agg in aggs:
            if not isinstance(agg, AggregateFn):
                raise TypeError(f"aggregate takes AggregateFn objects; got "
                                f"{type(agg).__name__}")
        agg_list = list(aggs)
        op = lo.PartialAggregate(self._dag, aggs=tuple(agg_list))
        states = init_states(agg_list)
        ds = self._with(op)
        for item in ds.iter_internal_refs():
            if isinstance(item, ValueOutput) and item.value is not None:
                states = merge_states(agg_list, states, item.value.states)
        if not isinstance(self, MaterializedDataset):  # keeps the stats of its production
            self._last_executor = ds._last_executor
        return finalize_states(agg_list, states)

    def _simple_agg(self, agg_cls: Any, on: str | list[str] | None, **kwargs: Any) -> Any:
        if on is None:
            on = self.columns() or []
        cols = [on] if isinstance(on, str) else list(on)
        if not cols:
            raise ValueError("the dataset has no columns to aggregate")
        aggs = [agg_cls(c, **kwargs) for c in cols]
        result = self.aggregate(*aggs)
        if result is None:
            return None
        if len(result) == 1:  # Ray Data: one column (even as a list) gives a scalar
            return next(iter(result.values()))
        return result

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """Sum of a column (a scalar), or of several columns (a dict ``{"sum(a)": ...}``);
        ``None`` for a column without values."""
        from engine.aggregate import Sum

        return self._simple_agg(Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """Minimum of a column (or dict over columns)."""
        from engine.aggregate import Min

        return self._simple_agg(Min, on, ignore_nulls=ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """Maximum of a column (or dict over columns)."""
        from engine.aggregate import Max

        return self._simple_agg(Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """Mean of a column (or dict over columns)."""
        from engine.aggregate import Mean

        return self._simple_agg(Mean, on, ignore_nulls=ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1,
            ignore_nulls: bool = True) -> Any:
        """Standard deviation of a column (or dict over columns)."""
        from engine.aggregate import Std

        return self._simple_agg(Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    def summary(self, columns: list[str] | None = None,
                override_dtype_agg_mapping: dict[Any, Any] | None = None) -> Any:
        """Compute per-column statistics chosen by column type, in one pass; returns a
        ``DatasetSummary`` (``to_pandas()``, ``get_column_stats(column)``).

        Numbers get count, mean, min, max, std, approx_quantile (median), missing_pct and
        zero_pct; strings and binary count, missing_pct and approx_topk (top 10); temporal
        columns count, min, max and missing_pct; other types count, missing_pct and
        approx_topk.

        Args:
            columns: the columns to summarize; all if ``None``.
            override_dtype_agg_mapping: ``{DataType or TypeCategory: factory}``, where
                ``factory(column)`` returns the aggregators (``AggregateFnV2``) for a column
                of that type; takes precedence over the defaults.
        """
        from engine.summary import summarize

        return summarize(self, columns, override_dtype_agg_mapping)

    def unique(self, column: str, ignore_nulls: bool = False) -> list[Any]:
        """The distinct values of ``column``."""
        from engine.aggregate import Unique

        result = self.aggregate(Unique(column, ignore_nulls=ignore_nulls))
        values = next(iter(result.values())) if result else None
        return list(values) if values is not None else []

    # =============================================================== introspection
    def stats(self) -> str:
        """Per-operator statistics of the last execution of this dataset; after a pass of
        ``iter_batches`` (or ``iter_torch_batches``) that was that execution, the
        iterator's time breakdown too (how long the consumer waited for batches)."""
        from engine.physical.stats import format_stats

        ex = self._last_executor
        return format_stats(ex.summary() if ex is not None else None) + \
            self._latest_pass_stats()

    def _current_run(self) -> Any:
        return self._last_executor

    def explain(self) -> str:
        """Print (and return) the logical, optimized logical and physical plans."""
        from engine.physical.planner import describe_physical
        from engine.physical.planner import plan as physical_plan

        optimized = self._optimized()
        text = ["-------- Logical Plan --------", self._plan.describe(),
                "-------- Logical Plan (Optimized) --------", optimized.describe()]
        try:
            ops = physical_plan(optimized, session.get_cluster(), DataContext.get_current())
            text += ["-------- Physical Plan --------", describe_physical(ops)]
        except Exception as exc:  # a plan that cannot run still explains its logic
            text += ["-------- Physical Plan --------", f"(not plannable: {exc})"]
        out = "\n".join(text)
        print(out)
        return out

    def __iter__(self) -> Any:
        raise TypeError("a Dataset is not iterable directly; use iter_rows() or "
                        "iter_batches()")


class MaterializedDataset(Dataset):
    """A dataset whose blocks are computed and kept; iterating it reuses them."""

    def __init__(self, refs: list[Any], *, input_files: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(LogicalPlan(lo.InputData(tuple(refs), "InputData",
                                                  tuple(input_files))))
        self._refs = list(refs)
        # The run that computed the blocks, if any: what stats() reports, as Ray Data does
        # (re-reading the blocks afterwards runs no operator worth reporting).
        self._production_executor: StreamingExecutor | None = None
        if session.is_initialized():
            cluster = session.get_cluster()
            for ref in self._refs:
                cluster.keep(ref)

    def num_blocks(self) -> int:
        """The number of blocks it holds."""
        return len(self._refs)

    def stats(self) -> str:
        """Per-operator statistics of the execution that produced this dataset, and the
        iterator's time breakdown of the latest pass over its blocks."""
        from engine.physical.stats import format_stats

        ex = self._production_executor or self._last_executor
        return format_stats(ex.summary() if ex is not None else None) + \
            self._latest_pass_stats()

    def count(self) -> int:
        """The number of rows, from the blocks' metadata (nothing runs)."""
        return sum(r.num_rows for r in self._refs)

    def size_bytes(self) -> int:
        """Bytes its blocks take in the store."""
        return sum(r.size_bytes for r in self._refs)

    def materialize(self) -> MaterializedDataset:
        """Itself: its blocks already exist."""
        return self

    def to_arrow_refs(self) -> list[Any]:
        """References to its blocks (``engine.get(refs)`` reads them as Arrow tables)."""
        return list(self._refs)


def _known_row_count(op: lo.LogicalOperator) -> int | None:
    if isinstance(op, lo.InputData):
        return sum(getattr(r, "num_rows", 0) for r in op.refs)
    if isinstance(op, lo.Read):
        return op.datasource.num_rows()  # type: ignore[no-any-return]
    if isinstance(op, lo.FusedMap) and op.row_preserving and isinstance(op.ops[0], lo.Read) \
            and len(op.ops) > 1:
        if all(isinstance(o, lo.Project) for o in op.ops[1:]):
            return op.ops[0].datasource.num_rows()  # type: ignore[no-any-return]
        return None
    if isinstance(op, lo.Project):
        return _known_row_count(op.input)
    if isinstance(op, lo.Limit):
        upstream = _known_row_count(op.input)
        return None if upstream is None else min(upstream, op.limit)
    if isinstance(op, lo.NAry) and op.kind == "union":
        counts = [_known_row_count(i) for i in op.inputs]
        known = [c for c in counts if c is not None]
        return sum(known) if len(known) == len(counts) else None
    if isinstance(op, (la.RandomizeBlocks, la.Repartition, la.RandomShuffle, la.Sort)):
        return _known_row_count(op.input)
    return None


def _known_schema(op: lo.LogicalOperator) -> pa.Schema | None:
    if isinstance(op, lo.InputData):
        for ref in op.refs:
            schema = getattr(ref, "schema", None)
            if schema is not None and len(schema):
                return schema
        return None
    if isinstance(op, lo.Read):
        return op.datasource.schema()  # type: ignore[no-any-return]
    if isinstance(op, (lo.Limit, la.RandomizeBlocks, la.Repartition, la.RandomShuffle,
                       la.Sort, la.TopK)):
        return _known_schema(op.input)
    return None


def sort_key_pairs(key: Any, descending: Any) -> tuple[tuple[str, str], ...]:
    """``sort``'s ``key``/``descending`` as ``((column, "ascending"|"descending"), ...)``."""
    if key is None:
        raise ValueError("sort: key must be a column name or a list of column names, not "
                         "None")
    if callable(key) and not isinstance(key, str):
        raise ValueError("sort: key must be a column name or a list of column names; a "
                         "function is not supported")
    keys = column_list(key, "sort")
    if not keys:
        raise ValueError("sort: key must name at least one column")
    if isinstance(descending, bool):
        flags = [descending] * len(keys)
    elif isinstance(descending, (list, tuple)) and all(isinstance(d, bool)
                                                        for d in descending):
        flags = list(descending)
        if len(flags) != len(keys):
            raise ValueError(f"sort: descending has {len(flags)} values for {len(keys)} "
                             f"keys {keys}")
    else:
        raise ValueError(f"sort: descending must be a bool or a list of bools; got "
                         f"{descending!r}")
    return tuple((k, "descending" if d else "ascending") for k, d in zip(keys, flags,
                                                                        strict=True))
