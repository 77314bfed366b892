"""The logical optimizer: run every enabled rule until the plan stops changing."""

from __future__ import annotations

from engine.logical.interfaces import Rule
from engine.logical.plan import LogicalPlan
from engine.logical.rules.fuse_maps import FuseMaps
from engine.logical.rules.merge_projections import MergeProjections
from engine.logical.rules.prune_columns import PruneUnusedColumns
from engine.logical.rules.push_down_limit import PushDownLimit
from engine.logical.rules.push_down_predicate import PushDownPredicate
from engine.logical.rules.push_down_projection import PushDownProjection
from engine.logical.rules.push_filter_below_exchange import PushFilterBelowExchange
from engine.logical.rules.push_projection_below_exchange import PushProjectionBelowExchange
from engine.logical.rules.sort_limit_to_top_k import SortLimitToTopK

# Order matters within one pass: everything that moves operators runs before maps fuse
# around them (a fused stage is opaque to the other rules).
DEFAULT_RULES: tuple[type[Rule], ...] = (SortLimitToTopK, PushDownLimit,
                                         PushFilterBelowExchange, PushProjectionBelowExchange,
                                         PushDownPredicate,
                                         MergeProjections, PushDownProjection,
                                         PruneUnusedColumns, FuseMaps)
_MAX_PASSES = 20


def optimize(plan: LogicalPlan, disabled: frozenset[str] = frozenset(),
             rules: tuple[type[Rule], ...] | None = None) -> LogicalPlan:
    """Return the optimized plan; rule classes named in ``disabled`` are skipped."""
    active = [r() for r in (rules or DEFAULT_RULES) if r.__name__ not in disabled]
    for _ in range(_MAX_PASSES):
        before = plan.describe()
        for rule in active:
            plan = rule.apply(plan)
        if plan.describe() == before:
            return plan
    return plan
