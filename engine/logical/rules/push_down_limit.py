"""PushDownLimit: move a limit below row-preserving maps and merge adjacent limits.

``ds.map(f).limit(10)`` only needs ``f`` on 10 rows. Maps that can change the row count
(map_batches, flat_map, filter) stop the push.
"""

from __future__ import annotations

from engine.logical.operators import AbstractMap, Limit, LogicalOperator
from engine.logical.plan import LogicalPlan, transform_dag


class PushDownLimit:
    def apply(self, plan: LogicalPlan) -> LogicalPlan:
        def push(op: LogicalOperator) -> LogicalOperator:
            if not isinstance(op, Limit):
                return op
            up = op.input
            if isinstance(up, Limit):
                return Limit(up.input, min(op.limit, up.limit))
            if isinstance(up, AbstractMap) and up.row_preserving and up.inputs \
                    and not up.compute.is_actors:
                return up.with_inputs(push(Limit(up.input, op.limit)))
            return op

        return LogicalPlan(transform_dag(plan.dag, push))
