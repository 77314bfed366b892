"""``repr(Dataset)``: the plan, with the source's row count and schema once they are known.

The format is Ray Data 2.60's: the operators from the last one down, each input indented
under ``+- ``, ending in the source, shown as
``Dataset(num_rows=10, schema={id: int64})`` (``num_rows=?`` and ``schema=Unknown schema``
until known), or ``MaterializedDataset(num_blocks=2, num_rows=10, schema={...})`` for a
materialized dataset. A source line longer than 80 characters is broken over lines.
Nothing is executed to print it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

_LINE_LIMIT = 80


def schema_text(schema: pa.Schema | None) -> str:
    """``{a: int64, b: string}``, or ``Unknown schema``."""
    if schema is None or not len(schema):
        return "Unknown schema"
    return "{" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "}"


def source_text(kind: str, fields: list[tuple[str, Any]], indent: str) -> str:
    """``kind(name=value, ...)`` on one line, or one field a line past the limit."""
    one_line = f"{kind}(" + ", ".join(f"{k}={v}" for k, v in fields) + ")"
    if len(indent) + len(one_line) <= _LINE_LIMIT:
        return one_line
    inner = indent + "   "
    body = ",\n".join(f"{inner}{k}={v}" for k, v in fields)
    return f"{kind}(\n{body}\n{indent})"


def plan_text(op: Any, source_label: Any, depth: int = 0) -> str:
    """The tree under ``op``; ``source_label(op, indent)`` renders an operator with no inputs."""
    indent = "   " * (depth - 1) + "+- " if depth else ""
    pad = "   " * depth
    inputs = list(getattr(op, "inputs", ()))
    label = op.describe() if inputs else source_label(op, pad)
    lines = [indent + label]
    lines.extend(plan_text(i, source_label, depth + 1) for i in inputs)
    return "\n".join(lines)
