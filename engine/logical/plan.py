"""LogicalPlan: the DAG of logical operators behind a Dataset, and how to print it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.logical.operators import LogicalOperator


@dataclass(frozen=True)
class LogicalPlan:
    """A plan is its output operator; ``inputs`` links lead back to the sources."""

    dag: LogicalOperator

    def operators(self) -> list[LogicalOperator]:
        """All operators, sources first (a topological order)."""
        seen: dict[int, LogicalOperator] = {}

        def visit(op: LogicalOperator) -> None:
            if id(op) in seen:
                return
            for inp in op.inputs:
                visit(inp)
            seen[id(op)] = op

        visit(self.dag)
        return list(seen.values())

    def sources(self) -> list[LogicalOperator]:
        return [op for op in self.operators() if not op.inputs]

    def describe(self) -> str:
        return describe_dag(self.dag, lambda op: op.describe())


def transform_dag(op: LogicalOperator,
                  fn: Callable[[LogicalOperator], LogicalOperator]) -> LogicalOperator:
    """Rebuild the DAG bottom-up, applying ``fn`` to each operator after its inputs."""
    memo: dict[int, LogicalOperator] = {}

    def visit(node: LogicalOperator) -> LogicalOperator:
        if id(node) in memo:
            return memo[id(node)]
        new_inputs = [visit(i) for i in node.inputs]
        rebuilt = node
        if any(a is not b for a, b in zip(new_inputs, node.inputs, strict=False)):
            rebuilt = node.with_inputs(*new_inputs)
        result = fn(rebuilt)
        memo[id(node)] = result
        return result

    return visit(op)


def describe_dag(op: Any, label: Callable[[Any], str], indent: int = 0) -> str:
    """Print a DAG as an indented tree, output first."""
    lines = ["  " * indent + ("+- " if indent else "") + label(op)]
    for inp in getattr(op, "inputs", ()):
        lines.append(describe_dag(inp, label, indent + 1))
    return "\n".join(lines)
