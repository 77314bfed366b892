"""groupby: ``read_parquet(user, x) -> groupby(user % 1000).sum("x")``, all groups consumed.

The check: 1000 groups whose sums add up to the sum of ``x`` (computed untimed).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pyarrow.compute as pc

from bench.data import ParquetSet
from bench.workloads import Result
from bench.workloads.exchange_common import (
    api_col,
    check,
    consume,
    consume_daft,
    prepare,
    read_columns,
    source,
)

__all__ = ["prepare", "run", "run_daft", "setup", "setup_daft"]
KEYS = 1000


def setup(api: ModuleType, scale: float) -> tuple[ParquetSet, tuple[int, float]]:
    src = source(scale)
    table = read_columns(src, ["user", "x"])
    groups = len(np.unique(table.column("user").to_numpy() % KEYS))
    return src, (groups, float(pc.sum(table.column("x")).as_py()))


setup_daft = setup


def run(api: ModuleType, scale: float, data: tuple[ParquetSet, tuple[int, float]]) -> Result:
    src, expected = data
    col = api_col(api)
    ds = (api.read_parquet(str(src.directory), columns=["user", "x"])
          .with_column("k", col("user") % KEYS).groupby("k").sum("x"))
    return check(src, consume(ds, "sum(x)"), expected, 12 * src.rows)


def run_daft(daft: ModuleType, scale: float,
             data: tuple[ParquetSet, tuple[int, float]]) -> Result:
    src, expected = data
    c = daft.col
    df = (daft.read_parquet(src.paths).select("user", "x")
          .with_column("k", c("user") % KEYS).groupby("k").agg(c("x").sum()))
    return check(src, consume_daft(df, "x"), expected, 12 * src.rows)
