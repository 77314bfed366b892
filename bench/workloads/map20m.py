"""map20m: ``range(20M).map_batches(numpy fn).sum("id")``: per-task overhead and fusion."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from bench.workloads import Result, scaled

ROWS = 20_000_000
DAFT_PARTITION_ROWS = 1_000_000


def _double(batch: dict[str, Any]) -> dict[str, Any]:
    return {"id": batch["id"] * 2}


def _result(rows: int, total: int) -> Result:
    expected = rows * (rows - 1)  # 2 * sum(range(rows))
    detail = "" if total == expected else f"sum {total} != {expected}"
    return Result(rows=rows, bytes=8 * rows, ok=total == expected, detail=detail)


def run(api: ModuleType, scale: float, data: None) -> Result:
    rows = scaled(ROWS, scale)
    total = api.range(rows).map_batches(_double).sum("id")
    return _result(rows, int(total))


def run_daft(daft: ModuleType, scale: float, data: None) -> Result:
    """Daft with its native expression (its fast path), not a Python UDF.

    ``daft.range`` (0.7) builds each partition from a Python list of ints, which dominates
    Daft's time here: it is cut into partitions of ``DAFT_PARTITION_ROWS`` to bound memory.
    """
    rows = scaled(ROWS, scale)
    partitions = -(-rows // DAFT_PARTITION_ROWS)
    df = daft.range(rows, partitions=partitions).with_column("id", daft.col("id") * 2)
    total = df.sum("id").to_pydict()["id"][0]
    return _result(rows, int(total))
