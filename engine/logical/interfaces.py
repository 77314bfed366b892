"""The contract of optimizer rules."""

from __future__ import annotations

from typing import Protocol

from engine.logical.plan import LogicalPlan


class Rule(Protocol):
    """One rewrite: ``apply`` returns a new plan (or the same one) and never mutates."""

    def apply(self, plan: LogicalPlan) -> LogicalPlan: ...
