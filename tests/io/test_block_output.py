"""BlockOutputBuffer: what a read task yields is coalesced to the minimum block size, split
to the maximum, never mixes schemas, and a table big enough on its own leaves uncopied."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.io.block_output import BlockOutputBuffer


def _table(rows: int, start: int = 0) -> pa.Table:
    return pa.table({"id": np.arange(start, start + rows, dtype=np.int64)})  # 8 bytes a row


def _drain(buffer: BlockOutputBuffer, tables: list[pa.Table]) -> list[pa.Table]:
    out = []
    for table in tables:
        out.extend(buffer.add(table))
    out.extend(buffer.finish())
    return out


def test_small_tables_are_coalesced_up_to_the_minimum():
    blocks = _drain(BlockOutputBuffer(max_bytes=8000, min_bytes=800),
                    [_table(30, 30 * i) for i in range(10)])  # 240 bytes each
    assert [b.num_rows for b in blocks] == [120, 120, 60]
    assert np.array_equal(np.concatenate([b["id"].to_numpy() for b in blocks]), np.arange(300))
    assert all(c.num_chunks == 1 for b in blocks for c in b.columns)


def test_a_table_above_the_minimum_is_yielded_as_is_without_a_copy():
    table = _table(200)
    (block,) = _drain(BlockOutputBuffer(max_bytes=8000, min_bytes=800), [table])
    assert block["id"].chunk(0).buffers()[1].address == \
        table["id"].chunk(0).buffers()[1].address


def test_big_tables_are_split_to_the_maximum():
    blocks = _drain(BlockOutputBuffer(max_bytes=800, min_bytes=100), [_table(350)])
    assert len(blocks) == 4 and all(b.nbytes <= 800 for b in blocks)
    assert np.array_equal(np.concatenate([b["id"].to_numpy() for b in blocks]), np.arange(350))


def test_schemas_are_never_mixed_and_an_empty_read_keeps_its_schema():
    floats = pa.table({"x": np.zeros(5)})
    blocks = _drain(BlockOutputBuffer(max_bytes=8000, min_bytes=800), [_table(5), floats])
    assert [b.schema.names for b in blocks] == [["id"], ["x"]]
    (empty,) = _drain(BlockOutputBuffer(max_bytes=8000), [_table(0)])
    assert empty.num_rows == 0 and empty.schema.names == ["id"]


def test_a_big_table_after_small_ones_is_not_concatenated_with_them():
    small, big = _table(30), _table(200, 30)
    blocks = _drain(BlockOutputBuffer(max_bytes=8000, min_bytes=800), [small, big])
    assert [b.num_rows for b in blocks] == [30, 200]
    assert blocks[1]["id"].chunk(0).buffers()[1].address == \
        big["id"].chunk(0).buffers()[1].address
