"""Lookup join: a broadcast join whose small side has unique keys, as an index lookup.

When every key of the small side occurs once, each row of the big side matches at most
one small row, so the join of a big block is the block itself (filtered for inner, semi
and anti joins) beside the small side's columns taken at the matched row. No hash table
is built per block: the small side's key index is built once per worker and reused for
every block of the same broadcast (``SmallSide``, cached by the broadcast's token), the
big block's columns are kept as they are (zero-copy), and one output block comes out of
each input block (nothing is concatenated).

The result equals Arrow's hash join (``tasks.join_tables``) up to row order, which a join
does not promise: column names and order are taken from Arrow's join of the empty
schemas, null keys never match. Where the lookup does not apply (several keys, float
keys, keys of different types, duplicate small keys) ``SmallSide.applies`` is False and
the caller runs the hash join.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.block import empty_table_like, number_array, one_array, python_scalar, to_numpy
from engine.physical.exchange.tasks import combine, join_tables
from engine.physical.transform import Step, TaskInfo

# Join type -> (small side is right, kind): how a block of the big side turns into output.
_KIND = {(True, "inner"): "inner", (True, "left_outer"): "outer",
         (True, "left_semi"): "semi", (True, "left_anti"): "anti",
         (False, "inner"): "inner", (False, "right_outer"): "outer",
         (False, "right_semi"): "semi", (False, "right_anti"): "anti"}
FUSE_MAX_BYTES = 1 << 20  # a small side shipped with the big side's map tasks
_CACHE_ENTRIES = 2  # broadcasts whose small side a worker keeps (one per running join)
_cache: dict[str, SmallSide] = {}


def _lookup_type(t: pa.DataType) -> str | None:
    """How keys of type ``t`` are looked up: ``"int"`` (a hash index over int64),
    ``"arrow"`` (Arrow's set lookup), or None (not at all: floats, nested)."""
    if pa.types.is_integer(t) and t != pa.uint64():
        return "int"
    checks = (pa.types.is_integer, pa.types.is_string, pa.types.is_large_string,
              pa.types.is_binary, pa.types.is_large_binary, pa.types.is_boolean,
              pa.types.is_date, pa.types.is_timestamp)
    if any(check(t) for check in checks):
        return "arrow"
    return None


class SmallSide:
    """The small side of a broadcast, prepared once for lookups by key."""

    def __init__(self, small: pa.Table, big_schema: pa.Schema, small_is_right: bool,
                 join_type: str, small_on: Sequence[str], big_on: Sequence[str],
                 suffixes: tuple[str | None, str | None]) -> None:
        self.small_is_right = small_is_right
        self.big_schema = big_schema
        self.kind = _KIND.get((small_is_right, join_type))
        self.applies = False
        if self.kind is None or len(small_on) != 1 or len(big_on) != 1:
            return
        self.small_key, self.big_key = small_on[0], big_on[0]
        key_type = small.schema.field(self.small_key).type
        self.how = _lookup_type(key_type)
        if self.how is None or big_schema.field(self.big_key).type != key_type:
            return
        keys = one_array(small.column(self.small_key))
        valid = keys.drop_null()
        # Null keys never match: the index holds only the rows with a key.
        self.rows = np.flatnonzero(to_numpy(keys.is_valid()))
        if len(valid) and pc.count_distinct(valid).as_py() != len(valid):
            return  # duplicate keys: a big row can match several small rows
        self.small = small.combine_chunks()
        self.values = valid
        self.index: Any = None
        self.lut: np.ndarray | None = None
        if self.how == "int":
            self._int_index(np.asarray(to_numpy(valid.cast(pa.int64()))))
        left, right = (big_schema, small.schema) if small_is_right else \
            (small.schema, big_schema)
        on = (big_on, small_on) if small_is_right else (small_on, big_on)
        self.schema = join_tables(empty_table_like(left), empty_table_like(right), join_type,
                                  on[0], on[1], *suffixes).schema
        self.sources = _sources(big_schema, small.schema, small_is_right, join_type,
                                self.big_key, self.small_key)
        self.applies = True

    def _int_index(self, keys: np.ndarray) -> None:
        """A lookup table over the key range when it is dense, else a pandas hash index
        (either is built once, here)."""
        if not len(keys):
            self.lut = np.zeros(0, dtype=np.int64)
            self.low, self.high = 0, -1
            return
        low, high = int(keys.min()), int(keys.max())
        if high - low < 8 * len(keys) + 4096:
            self.low, self.high = low, high
            self.lut = np.full(high - low + 1, -1, dtype=np.int64)
            self.lut[keys - low] = self.rows
            return
        import pandas as pd

        self.index = pd.Index(keys)

    def positions(self, big: pa.Table) -> pa.Array:
        """For each row of ``big``, the small row its key matches, or null."""
        keys = big.column(self.big_key)
        if self.how == "int":
            keys = one_array(keys)
            filled = pc.fill_null(keys, python_scalar(0)) if keys.null_count else keys
            values = to_numpy(filled.cast(pa.int64()))
            if self.lut is not None and len(values) and len(self.lut) and \
                    values.min() >= self.low and values.max() <= self.high:
                # Every key inside the table's range: one gather, a mask only for misses.
                rows = np.take(self.lut, values - self.low if self.low else values)
                if not keys.null_count and rows.min() >= 0:
                    return _indices(rows)
                missing = rows < 0
            elif self.lut is not None:  # keys in a dense range: one gather
                inside = (values >= self.low) & (values <= self.high)
                rows = self.lut[np.where(inside, values - self.low, 0)] if len(self.lut) \
                    else np.zeros(len(values), dtype=np.int64)
                missing = (rows < 0) | ~inside
            else:
                found = self.index.get_indexer(values)
                missing = found < 0
                rows = self.rows[found]  # -1 picks some row: masked below
            if keys.null_count:
                missing |= ~to_numpy(keys.is_valid())
            return _indices(rows, missing if missing.any() else None)
        found = pc.index_in(keys, value_set=self.values)
        return pc.take(_indices(self.rows), found)

    def join(self, big: pa.Table) -> pa.Table:
        """The join of one big block with the whole small side."""
        at = self.positions(big)
        matched = at.null_count == 0
        if self.kind in ("semi", "anti"):
            keep = at.is_valid() if self.kind == "semi" else at.is_null()
            return big.filter(keep)
        if self.kind == "inner" and not matched:
            keep = at.is_valid()
            big, at = big.filter(keep), at.filter(keep)
        # A key column holds the big side's key: every output row has a big row, and a
        # matched small row has the same key.
        columns = [big.column(i) if side == "b" else self.small.column(i).take(at)
                   for side, i in self.sources]
        out = pa.Table.from_arrays(columns, names=self.schema.names)
        return out if out.schema.equals(self.schema) else out.cast(self.schema)


def _indices(rows: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Row numbers (int64) as an Arrow array, null where ``missing``."""
    array = number_array(rows, missing)
    assert array is not None, f"row numbers are integers, not {rows.dtype}"
    return array


def _sources(big: pa.Schema, small: pa.Schema, small_is_right: bool, join_type: str,
             big_key: str, small_key: str) -> list[tuple[str, int]]:
    """Where each column of the hash join's output comes from: ``("b", i)`` is column
    ``i`` of the big side, ``("s", i)`` of the small side (taken at the matched row); the
    (coalesced) key comes from the big side. Learnt from Arrow's join of empty tables
    whose columns are renamed to unique tags, so names never collide."""
    tags = {f"b{i}": ("b", i) for i in range(len(big))}
    tags |= {f"s{i}": ("s", i) for i in range(len(small))}
    big_t = empty_table_like(pa.schema([pa.field(f"b{i}", f.type) for i, f in enumerate(big)]))
    small_t = empty_table_like(pa.schema([pa.field(f"s{i}", f.type)
                                          for i, f in enumerate(small)]))
    bk, sk = f"b{big.get_field_index(big_key)}", f"s{small.get_field_index(small_key)}"
    if small_is_right:
        out = join_tables(big_t, small_t, join_type, [bk], [sk], None, None)
    else:
        out = join_tables(small_t, big_t, join_type, [sk], [bk], None, None)
    return [tags[bk] if name in (bk, sk) else tags[name] for name in out.column_names]


def small_side(token: str, small: list[pa.Table], big_schema: pa.Schema, small_is_right: bool,
               join_type: str, small_on: Sequence[str], big_on: Sequence[str],
               suffixes: tuple[str | None, str | None]) -> SmallSide:
    """The prepared small side of broadcast ``token``: built on this worker's first block
    of that broadcast, then reused."""
    cached = _cache.get(token)
    if cached is None:
        table = combine(small)
        assert table is not None, "the small side has a schema"
        cached = SmallSide(table, big_schema, small_is_right, join_type, small_on, big_on,
                           suffixes)
        while len(_cache) >= _CACHE_ENTRIES:
            _cache.pop(next(iter(_cache)))
        _cache[token] = cached
    return cached


class BroadcastJoinStep(Step):
    """A broadcast join as the last step of the big side's map tasks (the planner appends
    it where the small side is a few existing blocks of at most ``FUSE_MAX_BYTES``): each
    block is joined where it is made, so the big side never goes through the store before
    the join. The small side travels with the step as Arrow IPC bytes, like a small table a
    UDF closes over, and is prepared once per worker (see ``small_side``). A block the
    lookup does not apply to is hash-joined with it (``join``)."""

    def __init__(self, small: pa.Table, join: Any, small_is_right: bool) -> None:
        self.small_ipc = serialize_ipc(small)
        self.join = join  # a ``tasks.JoinReduce``
        self.small_is_right = small_is_right
        self.token = uuid.uuid4().hex  # names this small side in the workers' caches

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        small: pa.Table | None = None
        j = self.join
        small_on, big_on = (j.right_on, j.left_on) if self.small_is_right else \
            (j.left_on, j.right_on)
        for table in blocks:
            if not table.num_columns:
                continue  # no schema (``from_items([])``): nothing to join
            if small is None:
                cached = _cache.get(self.token)
                small = cached.small if cached is not None and cached.applies else \
                    pa.ipc.open_stream(pa.py_buffer(self.small_ipc)).read_all()
            side = small_side(self.token, [small], table.schema, self.small_is_right,
                              j.join_type, small_on, big_on, (j.left_suffix, j.right_suffix))
            if side.applies and side.big_schema.equals(table.schema):
                yield side.join(table)
            elif self.small_is_right:
                yield from j([table], [small], 0)
            else:
                yield from j([small], [table], 0)


def serialize_ipc(table: pa.Table) -> bytes:
    """``table`` as Arrow IPC stream bytes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]
