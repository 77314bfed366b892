"""The map step of ``map_groups``: the UDF once per group of a block.

Its input blocks come from a GroupPartition exchange: each block is one hash partition
sorted by the keys, so every group is one contiguous run of one block. A group is handed
to the UDF whole, in the requested ``batch_format``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.block import batch_to_table, table_to_batch, validate_batch_format
from engine.physical.exchange.grouping import group_bounds
from engine.physical.transform import Step, TaskInfo, _UdfMixin, udf_display_name


class GroupsStep(_UdfMixin, Step):
    """Call ``fn(group_batch, *fn_args, **fn_kwargs)`` on each group of ``keys``."""

    def __init__(self, fn: Any, keys: tuple[str, ...], batch_format: str,
                 fn_args: tuple[Any, ...], fn_kwargs: dict[str, Any],
                 fn_constructor_args: tuple[Any, ...] = (),
                 fn_constructor_kwargs: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.keys = keys
        self.batch_format = validate_batch_format(batch_format)
        self.fn_args = fn_args
        self.fn_kwargs = fn_kwargs
        self.fn_constructor_args = fn_constructor_args
        self.fn_constructor_kwargs = fn_constructor_kwargs or {}
        self.udf_name = udf_display_name(fn)

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        fn = self.callable()
        what = f"map_groups UDF {self.udf_name!r}"
        for table in blocks:
            if not table.num_rows:
                continue
            for start, stop in group_bounds(table, self.keys):
                batch = table_to_batch(table.slice(start, stop - start), self.batch_format)
                out = fn(batch, *self.fn_args, **self.fn_kwargs)
                if isinstance(out, Iterator):
                    for item in out:
                        yield batch_to_table(item, what)
                else:
                    yield batch_to_table(out, what)
