"""The planner: a registry from logical operator type to a function building physical ones.

It only converts; every decision about *what* runs was made by the optimizer. Resource
requests the cluster can never meet (``num_gpus=1`` without a GPU) fail here, when the plan
is built, instead of waiting forever.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from engine.context import DataContext
from engine.errors import ResourceUnavailableError
from engine.logical import all_to_all as la
from engine.logical import operators as lo
from engine.logical.plan import LogicalPlan
from engine.physical import bulk
from engine.physical.exchange import plans
from engine.physical.exchange.grouping import GroupPartitionReduce
from engine.physical.exchange.lookup_join import FUSE_MAX_BYTES, BroadcastJoinStep
from engine.physical.exchange.partial_agg import PartialGroupsStep
from engine.physical.exchange.tasks import ConcatReduce, JoinReduce, combine
from engine.physical.group_step import GroupsStep
from engine.physical.interfaces import PhysicalOperator
from engine.physical.operators.all_to_all import AllToAllOperator
from engine.physical.operators.broadcast_join import (
    BROADCASTABLE,
    BroadcastJoinOperator,
    BroadcastJoinTask,
)
from engine.physical.operators.exchange import ExchangeOperator
from engine.physical.operators.input_data import InputDataOperator
from engine.physical.operators.limit import LimitOperator
from engine.physical.operators.map_operator import (
    ActorPoolMapOperator,
    MapOperator,
    TaskPoolMapOperator,
)
from engine.physical.operators.union import UnionOperator
from engine.physical.transform import (
    BatchStep,
    FilterStep,
    LimitStep,
    MapTransformer,
    PartialAggregateStep,
    ProjectStep,
    PruneColumnsStep,
    ReadStep,
    RowStep,
    Step,
    WriteStep,
)
from engine.random_seed import seed_for_execution
from engine.runtime.interfaces import Runtime


class PlanContext:
    """What planning functions need, and the list of operators built so far."""

    def __init__(self, cluster: Runtime, ctx: DataContext) -> None:
        self.cluster = cluster
        self.ctx = ctx
        self.ops: list[PhysicalOperator] = []

    def add(self, op: PhysicalOperator) -> PhysicalOperator:
        self.ops.append(op)
        return op


PlanFn = Callable[[Any, list[PhysicalOperator], PlanContext], PhysicalOperator]


def read_parallelism(datasource: Any, requested: int, ctx: DataContext,
                     num_cpus: int) -> int:
    """How many read tasks: the user's ``override_num_blocks``, else enough to keep every
    CPU busy, with blocks no larger than the target maximum and no smaller than the
    minimum."""
    if requested and requested > 0:
        return requested
    parallelism = max(ctx.read_op_min_num_blocks, 2 * num_cpus)
    size = datasource.estimate_inmemory_data_size()
    if size:
        parallelism = max(parallelism, math.ceil(size / ctx.max_block_bytes()))
        parallelism = min(parallelism, max(1, math.ceil(size / ctx.target_min_block_size)))
    return parallelism


def steps_of(op: lo.LogicalOperator) -> list[Step]:
    """The transform steps one logical map contributes."""
    if isinstance(op, lo.FusedMap):
        return [s for inner in op.ops for s in steps_of(inner)]
    if isinstance(op, lo.Read):
        return [ReadStep()]
    if isinstance(op, lo.MapBatches):
        return [BatchStep(op.fn, op.batch_size, op.batch_format, op.zero_copy_batch,
                          op.fn_args, op.fn_kwargs, op.fn_constructor_args,
                          op.fn_constructor_kwargs)]
    if isinstance(op, (lo.MapRows, lo.FlatMap)):
        return [RowStep(op.fn, isinstance(op, lo.FlatMap), op.fn_args, op.fn_kwargs,
                        op.fn_constructor_args, op.fn_constructor_kwargs)]
    if isinstance(op, lo.Filter):
        return [FilterStep(op.fn, op.expr, op.fn_args, op.fn_kwargs, op.fn_constructor_args,
                           op.fn_constructor_kwargs)]
    if isinstance(op, lo.Project):
        return [ProjectStep(op.select, op.drop, op.rename, op.exprs, op.udf_columns)]
    if isinstance(op, lo.PruneColumns):
        return [PruneColumnsStep(op.keep)]
    if isinstance(op, lo.Write):
        return [WriteStep(op.datasink)]
    if isinstance(op, lo.PartialAggregate):
        return [PartialAggregateStep(list(op.aggs))]
    if isinstance(op, la.MapGroups):
        return [GroupsStep(op.fn, op.keys, op.batch_format, op.fn_args, op.fn_kwargs,
                           op.fn_constructor_args, op.fn_constructor_kwargs)]
    raise TypeError(f"no transform steps for logical operator {type(op).__name__}")


def _first_batch_size(op: lo.LogicalOperator) -> int | None:
    for inner in (op.ops if isinstance(op, lo.FusedMap) else (op,)):
        if isinstance(inner, lo.MapBatches):
            return inner.batch_size
        if isinstance(inner, lo.Write):
            return inner.datasink.min_rows_per_write
    return None


def _memory_of(op: lo.AbstractMap) -> float:
    """Bytes of memory one task (or actor) of ``op`` asks for (``memory=``); 0 if none."""
    ops = op.ops if isinstance(op, lo.FusedMap) else (op,)
    return max((float(getattr(o, "memory", None) or 0) for o in ops), default=0.0)


def _custom_resources(op: lo.AbstractMap) -> dict[str, float]:
    """Custom resources (``resources={...}`` among the Ray remote args) one task or actor of
    ``op`` asks for."""
    ops = op.ops if isinstance(op, lo.FusedMap) else (op,)
    found: dict[str, float] = {}
    for o in ops:
        for name, amount in getattr(o, "resources", ()):
            found[name] = max(found.get(name, 0.0), amount)
    return found


def _node_memory(cluster: Runtime) -> float:
    """Memory tasks may ask for: the machine's RAM less what the block store may hold."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return float("inf")
    return float(max(total - cluster.cluster_resources()["object_store_memory"], 0))


def _check_resources(op: lo.AbstractMap, cluster: Runtime, ctx: DataContext) -> None:
    memory = _memory_of(op)
    if memory > _node_memory(cluster):
        raise ResourceUnavailableError(
            f"{op.name} asks for memory={int(memory)} bytes, but the machine has "
            f"{int(_node_memory(cluster))} bytes for tasks; this request could never be "
            "scheduled")
    limits = ctx.execution_options.resource_limits
    if limits.cpu is not None and op.num_cpus > limits.cpu:
        raise ResourceUnavailableError(
            f"{op.name} asks for num_cpus={op.num_cpus}, more than "
            f"execution_options.resource_limits.cpu={limits.cpu}")
    if limits.gpu is not None and op.num_gpus > limits.gpu:
        raise ResourceUnavailableError(
            f"{op.name} asks for num_gpus={op.num_gpus}, more than "
            f"execution_options.resource_limits.gpu={limits.gpu}")
    if op.num_gpus > cluster.num_gpus:
        raise ResourceUnavailableError(
            f"{op.name} asks for num_gpus={op.num_gpus}, but the cluster has "
            f"{cluster.num_gpus} GPU(s); this request could never be scheduled")
    if op.num_cpus > cluster.num_cpus:
        raise ResourceUnavailableError(
            f"{op.name} asks for num_cpus={op.num_cpus}, but the cluster has "
            f"{cluster.num_cpus} CPU(s); this request could never be scheduled")
    totals = cluster.cluster_resources()
    for name, amount in _custom_resources(op).items():
        if amount > totals.get(name, 0.0):
            raise ResourceUnavailableError(
                f"{op.name} asks for resources={{{name!r}: {amount:g}}}, but the cluster has "
                f"{totals.get(name, 0.0):g} of {name!r}; this request could never be "
                "scheduled")


def _plan_map(op: lo.AbstractMap, inputs: list[PhysicalOperator],
              pc: PlanContext) -> PhysicalOperator:
    if isinstance(op, lo.Read):  # a read on its own is a map stage of one read step
        op = lo.FusedMap(input=op, ops=(op,))
    _check_resources(op, pc.cluster, pc.ctx)
    first = op.ops[0] if isinstance(op, lo.FusedMap) else op
    if isinstance(first, lo.Read):
        parallelism = read_parallelism(first.datasource, first.parallelism, pc.ctx,
                                       pc.cluster.num_cpus)
        tasks = first.datasource.get_read_tasks(parallelism)
        inputs = [pc.add(InputDataOperator(f"Input[{first.name}]", tasks))]
    transformer = MapTransformer(steps_of(op), pc.ctx.max_block_bytes(),
                                 pc.ctx.target_min_block_size, context=pc.ctx)
    up = inputs[0] if inputs else None
    if isinstance(up, ExchangeOperator) and _fusable_after_exchange(op, up, pc):
        up.fuse_after(transformer, op.name)  # the stage runs in the reduce tasks
        return up
    compute = op.compute
    limits = pc.ctx.execution_options.resource_limits
    cpus = pc.cluster.num_cpus if limits.cpu is None else min(limits.cpu, pc.cluster.num_cpus)
    gpus = pc.cluster.num_gpus if limits.gpu is None else min(limits.gpu, pc.cluster.num_gpus)
    memory = _memory_of(op)
    # `memory=` caps how many tasks (or actors) of this stage run at once.
    by_memory = max(1, int(_node_memory(pc.cluster) // memory)) if memory else None
    max_retries = getattr(op, "max_retries", None)
    common: dict[str, Any] = dict(
        min_rows_per_bundle=None if isinstance(first, lo.Read) else _first_batch_size(op),
        min_blocks_per_bundle=_blocks_per_bundle(op, inputs[0], cpus),
        max_bundle_bytes=pc.ctx.max_block_bytes(),
        # Ray Data's -1 retries forever
        max_retries=pc.ctx.max_retries if max_retries is None else
        (1 << 30 if max_retries < 0 else max_retries),
        num_cpus=op.num_cpus, num_gpus=op.num_gpus, memory=memory,
        resources=_custom_resources(op))
    if compute.is_actors or op.num_gpus > 0:
        # GPU functions run on actors too: only a dedicated process can own a device.
        per_actor = max(op.num_cpus, 1e-9)
        limit = max(1, int(cpus // per_actor))
        if op.num_gpus > 0:
            limit = min(limit, max(1, int(gpus // op.num_gpus)))
        if by_memory is not None:
            limit = min(limit, by_memory)
        max_size = compute.max_size if compute.is_actors and compute.max_size else limit
        min_size = compute.min_size if compute.is_actors else 1
        in_flight = compute.max_tasks_in_flight_per_actor or \
            pc.ctx.max_tasks_in_flight_per_actor
        return pc.add(ActorPoolMapOperator(op.name, inputs[0], transformer,
                                           min_size=min_size, max_size=max_size,
                                           max_tasks_in_flight_per_actor=in_flight,
                                           **common))
    concurrency = compute.max_size
    if by_memory is not None:
        concurrency = by_memory if concurrency is None else min(concurrency, by_memory)
    stage = TaskPoolMapOperator(op.name, inputs[0], transformer, concurrency=concurrency,
                                **common)
    stage.local_ok = _holds_no_user_code(op)
    return pc.add(stage)


def _holds_no_user_code(op: lo.LogicalOperator) -> bool:
    """Whether a stage runs only the engine's own code: a read of a built-in datasource,
    column pruning, the local shuffle's permutation (its tasks may run in the driver while
    the workers start)."""
    if isinstance(op, lo.FusedMap):
        return all(_holds_no_user_code(o) for o in op.ops)
    if isinstance(op, lo.Read):
        return type(op.datasource).__module__.startswith("engine.io.")
    if isinstance(op, lo.MapBatches):
        return bool(getattr(op.fn, "engine_internal", False))
    return isinstance(op, lo.PruneColumns)


def engine_tasks_only(ops: list[PhysicalOperator]) -> bool:
    """Whether every task of the physical plan ``ops`` is the engine's own code and no
    operator keeps blocks: an execution the driver may run on its own threads when it
    consumes the output itself (see ``engine.runtime.driver_tasks``)."""
    tasks = [op for op in ops if isinstance(op, MapOperator)]
    return bool(tasks) and all(
        isinstance(op, (InputDataOperator, LimitOperator, UnionOperator)) or
        (isinstance(op, TaskPoolMapOperator) and op.local_ok) for op in ops)


# Steps whose work per block is a few Arrow kernels: a task's fixed cost (messages, a
# round trip) can outweigh it, so blocks that already exist are handed out a few at a time.
_VECTORIZED = (lo.Filter, lo.Project, lo.PruneColumns, lo.PartialAggregate)


def _is_vectorized(op: lo.LogicalOperator) -> bool:
    if isinstance(op, lo.FusedMap):
        return all(_is_vectorized(o) for o in op.ops)
    if isinstance(op, lo.Filter):
        return op.expr is not None
    if isinstance(op, lo.Project):
        return not op.udf_columns
    return isinstance(op, _VECTORIZED)


def _blocks_per_bundle(op: lo.AbstractMap, upstream: PhysicalOperator, cpus: float) -> int:
    """Blocks per task for a vectorized stage over existing blocks: about two tasks a CPU
    (enough to balance the load), one block a task for everything else."""
    if not isinstance(upstream, InputDataOperator) or not _is_vectorized(op):
        return 1
    return max(1, upstream.num_items // max(1, int(2 * cpus)))


def _plan_input(op: lo.InputData, inputs: list[PhysicalOperator],
                pc: PlanContext) -> PhysicalOperator:
    return pc.add(InputDataOperator(op.name, list(op.refs)))


def _plan_limit(op: lo.Limit, inputs: list[PhysicalOperator],
                pc: PlanContext) -> PhysicalOperator:
    up = inputs[0]
    if isinstance(up, MapOperator) and not isinstance(up, ActorPoolMapOperator):
        # Each task may stop after `limit` rows: no task needs to produce more.
        up.transformer.steps.append(LimitStep(op.limit))
    return pc.add(LimitOperator(up, op.limit))


def _plan_nary(op: lo.NAry, inputs: list[PhysicalOperator],
               pc: PlanContext) -> PhysicalOperator:
    return pc.add(UnionOperator(inputs))


def estimated_blocks(op: PhysicalOperator, num_cpus: int) -> int:
    """About how many blocks ``op`` emits, known before it runs: the source's item count
    through maps (which keep about one block per input block), else two per CPU."""
    while True:
        if isinstance(op, InputDataOperator):
            return max(1, op.num_items)
        if isinstance(op, ExchangeOperator) and op.num_partitions is not None:
            return max(1, op.num_partitions)
        if isinstance(op, MapOperator):
            op = op.inputs[0]
            continue
        return max(1, 2 * num_cpus)


def _fusable_into_exchange(up: PhysicalOperator, plan: plans.ExchangePlan,
                           pc: PlanContext) -> bool:
    """Whether the map stage ``up`` can run inside the exchange's map tasks: a streaming map
    side (a sort's or a repartition's partitioning needs all input first), a stage on the
    shared task workers with the exchange's resources and retries, and no per-block error
    skipping (which only a map stage of its own does)."""
    if plan.gather_first or not plan.has_map_stage:
        return False
    if not pc.ctx.optimizer_enabled or "FuseMaps" in pc.ctx.disabled_rules:
        return False
    if type(up) is not TaskPoolMapOperator or pc.ctx.max_errored_blocks != 0:
        return False
    return (up.concurrency is None and up.num_cpus == 1.0 and up.num_gpus == 0
            and not up.memory and not up.resources and up.max_retries == pc.ctx.max_retries)


def _fusable_after_exchange(op: lo.AbstractMap, up: ExchangeOperator,
                            pc: PlanContext) -> bool:
    """Whether the map stage ``op`` can run inside ``up``'s reduce tasks: a stage with the
    exchange's resources (one CPU, no GPU, no concurrency cap, no memory or custom
    resources, default retries), no batch size (a reduce's batches would end at its
    partition's end) and no per-block error skipping."""
    if up.post is not None or not pc.ctx.optimizer_enabled or \
            "FuseMaps" in pc.ctx.disabled_rules or pc.ctx.max_errored_blocks != 0:
        return False
    if op.compute.is_actors or op.compute.max_size is not None or op.num_gpus or \
            op.num_cpus != 1.0:
        return False
    if _memory_of(op) or _custom_resources(op) or _first_batch_size(op):
        return False
    ops = op.ops if isinstance(op, lo.FusedMap) else (op,)
    return all(getattr(o, "max_retries", None) is None for o in ops)


def _exchange(op: lo.LogicalOperator, inputs: list[PhysicalOperator], pc: PlanContext,
              plan: plans.ExchangePlan) -> PhysicalOperator:
    # A map task's partitions reach the store before the operator marks them spillable:
    # bundles small against the budget keep that overshoot small.
    limit = pc.ctx.execution_options.resource_limits.object_store_memory
    budget = int(min(limit or pc.ctx.memory_budget, pc.cluster.store_usage().budget_bytes))
    bundle = max(1 << 20, min(_max_block_bytes(pc) or budget,
                              budget // (4 * max(1, pc.cluster.num_cpus))))
    inputs = list(inputs)
    fused: list[MapTransformer | None] = [None for _ in inputs]
    name = op.name
    for side, up in enumerate(inputs):
        if isinstance(up, TaskPoolMapOperator) and _fusable_into_exchange(up, plan, pc):
            fused[side] = up.transformer  # the stage's task runs inside the map tasks
            pc.ops.remove(up)
            inputs[side] = up.inputs[0]
            if len(inputs) == 1:  # named as Ray Data names fused stages
                name = f"{up.name}->{op.name}"
    return pc.add(ExchangeOperator(name, inputs, plan, max_retries=pc.ctx.max_retries,
                                   max_bundle_bytes=bundle, fused=fused))


def _max_block_bytes(pc: PlanContext) -> int | None:
    """``target_max_block_size``; None (Ray Data's "unlimited") leaves blocks whole."""
    size = pc.ctx.target_max_block_size
    return int(size) if size else None


def _hash_partitions(requested: int | None, inputs: list[PhysicalOperator],
                     pc: PlanContext) -> int:
    if requested:
        return requested
    estimate = max(estimated_blocks(i, pc.cluster.num_cpus) for i in inputs)
    return max(1, min(pc.ctx.default_hash_shuffle_parallelism, estimate))


def _seed(config: Any, pc: PlanContext) -> int | None:
    if config is None:
        return None
    return seed_for_execution(config, pc.ctx._execution_idx)


def _plan_sort(op: la.Sort, inputs: list[PhysicalOperator],
               pc: PlanContext) -> PhysicalOperator:
    _keep_order_upstream(inputs[0])  # ties keep the dataset's order (a stable sort)
    return _exchange(op, inputs, pc, plans.SortPlan(op.sort_keys, op.boundaries,
                                                    _max_block_bytes(pc)))


def _plan_top_k(op: la.TopK, inputs: list[PhysicalOperator],
                pc: PlanContext) -> PhysicalOperator:
    return _exchange(op, inputs, pc, plans.TopKPlan(op.sort_keys, op.k))


def _plan_aggregate(op: la.Aggregate, inputs: list[PhysicalOperator],
                    pc: PlanContext) -> PhysicalOperator:
    partitions = _hash_partitions(op.num_partitions, inputs, pc)
    plan = plans.aggregate_plan(op.keys, list(op.aggs), partitions)
    _partials_upstream(plan, inputs[0])
    if isinstance(plan, plans.PartialAggregatePlan) and plan.partials_in and \
            not op.num_partitions:
        # Only partial rows cross the exchange: a reduce task a CPU merges them all,
        # fewer tiny tasks.
        plan.partitions = max(1, min(plan.partitions, pc.cluster.num_cpus))
    return _exchange(op, inputs, pc, plan)


def _partials_upstream(plan: plans.ExchangePlan, up: PhysicalOperator) -> None:
    """A partial aggregation runs as the last step of the upstream map tasks when there
    are some (blocks turn into their partial rows where they are made, instead of going
    through the store whole); the exchange's maps then only partition the partials."""
    if isinstance(plan, plans.PartialAggregatePlan) and isinstance(up, TaskPoolMapOperator):
        up.transformer.steps.append(PartialGroupsStep(plan.keys, plan.aggs))
        plan.partials_in = True


def _plan_group_partition(op: la.GroupPartition, inputs: list[PhysicalOperator],
                          pc: PlanContext) -> PhysicalOperator:
    partitions = _hash_partitions(op.num_partitions, inputs, pc)
    # Blocks cut at group boundaries only: a group never spans blocks.
    limit = pc.ctx.execution_options.resource_limits.object_store_memory
    budget = int(min(limit or pc.ctx.memory_budget, pc.cluster.store_usage().budget_bytes))
    block = min(_max_block_bytes(pc) or budget, max(1, budget // 4))
    reduce = GroupPartitionReduce(op.keys, budget, block)
    return _exchange(op, inputs, pc, plans.HashPlan(
        op.keys, partitions, reduce, "map_groups: hash partition -> sort by key"))


def known_bytes(op: PhysicalOperator) -> int | None:
    """Bytes ``op`` emits when known before the run (existing blocks), else None."""
    if isinstance(op, InputDataOperator) and op.items_are_blocks:
        return op.total_bytes
    return None


def _broadcast_side(op: la.Join, inputs: list[PhysicalOperator],
                    pc: PlanContext) -> int | None:
    """The side (0 left, 1 right) to broadcast, if one is small enough and the join type
    allows it; the smaller one when both are."""
    threshold = pc.ctx.broadcast_join_threshold_bytes
    if threshold <= 0:
        return None
    sizes = [known_bytes(i) for i in inputs]
    candidates = [(size, side) for side, size in enumerate(sizes)
                  if size is not None and size <= threshold
                  and op.join_type in BROADCASTABLE["left" if side == 0 else "right"]]
    return min(candidates)[1] if candidates else None


def _plan_join(op: la.Join, inputs: list[PhysicalOperator],
               pc: PlanContext) -> PhysicalOperator:
    join = JoinReduce(op.join_type, op.left_on, op.right_on, op.left_suffix, op.right_suffix,
                      max_block_bytes=_max_block_bytes(pc))
    small = _broadcast_side(op, inputs, pc)
    if small is not None:
        fused = _fuse_broadcast(op, inputs, small, join, pc)
        if fused is not None:
            return fused
        return pc.add(BroadcastJoinOperator(
            op.name, inputs, BroadcastJoinTask(join, small_is_right=small == 1), small=small,
            max_retries=pc.ctx.max_retries,
            max_bundle_bytes=_max_block_bytes(pc) or (1 << 62)))
    return _exchange(op, inputs, pc, plans.JoinPlan(
        op.join_type, op.left_on, op.right_on, op.left_suffix, op.right_suffix,
        op.num_partitions, _max_block_bytes(pc)))


def _fuse_broadcast(op: la.Join, inputs: list[PhysicalOperator], small: int,
                    join: JoinReduce, pc: PlanContext) -> PhysicalOperator | None:
    """The broadcast join as the last step of the big side's map tasks, where the big side
    is a task map stage and the small side a few existing blocks (at most
    ``FUSE_MAX_BYTES``, read here once): the big side's blocks are then joined where they
    are made, never stored before the join. None where that does not apply."""
    big_op, small_op = inputs[1 - small], inputs[small]
    if not isinstance(big_op, TaskPoolMapOperator) or \
            not isinstance(small_op, InputDataOperator) or \
            (known_bytes(small_op) or 0) > FUSE_MAX_BYTES:
        return None
    table = combine(pc.cluster.get(small_op.blocks))
    if table is None:
        return None
    big_op.transformer.steps.append(BroadcastJoinStep(table, join, small_is_right=small == 1))
    side = "right" if small else "left"
    big_op.name = big_op.stats.name = f"{big_op.name}->{op.name}[broadcast {side}]"
    big_op.stats.extra["broadcast side"] = side
    pc.ops.remove(small_op)  # read here: the executor has nothing to run for it
    return big_op


def _plan_random_shuffle(op: la.RandomShuffle, inputs: list[PhysicalOperator],
                         pc: PlanContext) -> PhysicalOperator:
    partitions = op.num_blocks or estimated_blocks(inputs[0], pc.cluster.num_cpus)
    seed = _seed(op.seed, pc)
    if seed is not None:  # a seed reproduces the order only over a reproducible input
        _keep_order_upstream(inputs[0])
    return _exchange(op, inputs, pc, plans.ShufflePlan(seed, partitions,
                                                       _max_block_bytes(pc)))


def _keep_order_upstream(op: PhysicalOperator) -> None:
    """Make the maps feeding ``op`` emit in input order (blocks then arrive in the
    dataset's order, as under ``preserve_order``)."""
    while isinstance(op, MapOperator):
        op.keep_order = True
        op = op.inputs[0]


def _plan_repartition(op: la.Repartition, inputs: list[PhysicalOperator],
                      pc: PlanContext) -> PhysicalOperator:
    if op.keys:
        assert op.num_blocks is not None, "repartition by keys needs num_blocks"
        sort_keys = [(k, "ascending") for k in op.keys] if op.sort else None
        reduce = ConcatReduce(sort_keys, _max_block_bytes(pc))
        return _exchange(op, inputs, pc, plans.HashPlan(
            op.keys, op.num_blocks, reduce, "repartition: hash partition by keys"))
    if op.shuffle:
        assert op.num_blocks is not None, "a shuffling repartition needs num_blocks"
        return _exchange(op, inputs, pc, plans.ShufflePlan(None, op.num_blocks,
                                                           _max_block_bytes(pc)))
    _keep_order_upstream(inputs[0])  # consecutive rows stay consecutive, in order
    return _exchange(op, inputs, pc, plans.SplitPlan(op.num_blocks,
                                                     op.target_num_rows_per_block))


def _plan_randomize_blocks(op: la.RandomizeBlocks, inputs: list[PhysicalOperator],
                           pc: PlanContext) -> PhysicalOperator:
    seed = _seed(op.seed, pc)
    return pc.add(AllToAllOperator(
        op.name, inputs, lambda items, state: bulk.randomize_blocks(items, state, seed)))


def _plan_zip(op: la.Zip, inputs: list[PhysicalOperator],
              pc: PlanContext) -> PhysicalOperator:
    for side in inputs:  # row i of every input: each must arrive in its order
        _keep_order_upstream(side)
    return _exchange(op, inputs, pc, plans.ZipPlan(len(inputs)))


_REGISTRY: dict[type, PlanFn] = {
    lo.Read: _plan_map,
    lo.MapBatches: _plan_map,
    lo.MapRows: _plan_map,
    lo.FlatMap: _plan_map,
    lo.Filter: _plan_map,
    lo.Project: _plan_map,
    lo.PruneColumns: _plan_map,
    lo.FusedMap: _plan_map,
    lo.Write: _plan_map,
    lo.PartialAggregate: _plan_map,
    lo.InputData: _plan_input,
    lo.Limit: _plan_limit,
    lo.NAry: _plan_nary,
    la.MapGroups: _plan_map,
    la.Sort: _plan_sort,
    la.TopK: _plan_top_k,
    la.Aggregate: _plan_aggregate,
    la.GroupPartition: _plan_group_partition,
    la.Join: _plan_join,
    la.RandomShuffle: _plan_random_shuffle,
    la.Repartition: _plan_repartition,
    la.RandomizeBlocks: _plan_randomize_blocks,
    la.Zip: _plan_zip,
}


def plan(logical: LogicalPlan, cluster: Runtime,
         ctx: DataContext) -> list[PhysicalOperator]:
    """Return physical operators in topological order; the last one is the output."""
    pc = PlanContext(cluster, ctx)

    # No memo on shared logical operators: `ds.zip(ds.select_columns(...))` reaches the same
    # operator twice, and a physical operator feeds exactly one downstream, so each use gets
    # its own copy (a shared InputData is just read twice).
    def visit(op: lo.LogicalOperator) -> PhysicalOperator:
        inputs = [visit(i) for i in op.inputs]
        fn = _REGISTRY.get(type(op))
        if fn is None:
            raise TypeError(f"the planner has no rule for logical operator {type(op).__name__}")
        return fn(op, inputs, pc)

    visit(logical.dag)
    return pc.ops


def describe_physical(ops: list[PhysicalOperator]) -> str:
    lines = []
    for op in ops:
        kind = type(op).__name__
        extra = ""
        if isinstance(op, ActorPoolMapOperator):
            extra = f" actors={op.min_size}..{op.max_size}"
        elif isinstance(op, TaskPoolMapOperator) and op.concurrency:
            extra = f" concurrency={op.concurrency}"
        elif isinstance(op, (ExchangeOperator, BroadcastJoinOperator)):
            extra = f" {op.describe()}"
        lines.append(f"{kind}[{op.name}]{extra}")
    return "\n".join(lines)
