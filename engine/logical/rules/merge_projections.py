"""MergeProjections: two adjacent column projections become one.

Only the cases whose meaning is plain are merged: a downstream ``Project`` that only selects
or drops columns folds into the upstream one (whose steps run in the order: add columns,
rename, drop, select).
"""

from __future__ import annotations

from dataclasses import replace

from engine.logical.operators import LogicalOperator, Project
from engine.logical.plan import LogicalPlan, transform_dag


def _merge(up: Project, down: Project) -> Project | None:
    if down.exprs or down.udf_columns or down.rename:
        return None
    if down.select is not None and down.drop:
        return None
    if up.select is not None:
        kept = list(up.select)
        if down.select is not None:
            if not set(down.select) <= set(kept):
                return None  # keep the failing select visible at run time
            return replace(up, select=tuple(down.select))
        if not set(down.drop) <= set(kept):
            return None
        return replace(up, select=tuple(c for c in kept if c not in down.drop))
    if down.select is not None:
        if set(down.select) & set(up.drop):
            return None
        return replace(up, select=tuple(down.select))
    if set(down.drop) & set(up.drop):
        return None  # dropping a column twice fails as written; keep it visible
    return replace(up, drop=up.drop + down.drop)


class MergeProjections:
    def apply(self, plan: LogicalPlan) -> LogicalPlan:
        def merge(op: LogicalOperator) -> LogicalOperator:
            if isinstance(op, Project) and isinstance(op.input, Project):
                merged = _merge(op.input, op)
                if merged is not None:
                    return merged
            return op

        return LogicalPlan(transform_dag(plan.dag, merge))
