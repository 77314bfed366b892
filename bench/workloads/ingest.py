"""ingest: read two columns of the parquet set and iterate batches of 8192 rows.

A training loop's input side. Reports the time to the first batch as well as the total.
Baselines: pyarrow's own batch iterator over the files, and Daft.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import numpy as np

from bench.data import PARQUET_ROWS, ParquetSet, parquet_set
from bench.workloads import Result, scaled

COLUMNS = ["id", "x"]
BATCH_SIZE = 8192


def _rows(scale: float) -> int:
    return scaled(PARQUET_ROWS, scale, minimum=16)


def _consume(batches: Iterable[Any], source: ParquetSet, started: float) -> Result:
    """Drain ``batches`` (mappings of column to array-like); check ids; time the first."""
    first = None
    rows = id_sum = 0
    for batch in batches:
        if first is None:
            first = time.perf_counter() - started
        ids = np.asarray(batch["id"])
        rows += len(ids)
        id_sum += int(ids.sum())
    expected = source.rows * (source.rows - 1) // 2
    ok = rows == source.rows and id_sum == expected
    detail = "" if ok else f"rows {rows}/{source.rows}, id sum {id_sum} != {expected}"
    extra = {"first_batch_s": first if first is not None else float("nan")}
    return Result(rows=rows, bytes=16 * rows, ok=ok, detail=detail, extra=extra)


def prepare(scale: float) -> None:
    parquet_set(_rows(scale))


def setup(api: ModuleType, scale: float) -> ParquetSet:
    return parquet_set(_rows(scale))


setup_daft = setup
setup_pyarrow_loop = setup


def run(api: ModuleType, scale: float, data: ParquetSet) -> Result:
    started = time.perf_counter()
    # The directory, not the file list: Ray 2.60 resolves a list of paths on threads that
    # race importing fsspec's HTTP filesystem and fail where aiohttp is not installed.
    ds = api.read_parquet(str(data.directory), columns=COLUMNS)
    return _consume(ds.iter_batches(batch_size=BATCH_SIZE), data, started)


def run_daft(daft: ModuleType, scale: float, data: ParquetSet) -> Result:
    started = time.perf_counter()
    df = daft.read_parquet(data.paths).select(*COLUMNS).into_batches(BATCH_SIZE)
    return _consume(df.to_arrow_iter(), data, started)


def run_pyarrow_loop(pa: ModuleType, scale: float, data: ParquetSet) -> Result:
    started = time.perf_counter()

    def batches() -> Iterable[Any]:
        for path in data.paths:
            yield from pa.parquet.ParquetFile(path).iter_batches(BATCH_SIZE, columns=COLUMNS)

    return _consume(batches(), data, started)
