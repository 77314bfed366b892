"""SortLimitToTopK: ``sort(...).limit(k)`` (and ``take(k)``) becomes a top-k.

Each map task keeps the first ``k`` rows of its block in sort order and one reduce merges
them: no range partitioning and no full sort. A sort with user ``boundaries`` keeps its
blocks (they are what the user asked for), so it is left alone.
"""

from __future__ import annotations

from engine.logical.all_to_all import Sort, TopK
from engine.logical.operators import Limit, LogicalOperator
from engine.logical.plan import LogicalPlan, transform_dag


class SortLimitToTopK:
    def apply(self, plan: LogicalPlan) -> LogicalPlan:
        def rewrite(op: LogicalOperator) -> LogicalOperator:
            if isinstance(op, Limit) and isinstance(op.input, Sort) and \
                    op.input.boundaries is None:
                top = TopK(op.input.input, sort_keys=op.input.sort_keys, k=op.limit)
                return Limit(top, op.limit)
            return op

        return LogicalPlan(transform_dag(plan.dag, rewrite))
