"""PushFilterBelowExchange: an expression filter moves below a sort, shuffle or
repartition, so fewer rows are partitioned, moved and merged.

Filtering is row by row, so it commutes with operations that only reorder or regroup rows.
Not below a top-k (which keeps the first ``k`` rows: filtering first changes which), nor
below a groupby, join or zip (their output rows are not input rows).
"""

from __future__ import annotations

from engine.logical.all_to_all import RandomShuffle, Repartition, Sort
from engine.logical.operators import Filter, LogicalOperator
from engine.logical.plan import LogicalPlan, transform_dag

_REORDERING = (Sort, RandomShuffle, Repartition)


class PushFilterBelowExchange:
    def apply(self, plan: LogicalPlan) -> LogicalPlan:
        def push(op: LogicalOperator) -> LogicalOperator:
            if isinstance(op, Filter) and op.expr is not None and \
                    isinstance(op.input, _REORDERING):
                exchange = op.input
                return exchange.with_inputs(push(op.with_inputs(exchange.inputs[0])))
            return op

        return LogicalPlan(transform_dag(plan.dag, push))
