"""FuseMaps: run consecutive maps (and the read before them) as one stage.

Like Ray Data, two maps fuse when they ask for the same resources; a task map fuses into a
following actor-pool map (the actor runs both), never the other way round. Fusion keeps
blocks out of the store between the fused steps.
"""

from __future__ import annotations

from engine.logical.operators import AbstractMap, FusedMap, LogicalOperator, Read, Write
from engine.logical.plan import LogicalPlan, transform_dag


def _steps(op: LogicalOperator) -> tuple[LogicalOperator, ...]:
    return op.ops if isinstance(op, FusedMap) else (op,)


def _can_fuse(up: LogicalOperator, down: AbstractMap) -> bool:
    if isinstance(down, Write) and getattr(down.datasink, "min_rows_per_write", None):
        # min_rows_per_file bundles the blocks of many upstream tasks into one write task,
        # which only a stage of its own can do (a fused stage gets one read task each).
        return False
    if isinstance(up, Read):
        return not down.compute.is_actors and down.num_gpus == 0 and down.num_cpus == 1.0
    if not isinstance(up, AbstractMap):
        return False
    if up.compute.is_actors:
        return False
    if isinstance(up, FusedMap) and isinstance(up.ops[0], Read) and down.compute.is_actors:
        return False  # reads stay on tasks: an actor pool is a poor place for I/O
    if up.num_cpus != down.num_cpus or up.num_gpus != down.num_gpus:
        return False
    # A fused stage has one concurrency cap, the downstream's: fuse only when the
    # upstream's cap (if any) is the same, or it would be silently dropped or imposed.
    up_cap, down_cap = up.compute.max_size, down.compute.max_size
    if down.compute.is_actors:
        return up_cap is None or up_cap == down_cap
    return up_cap == down_cap


class FuseMaps:
    def apply(self, plan: LogicalPlan) -> LogicalPlan:
        def fuse(op: LogicalOperator) -> LogicalOperator:
            if not isinstance(op, AbstractMap) or (isinstance(op, FusedMap) and not op.inputs):
                return op
            up = op.inputs[0] if op.inputs else None
            if up is None or not _can_fuse(up, op):
                return op
            ops = _steps(up) + _steps(op)
            source = up.input if isinstance(up, AbstractMap) else up
            return FusedMap(input=source, ops=ops)

        return LogicalPlan(transform_dag(plan.dag, fuse))
