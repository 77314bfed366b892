"""sort-full: ``read_parquet(id, x) -> sort("x") -> write_parquet``: a full distributed sort.

The check: the files written hold every row (their footers' row counts).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from bench.data import ParquetSet, fresh_dir, parquet_rows
from bench.workloads import Result
from bench.workloads.exchange_common import prepare, source

__all__ = ["prepare", "run", "run_daft", "setup", "setup_daft"]


def setup(api: ModuleType, scale: float) -> tuple[ParquetSet, Path]:
    return source(scale), fresh_dir(f"sort-full-{api.__name__}")


setup_daft = setup


def _check(src: ParquetSet, out: Path) -> Result:
    written = parquet_rows(out)
    ok = written == src.rows
    return Result(rows=src.rows, bytes=16 * src.rows, ok=ok,
                  detail="" if ok else f"wrote {written} rows of {src.rows}")


def run(api: ModuleType, scale: float, data: tuple[ParquetSet, Path]) -> Result:
    src, out = data
    api.read_parquet(str(src.directory), columns=["id", "x"]).sort("x").write_parquet(str(out))
    return _check(src, out)


def run_daft(daft: ModuleType, scale: float, data: tuple[ParquetSet, Path]) -> Result:
    src, out = data
    daft.read_parquet(src.paths).select("id", "x").sort("x").write_parquet(str(out))
    return _check(src, out)
