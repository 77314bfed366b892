"""Arrow's grouped aggregation and hash join, run as Acero plans built here.

``Table.group_by(...).aggregate`` and ``Table.join`` run the same Acero nodes, but they
reach them through the ``pyarrow.acero`` module, which imports ``pyarrow.dataset``, whose
import makes an Arrow scalar and so imports pandas: a fifth of a second of CPU in every
worker that groups or joins and has no other use for pandas. The node classes live in
``pyarrow._acero`` (``pyarrow.acero`` re-exports them), which imports neither.

``group_aggregate`` and ``hash_join`` give the results of those two methods: the same
kernels with the same options, and the same output columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

try:
    from pyarrow._acero import (
        AggregateNodeOptions,
        Declaration,
        HashJoinNodeOptions,
        TableSourceNodeOptions,
    )
except ImportError:  # a pyarrow that moved them: the public module has them
    from pyarrow.acero import (  # type: ignore[no-redef]
        AggregateNodeOptions,
        Declaration,
        HashJoinNodeOptions,
        TableSourceNodeOptions,
    )

# (target column, function, options or None, output name); an empty target counts rows.
Aggregation = tuple[str | Sequence[str], str, Any, str]


def group_aggregate(table: pa.Table, keys: Sequence[str],
                    aggregations: Sequence[Aggregation],
                    use_threads: bool = False) -> pa.Table:
    """``table.group_by(keys, use_threads).aggregate(...)`` with each aggregation's output
    column named by its spec: the key columns, then the aggregations in spec order.
    Functions are named without the ``hash_`` prefix (``"sum"``, ``"count"``...)."""
    specs = [(target, func if func.startswith("hash_") else f"hash_{func}", options, name)
             for target, func, options, name in aggregations]
    plan = Declaration.from_sequence([
        Declaration("table_source", TableSourceNodeOptions(table)),
        Declaration("aggregate", AggregateNodeOptions(specs, keys=list(keys))),
    ])
    out = plan.to_table(use_threads=use_threads)
    return out.select([*keys, *(name for *_, name in aggregations)])


# Ray Data's join type names -> Acero's.
_ARROW_JOIN = {"inner": "inner", "left_outer": "left outer", "right_outer": "right outer",
               "full_outer": "full outer", "left_semi": "left semi", "right_semi": "right semi",
               "left_anti": "left anti", "right_anti": "right anti"}


def hash_join(left: pa.Table, right: pa.Table, join_type: str, left_on: Sequence[str],
              right_on: Sequence[str], left_suffix: str | None = None,
              right_suffix: str | None = None, use_threads: bool = True) -> pa.Table:
    """``left.join(right, keys=left_on, right_keys=right_on, coalesce_keys=True, ...)``
    with Ray Data's ``join_type`` names: each key appears once (the left side's, the
    right side's for a right outer join, both coalesced for a full outer join); semi and
    anti joins give one side's columns; a column name both sides have gets the side's
    suffix."""
    how = _ARROW_JOIN[join_type]
    left_on, right_on = list(left_on), list(right_on)
    left_cols, right_cols = list(left.column_names), list(right.column_names)
    if how in ("left semi", "left anti"):
        right_cols = []
    elif how in ("right semi", "right anti"):
        left_cols = []
    elif how in ("inner", "left outer"):
        right_cols = [c for c in right_cols if c not in right_on]
    elif how == "right outer":
        left_cols = [c for c in left_cols if c not in left_on]
    options = HashJoinNodeOptions(how, left_on, right_on, left_cols, right_cols,
                                  output_suffix_for_left=left_suffix or "",
                                  output_suffix_for_right=right_suffix or "")
    plan = Declaration("hashjoin", options=options, inputs=[
        Declaration("table_source", TableSourceNodeOptions(left)),
        Declaration("table_source", TableSourceNodeOptions(right))])
    out = plan.to_table(use_threads=use_threads)
    if how != "full outer":
        return out
    return _coalesced_keys(out, left_cols, right_cols, left_on, right_on, left_suffix,
                           right_suffix)


def _coalesced_keys(out: pa.Table, left_cols: list[str], right_cols: list[str],
                    left_on: list[str], right_on: list[str], left_suffix: str | None,
                    right_suffix: str | None) -> pa.Table:
    """A full outer join's output (every column of both sides) with each left key
    replaced by the first non-null of it and its right key, and the right keys dropped.
    Other columns are named by position: a name both sides have gets the side's suffix."""
    left_names, right_names = set(left_cols), set(right_cols)
    partners = {k: right_on[i] for i, k in enumerate(left_on)}  # a repeated key: the last
    right_at = {name: len(left_cols) + j for j, name in enumerate(right_cols)}
    columns: list[Any] = []
    names: list[str] = []
    for i, name in enumerate(left_cols):
        column = out.column(i)
        if name in partners:
            column = pc.coalesce(column, out.column(right_at[partners[name]]))
        elif left_suffix and name in right_names:
            name += left_suffix
        columns.append(column)
        names.append(name)
    for j, name in enumerate(right_cols):
        if name in right_on:
            continue
        columns.append(out.column(len(left_cols) + j))
        names.append(name + right_suffix if right_suffix and name in left_names else name)
    return pa.Table.from_arrays(columns, names=names)
