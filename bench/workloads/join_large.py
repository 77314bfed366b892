"""join-large: the parquet set joined with itself on ``id`` (unique): an 8M x 8M inner hash
join at scale 1, every joined row consumed.

The check: each id matches once (row count and the sum of ids).
"""

from __future__ import annotations

from types import ModuleType

from bench.data import ParquetSet
from bench.workloads import Result
from bench.workloads.exchange_common import (
    PARTITIONS,
    check,
    consume,
    consume_daft,
    prepare,
    source,
)

__all__ = ["prepare", "run", "run_daft", "setup", "setup_daft"]


def setup(api: ModuleType, scale: float) -> ParquetSet:
    return source(scale)


setup_daft = setup


def _expected(src: ParquetSet) -> tuple[int, float]:
    return src.rows, float(src.rows * (src.rows - 1) // 2)


def run(api: ModuleType, scale: float, data: ParquetSet) -> Result:
    left = api.read_parquet(str(data.directory), columns=["id", "x"])
    right = api.read_parquet(str(data.directory), columns=["id", "y"])
    joined = left.join(right, "inner", PARTITIONS, on=("id",))
    return check(data, consume(joined, "id"), _expected(data), 24 * data.rows)


def run_daft(daft: ModuleType, scale: float, data: ParquetSet) -> Result:
    left = daft.read_parquet(data.paths).select("id", "x")
    right = daft.read_parquet(data.paths).select("id", "y")
    return check(data, consume_daft(left.join(right, on="id"), "id"), _expected(data),
                 24 * data.rows)
