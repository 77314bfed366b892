"""etl: read 16 parquet files (8M rows), transform in pandas, write parquet.

The files are generated once into the data directory (untimed). The transform derives a
float column and upper-cases the string column; the check counts the rows written.
Baselines: a single-process pyarrow/pandas loop over the same files, and Daft with the
same transform in native expressions.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from bench.data import PARQUET_ROWS, ParquetSet, fresh_dir, parquet_rows, parquet_set
from bench.workloads import Result, scaled


def _rows(scale: float) -> int:
    return scaled(PARQUET_ROWS, scale, minimum=16)


def transform(df: pd.DataFrame) -> pd.DataFrame:
    """The pandas transform every engine runs (Daft runs its expression equivalent)."""
    df["z"] = df["x"] * df["y"] + df["user"]
    df["name"] = df["name"].str.upper()
    return df


def _check(source: ParquetSet, out: Path) -> Result:
    written = parquet_rows(out)
    ok = written == source.rows
    detail = "" if ok else f"wrote {written} rows of {source.rows}"
    size = sum(Path(p).stat().st_size for p in source.paths)
    return Result(rows=source.rows, bytes=size, ok=ok, detail=detail)


def prepare(scale: float) -> None:
    parquet_set(_rows(scale))


def setup(api: ModuleType, scale: float) -> tuple[ParquetSet, Path]:
    return parquet_set(_rows(scale)), fresh_dir(f"etl-{api.__name__}")


def run(api: ModuleType, scale: float, data: tuple[ParquetSet, Path]) -> Result:
    source, out = data
    # The directory, not the file list: Ray 2.60 resolves a list of paths on threads that
    # race importing fsspec's HTTP filesystem and fail where aiohttp is not installed.
    ds = api.read_parquet(str(source.directory)).map_batches(transform, batch_format="pandas")
    ds.write_parquet(str(out))
    return _check(source, out)


setup_daft = setup
setup_pyarrow_loop = setup


def run_daft(daft: ModuleType, scale: float, data: tuple[ParquetSet, Path]) -> Result:
    source, out = data
    c = daft.col
    df = daft.read_parquet(source.paths).with_columns(
        {"z": c("x") * c("y") + c("user"), "name": c("name").upper()}
    )
    df.write_parquet(str(out))
    return _check(source, out)


def run_pyarrow_loop(pa: ModuleType, scale: float, data: tuple[ParquetSet, Path]) -> Result:
    source, out = data
    out.mkdir(parents=True)
    for path in source.paths:
        frame = transform(pa.parquet.read_table(path).to_pandas())
        table: Any = pa.Table.from_pandas(frame, preserve_index=False)
        pa.parquet.write_table(table, out / Path(path).name)
    return _check(source, out)
