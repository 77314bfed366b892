"""A task lets go of each block it has passed on before it makes the next one.

The steps of a task are generators; a local still naming the block yielded last would keep
it alive while the next block is read and transformed, so a worker would need the memory of
two blocks, and in a fresh worker every such byte is a page fault. These tests hold no
reference to what they were given and check, each time the next block is asked for, that
every block made before is gone.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from engine.io import parquet_scan
from engine.io.parquet_datasource import ParquetDatasource
from engine.physical.transform import BatchStep, MapTransformer

ROWS = 1000


class CheckedBlocks:
    """Blocks of ``ROWS`` ids; asking for one more fails if any table made so far, by this
    iterator or (through ``made``) by whatever consumes it, is still alive."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.given = 0
        self.made: list[weakref.ref[pa.Table]] = []

    def __iter__(self) -> Iterator[pa.Table]:
        return self

    def __next__(self) -> pa.Table:
        alive = [i for i, ref in enumerate(self.made) if ref() is not None]
        assert not alive, f"tables {alive} are still held while the next block is made"
        if self.given == self.count:
            raise StopIteration
        start = self.given * ROWS
        self.given += 1
        table = pa.table({"id": np.arange(start, start + ROWS, dtype=np.int64)})
        self.made.append(weakref.ref(table))
        return table


def doubled(batch: pa.Table) -> pa.Table:
    return pa.table({"id": pc.multiply(batch["id"], 2)})


def drain_tracking(outputs: Iterator[Any], made: list[weakref.ref[pa.Table]]) -> int:
    """Consume ``outputs`` keeping nothing but a weak reference to each."""
    rows = 0
    for table in outputs:
        rows += table.num_rows
        made.append(weakref.ref(table))
        del table
    return rows


def doubled_halves(batch: pa.Table) -> Iterator[pa.Table]:
    half = batch.num_rows // 2
    yield doubled(batch.slice(0, half))
    yield doubled(batch.slice(half))


@pytest.mark.parametrize("batch_size", [None, ROWS])
@pytest.mark.parametrize("udf", [doubled, doubled_halves])
def test_a_map_task_holds_no_block_while_it_makes_the_next(batch_size, udf) -> None:
    blocks = CheckedBlocks(count=5)
    transformer = MapTransformer(
        [BatchStep(udf, batch_size, "pyarrow", zero_copy_batch=True, fn_args=(),
                   fn_kwargs={})],
        target_max_block_size=1 << 30, target_min_block_size=1)
    assert drain_tracking(transformer(blocks), blocks.made) == 5 * ROWS


def test_a_parquet_read_holds_no_row_group_while_it_decodes_the_next(tmp_path,
                                                                    monkeypatch) -> None:
    rows_per_group = 200_000  # 1.6 MB a group: above the size small blocks are merged to
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.table({"id": np.arange(3 * rows_per_group, dtype=np.int64)}), path,
                   row_group_size=rows_per_group)
    made: list[weakref.ref[Any]] = []
    real_iter_batches = pq.ParquetFile.iter_batches

    def checked_iter_batches(self, *args, **kwargs):
        for batch in real_iter_batches(self, *args, **kwargs):
            made.append(weakref.ref(batch))
            yield batch
            del batch
            alive = [i for i, ref in enumerate(made) if ref() is not None]
            assert not alive, f"row groups {alive} are still held while the next is read"

    monkeypatch.setattr(parquet_scan.pq.ParquetFile, "iter_batches", checked_iter_batches)
    [task] = ParquetDatasource(str(path)).get_read_tasks(1)
    assert drain_tracking(task(), made) == 3 * rows_per_group
