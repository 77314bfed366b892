"""Shared pieces of the all-to-all workloads (shuffle, sort, sort-full, groupby, join-small,
join-large): the input (the cached parquet set), how output is consumed, and the checks.

Every workload consumes all of its output: it iterates the batches and sums a column (never
``count()``, which an engine may answer without doing the work).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.data import PARQUET_ROWS, ParquetSet, parquet_set
from bench.workloads import Result, scaled

PARTITIONS = 16  # join/groupby partitions for engines that need a number


def rows_for(scale: float) -> int:
    return scaled(PARQUET_ROWS, scale, minimum=16)


def prepare(scale: float) -> None:
    parquet_set(rows_for(scale))


def source(scale: float) -> ParquetSet:
    return parquet_set(rows_for(scale))


def read_columns(src: ParquetSet, columns: list[str]) -> pa.Table:
    """The columns of the whole set, read in this process (for checks and baselines)."""
    return pa.concat_tables(pq.read_table(p, columns=columns) for p in src.paths)


def consume(ds: Any, column: str) -> tuple[int, float]:
    """Rows and the sum of ``column`` over every batch of a ray.data-shaped dataset."""
    rows = 0
    total = 0.0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        values = batch[column]
        rows += len(values)
        total += float(np.sum(values))
    return rows, total


def consume_daft(df: Any, column: str) -> tuple[int, float]:
    """Rows and the sum of ``column`` of a Daft frame, partition by partition."""
    rows = 0
    total = 0.0
    for part in df.iter_partitions():
        table = part.to_arrow() if hasattr(part, "to_arrow") else part
        rows += table.num_rows
        total += float(pc.sum(table.column(column)).as_py() or 0.0)
    return rows, total


def check(src: ParquetSet, got: tuple[int, float], expected: tuple[int, float],
          nbytes: int | None = None) -> Result:
    rows, total = got
    ok = rows == expected[0] and np.isclose(total, expected[1], rtol=1e-9, atol=1e-6)
    detail = "" if ok else f"rows/sum {got} != {expected}"
    return Result(rows=src.rows, bytes=nbytes, ok=bool(ok), detail=detail)


def api_col(api: ModuleType) -> Any:
    from bench.engines import col

    return col(api)
