"""sort: ``read_parquet(id, x) -> sort("x") -> take(1)``: a top-k where the engine has one.

The check: the row taken has the smallest ``x`` of the set (computed untimed).
"""

from __future__ import annotations

from types import ModuleType

import pyarrow.compute as pc

from bench.data import ParquetSet
from bench.workloads import Result
from bench.workloads.exchange_common import prepare, read_columns, source

__all__ = ["prepare", "run", "run_daft", "setup", "setup_daft"]


def setup(api: ModuleType, scale: float) -> tuple[ParquetSet, float]:
    src = source(scale)
    return src, float(pc.min(read_columns(src, ["x"]).column("x")).as_py())


setup_daft = setup


def _check(src: ParquetSet, got: float, expected: float) -> Result:
    ok = got == expected
    return Result(rows=src.rows, bytes=16 * src.rows, ok=ok,
                  detail="" if ok else f"min x {got} != {expected}")


def run(api: ModuleType, scale: float, data: tuple[ParquetSet, float]) -> Result:
    src, expected = data
    rows = api.read_parquet(str(src.directory), columns=["id", "x"]).sort("x").take(1)
    return _check(src, float(rows[0]["x"]), expected)


def run_daft(daft: ModuleType, scale: float, data: tuple[ParquetSet, float]) -> Result:
    src, expected = data
    df = daft.read_parquet(src.paths).select("id", "x").sort("x").limit(1)
    return _check(src, float(df.to_pydict()["x"][0]), expected)
