"""Shaping what a read task yields: blocks of at most ``target_max_block_size`` bytes.

Readers produce tables of whatever size their format gives (a CSV batch, a row group, one
image). :class:`BlockOutputBuffer` coalesces small ones up to ``target_min_block_size`` and
slices big ones (zero-copy) down to ``target_max_block_size``. A table that is big enough
on its own is yielded as it is: concatenating it with the next would copy it, and blocks
that leave as soon as they are read reach the consumer sooner.
Tables with different schemas are never merged. A task that read no rows at all yields one
empty block with the schema it saw, so downstream still learns the columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from engine.block import empty_table_like, single_chunk, split_by_size


class BlockOutputBuffer:
    """Coalesce tables to at least ``min_bytes`` and split them to at most ``max_bytes``."""

    def __init__(self, max_bytes: int, min_bytes: int = 1 << 20) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.min_bytes = min(min_bytes, max_bytes)
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0
        self._yielded_rows = False
        self._empty_schema: pa.Schema | None = None

    def add(self, table: pa.Table) -> Iterator[pa.Table]:
        """Take ``table``; yield the blocks that are complete."""
        if table.num_rows == 0:
            if self._empty_schema is None:
                self._empty_schema = table.schema
            return
        if self._pending and not self._pending[0].schema.equals(table.schema):
            yield from self._flush()
        if table.nbytes >= self.min_bytes or self._pending_bytes + table.nbytes > self.max_bytes:
            yield from self._flush()  # a table big enough alone is never concatenated
        if table.nbytes > self.max_bytes:
            pieces = split_by_size(table, self.max_bytes)
            for piece in pieces[:-1]:
                self._yielded_rows = True
                yield piece
            table = pieces[-1]
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        if self._pending_bytes >= self.min_bytes:
            yield from self._flush()

    def finish(self) -> Iterator[pa.Table]:
        """Yield what is left (or one empty block if no rows were seen at all)."""
        yield from self._flush()
        if not self._yielded_rows and self._empty_schema is not None:
            yield empty_table_like(self._empty_schema)

    def _flush(self) -> Iterator[pa.Table]:
        if not self._pending:
            return
        tables, self._pending, self._pending_bytes = self._pending, [], 0
        if len(tables) == 1:
            block = tables[0]
        elif tables[0].num_columns == 0:  # concat_tables would drop the row count
            block = empty_rows(sum(t.num_rows for t in tables))
        else:
            block = pa.concat_tables(tables)
        self._yielded_rows = True
        yield single_chunk(block)


def empty_rows(num_rows: int) -> pa.Table:
    """A table with no columns and ``num_rows`` rows (what ``count()`` reads)."""
    return pa.table({"_": pa.nulls(num_rows)}).select([])


def append_constant_columns(table: pa.Table, values: list[tuple[pa.Field, Any]]) -> pa.Table:
    """Append one column per ``(field, value)`` holding ``value`` in every row; a column
    the table already has is left as it is."""
    n = table.num_rows
    for fld, value in values:
        if fld.name in table.column_names:
            continue
        if value is None:
            column = pa.nulls(n, fld.type)
        else:
            column = pa.repeat(pa.scalar(value, fld.type), n)
        table = table.append_column(fld, column)
    return table
