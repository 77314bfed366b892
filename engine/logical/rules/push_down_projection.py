"""PushDownProjection: read only the columns a plan uses.

A ``Project`` that only selects (or drops) columns, sitting on a ``Read`` whose datasource
can prune columns, possibly with expression filters in between, makes the read fetch just
the selected columns plus those the filters need.
"""

from __future__ import annotations

from dataclasses import replace

from engine.logical.operators import Filter, LogicalOperator, Project, Read
from engine.logical.plan import LogicalPlan, transform_dag


def _selected(project: Project, read: Read) -> list[str] | None:
    if project.exprs or project.udf_columns or project.rename:
        return None
    if project.select is not None and not project.drop:
        return list(project.select)
    schema = read.datasource.schema()
    if project.select is None and project.drop and schema is not None:
        return [n for n in schema.names if n not in project.drop]
    return None


class PushDownProjection:
    def apply(self, plan: LogicalPlan) -> LogicalPlan:
        from engine.expressions import referenced_columns

        def push(op: LogicalOperator) -> LogicalOperator:
            if not isinstance(op, Project):
                return op
            filters: list[Filter] = []
            node = op.input
            while isinstance(node, Filter) and node.expr is not None:
                filters.append(node)
                node = node.input
            if not isinstance(node, Read) or not node.datasource.supports_projection_pushdown():
                return op
            selected = _selected(op, node)
            if selected is None:
                return op
            needed = list(selected)
            for f in filters:
                needed += sorted(referenced_columns(f.expr) - set(needed))
            schema = node.datasource.schema()
            if schema is not None and any(c not in schema.names for c in needed):
                return op  # let the projection raise its clear error at run time
            current = getattr(node.datasource, "projected_columns", None)
            if current is not None and list(current) == needed:
                return op  # already pushed
            rebuilt: LogicalOperator = replace(node, datasource=node.datasource
                                               .apply_projection(needed))
            for f in reversed(filters):
                rebuilt = replace(f, input=rebuilt)
            if needed == selected and not filters:
                return rebuilt
            return Project(rebuilt, select=tuple(selected))

        return LogicalPlan(transform_dag(plan.dag, push))
