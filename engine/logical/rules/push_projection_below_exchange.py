"""PushProjectionBelowExchange: a column selection moves below a sort, shuffle or
repartition, so only the columns kept are partitioned, moved and merged.

Only a plain selection or drop (no expressions, renames or UDF columns) moves, and only
when it keeps every column the exchange itself reads (sort keys, repartition keys).
"""

from __future__ import annotations

from engine.logical.all_to_all import RandomShuffle, Repartition, Sort
from engine.logical.operators import LogicalOperator, Project
from engine.logical.plan import LogicalPlan, transform_dag

_REORDERING = (Sort, RandomShuffle, Repartition)


def _exchange_columns(op: LogicalOperator) -> set[str]:
    if isinstance(op, Sort):
        return {k for k, _ in op.sort_keys}
    if isinstance(op, Repartition):
        return set(op.keys)
    return set()


def _keeps(project: Project, columns: set[str]) -> bool:
    if project.exprs or project.udf_columns or project.rename:
        return False
    if project.select is not None and not columns <= set(project.select):
        return False
    return not (columns & set(project.drop))


class PushProjectionBelowExchange:
    def apply(self, plan: LogicalPlan) -> LogicalPlan:
        def push(op: LogicalOperator) -> LogicalOperator:
            if isinstance(op, Project) and isinstance(op.input, _REORDERING) and \
                    _keeps(op, _exchange_columns(op.input)):
                exchange = op.input
                return exchange.with_inputs(push(op.with_inputs(exchange.inputs[0])))
            return op

        return LogicalPlan(transform_dag(plan.dag, push))
