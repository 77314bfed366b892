"""PruneUnusedColumns: read and copy only the columns a plan uses.

When an operator uses only some columns (a ``select_columns``, or built-in aggregations
such as ``count``/``sum``) and everything between it and its source is expression work
whose columns are known (``filter(expr=...)``, ``with_column``):

- over a read that can prune columns (parquet), the read fetches just the columns still
  needed (``explain()`` shows them);
- elsewhere, where a filter would copy every column of the rows it keeps, a
  ``PruneColumns`` below the lowest filter keeps only those columns. A block that lacks one
  of them passes whole, so a missing column is still reported by the operator that uses
  it, as written. It fuses with the maps around it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.logical.all_to_all import Aggregate
from engine.logical.operators import (
    Filter,
    LogicalOperator,
    PartialAggregate,
    Project,
    PruneColumns,
    Read,
)
from engine.logical.plan import LogicalPlan, transform_dag


def _through_exprs(needed: set[str], exprs: tuple[tuple[str, Any], ...]) -> set[str]:
    """The columns needed below a projection's expressions (all read the input block)."""
    from engine.expressions import referenced_columns

    below = needed - {name for name, _ in exprs}  # produced here, not read from below...
    for _, expr in exprs:
        below |= referenced_columns(expr)  # ...and every expression is evaluated
    return below


def _consumer_needs(op: LogicalOperator) -> set[str] | None:
    """The columns ``op`` reads of its input, when it reads only some of them."""
    if isinstance(op, Project):
        if op.select is None or op.drop or op.rename or op.udf_columns:
            return None
        return _through_exprs(set(op.select), op.exprs)
    if isinstance(op, (PartialAggregate, Aggregate)):
        needed: set[str] = set(op.keys) if isinstance(op, Aggregate) else set()
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


def _project_read(read: Read, needed: set[str]) -> Read | None:
    """``read`` fetching only ``needed``, or None when it cannot or need not change."""
    if not read.datasource.supports_projection_pushdown():
        return None
    schema = read.datasource.schema()
    if schema is None or not needed <= set(schema.names):
        return None  # unknown columns: let the operator that uses them fail as written
    if set(schema.names) <= needed:
        return None  # nothing left to drop (also: already pushed)
    columns = [n for n in schema.names if n in needed]
    return replace(read, datasource=read.datasource.apply_projection(columns))


class PruneUnusedColumns:
    """Read only the columns a plan uses, and filter only those (see the module)."""

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
            rebuilt: LogicalOperator
            if isinstance(node, Read):
                projected = _project_read(node, needed)
                if projected is None:
                    return op
                rebuilt = projected
            elif not any(isinstance(c, Filter) for c in chain):
                return op  # nothing below copies columns: a final select is zero-copy
            elif isinstance(node, PruneColumns) and set(node.keep) == needed:
                return op  # already pruned
            else:
                rebuilt = PruneColumns(input=node, keep=tuple(sorted(needed)))
            for step in reversed(chain):
                rebuilt = step.with_inputs(rebuilt)
            return op.with_inputs(rebuilt)

        return LogicalPlan(transform_dag(plan.dag, prune))
