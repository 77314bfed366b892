"""PushDownPredicate: move expression filters toward (and into) the read.

A ``Filter(expr)`` moves below a ``Project`` when every column it reads passes through the
projection unchanged (renamed columns are renamed back in the expression) and the projection
runs no ``add_column`` function (which sees whole batches); it merges into a
``Read`` whose datasource can filter (parquet row groups, partitions), where it disappears
from the plan and shows in the read's description. Filters by Python functions never move.
"""

from __future__ import annotations

from dataclasses import replace

from engine.logical.operators import Filter, LogicalOperator, Project, Read
from engine.logical.plan import LogicalPlan, transform_dag


def _passes_through(project: Project, columns: set[str]) -> dict[str, str] | None:
    """The renaming to apply to the predicate below ``project``, or None if it cannot go."""
    if project.udf_columns:
        return None  # an add_column function sees whole batches: filtering first changes them
    if columns & set(project.drop) or (project.select is not None
                                       and not columns <= set(project.select)):
        return None  # the filter reads a column the projection removes: let it fail as written
    produced = {n for n, _ in project.exprs}
    inverse = {new: old for old, new in project.rename}
    if columns & produced:
        return None
    renamed_to_old = {}
    for c in columns:
        old = inverse.get(c, c)
        if old != c:
            renamed_to_old[c] = old
        elif c in dict(project.rename):
            return None  # `c` was renamed away: below the project it means another column
        if old in produced:
            return None
    return renamed_to_old


class PushDownPredicate:
    def apply(self, plan: LogicalPlan) -> LogicalPlan:
        from engine.expressions import can_push_down, referenced_columns, rename_columns, to_pyarrow

        def push(op: LogicalOperator) -> LogicalOperator:
            if not isinstance(op, Filter) or op.expr is None:
                return op
            up = op.input
            if isinstance(up, Project):
                mapping = _passes_through(up, referenced_columns(op.expr))
                if mapping is None:
                    return op
                expr = rename_columns(op.expr, mapping) if mapping else op.expr
                return up.with_inputs(push(replace(op, input=up.input, expr=expr)))
            if isinstance(up, Read) and up.datasource.supports_predicate_pushdown():
                schema = up.datasource.schema_of(referenced_columns(op.expr))
                if not can_push_down(op.expr, schema):
                    return op
                source = up.datasource.apply_predicate(to_pyarrow(op.expr, schema))
                return replace(up, datasource=source)
            return op

        return LogicalPlan(transform_dag(plan.dag, push))
