"""RangeDatasource: the rows 0..n-1 (``range``) or tensors filled with them
(``range_tensor``), generated on the workers."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from engine.block import BlockMetadata, empty_table_like, numpy_to_column
from engine.context import DataContext
from engine.io.interfaces import Datasource, ReadTask


def _generate(start: int, stop: int, shape: tuple[int, ...] | None,
              rows_per_block: int) -> Iterator[pa.Table]:
    if start >= stop:
        yield empty_table_like(RangeDatasource(0, shape).schema())
        return
    for lo in range(start, stop, rows_per_block):
        hi = min(stop, lo + rows_per_block)
        ids = np.arange(lo, hi, dtype=np.int64)
        if shape is None:
            yield pa.Table.from_arrays([numpy_to_column(ids)], names=["id"])
        else:
            data = np.broadcast_to(ids.reshape((-1,) + (1,) * len(shape)), (hi - lo, *shape))
            yield pa.Table.from_arrays([numpy_to_column(np.ascontiguousarray(data))],
                                       names=["data"])


class RangeDatasource(Datasource):
    def __init__(self, n: int, tensor_shape: tuple[int, ...] | None = None) -> None:
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"range needs a non-negative integer n; got {n!r}")
        self.n = int(n)
        self.tensor_shape = tensor_shape
        self._row_bytes = 8 * (math.prod(tensor_shape) if tensor_shape else 1)

    def get_name(self) -> str:
        return "RangeTensor" if self.tensor_shape else "Range"

    def estimate_inmemory_data_size(self) -> int:
        return self.n * self._row_bytes

    def num_rows(self) -> int:
        return self.n

    def schema(self) -> pa.Schema:
        if self.tensor_shape is None:
            return pa.schema([("id", pa.int64())])
        return pa.schema([("data", pa.fixed_shape_tensor(pa.int64(), self.tensor_shape))])

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        if self.n == 0:
            return [ReadTask(functools.partial(_generate, 0, 0, self.tensor_shape, 1),
                             BlockMetadata(0, 0, self.schema()))]
        parallelism = max(1, min(parallelism, self.n))
        max_rows = max(1, DataContext.get_current().max_block_bytes() // self._row_bytes)
        tasks = []
        for i in range(parallelism):
            lo, hi = self.n * i // parallelism, self.n * (i + 1) // parallelism
            if lo == hi:
                continue
            fn = functools.partial(_generate, lo, hi, self.tensor_shape, max_rows)
            tasks.append(ReadTask(fn, BlockMetadata(hi - lo, (hi - lo) * self._row_bytes,
                                                    self.schema())))
        return tasks
