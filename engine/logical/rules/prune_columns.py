"""PruneColumns: drop columns nobody reads before an expression filter copies them.

A filter copies every column of the rows it keeps. When what sits above it uses only some
columns (a ``select_columns``, or built-in aggregations such as ``count``/``sum``), and
everything in between is expression work whose columns are known (``filter(expr=...)``,
``with_column``), a ``PruneColumns`` below the lowest such filter keeps only the columns
still needed. It keeps those a block has and never fails: a missing column is still
reported by the operator that uses it, as written. It then fuses with the maps around it.
"""

from __future__ import annotations

from typing import Any

from engine.logical.operators import (
    Filter,
    LogicalOperator,
    PartialAggregate,
    Project,
    PruneColumns,
)
from engine.logical.plan import LogicalPlan, transform_dag


def _through_exprs(needed: set[str], exprs: tuple[tuple[str, Any], ...]) -> set[str]:
    """The columns needed below a projection's expressions (evaluated in order)."""
    from engine.expressions import referenced_columns

    below = set(needed)
    for name, expr in reversed(exprs):
        below.discard(name)  # produced here, not read from below...
        below |= referenced_columns(expr)  # ...and every expression is evaluated
    return below


def _consumer_needs(op: LogicalOperator) -> set[str] | None:
    """The columns ``op`` reads of its input, when it reads only some of them."""
    if isinstance(op, Project):
        if op.select is None or op.drop or op.rename or op.udf_columns:
            return None
        return _through_exprs(set(op.select), op.exprs)
    if isinstance(op, PartialAggregate):
        needed: set[str] = set()
        for agg in op.aggs:
            read = agg.columns_read() if hasattr(agg, "columns_read") else None
            if read is None:
                return None
            needed |= set(read)
        return needed
    return None


def _is_expression_only(op: LogicalOperator) -> bool:
    if isinstance(op, Filter):
        return op.expr is not None
    return (isinstance(op, Project) and op.select is None and not op.drop and not op.rename
            and not op.udf_columns)


class PruneUnusedColumns:
    def apply(self, plan: LogicalPlan) -> LogicalPlan:
        def prune(op: LogicalOperator) -> LogicalOperator:
            needed = _consumer_needs(op)
            if needed is None:
                return op
            chain: list[LogicalOperator] = []
            node = op.inputs[0]
            while _is_expression_only(node):
                chain.append(node)
                assert isinstance(node, (Filter, Project)), "expression-only ops"
                if isinstance(node, Filter):
                    from engine.expressions import referenced_columns

                    needed |= referenced_columns(node.expr)
                else:
                    needed = _through_exprs(needed, node.exprs)
                node = node.inputs[0]
            if not any(isinstance(c, Filter) for c in chain):
                return op  # nothing below copies columns: a final select is zero-copy
            if isinstance(node, PruneColumns) and set(node.keep) == needed:
                return op  # already pruned
            rebuilt: LogicalOperator = PruneColumns(input=node, keep=tuple(sorted(needed)))
            for step in reversed(chain):
                rebuilt = step.with_inputs(rebuilt)
            return op.with_inputs(rebuilt)

        return LogicalPlan(transform_dag(plan.dag, prune))
