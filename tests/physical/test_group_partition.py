"""The map_groups reduce: blocks cut only at group boundaries, sizes of groups."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import GroupTooLargeError
from engine.physical.exchange.grouping import GroupPartitionReduce, largest_group


@given(keys=st.lists(st.one_of(st.none(), st.integers(0, 9)), max_size=80),
       pieces=st.integers(1, 4), max_bytes=st.integers(1, 400))
@settings(max_examples=40, deadline=None)
def test_blocks_hold_whole_groups_in_key_order(keys, pieces, max_bytes):
    table = pa.table({"k": pa.array(keys, pa.int64()),
                      "s": pa.array([f"v{i}" for i in range(len(keys))])})
    step = max(1, len(keys) // pieces)
    parts = [table.slice(i, step) for i in range(0, len(keys), step)] or [table]
    blocks = list(GroupPartitionReduce(["k"], 1 << 30, max_bytes)(parts, 0))
    out = pa.concat_tables(blocks) if blocks else table.slice(0, 0)
    got = out.column("k").to_pylist()
    assert sorted(got, key=lambda k: (k is None, k or 0)) == got
    assert sorted(out.column("s").to_pylist()) == sorted(table.column("s").to_pylist())
    seen: set = set()
    for block in blocks:
        assert block.num_rows or len(blocks) == 1  # an empty partition keeps its schema
        groups = set(block.column("k").to_pylist())
        assert not groups & seen  # a group never spans blocks
        seen |= groups


def test_largest_group_counts_string_lengths_over_pieces():
    a = pa.table({"k": ["x", "y"], "s": ["a" * 100, "b"]})
    b = pa.table({"k": ["x", "y"], "s": ["c" * 50, "d"]})
    key, size = largest_group([a, b], ["k"])
    assert key == {"k": "x"}
    assert size == (1 + 4 + 100 + 4) + (1 + 4 + 50 + 4)
    with pytest.raises(GroupTooLargeError, match="k='x'"):
        list(GroupPartitionReduce(["k"], 150, None)([a, b], 0))
