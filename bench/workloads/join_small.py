"""join-small: ``read_parquet(id, user) -> with_column(k = user % 500)`` inner-joined with a
500-row dimension table, every joined row consumed.

The check: every fact row matches once; the sum of the dimension's ``w`` (= k) over the
joined rows equals the sum of ``user % 500`` (computed untimed).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from bench.data import ParquetSet
from bench.workloads import Result
from bench.workloads.exchange_common import (
    PARTITIONS,
    api_col,
    check,
    consume,
    consume_daft,
    prepare,
    read_columns,
    source,
)

__all__ = ["prepare", "run", "run_daft", "setup", "setup_daft"]
DIM_ROWS = 500


def setup(api: ModuleType, scale: float) -> tuple[ParquetSet, tuple[int, float]]:
    src = source(scale)
    keys = read_columns(src, ["user"]).column("user").to_numpy() % DIM_ROWS
    return src, (src.rows, float(keys.sum()))


setup_daft = setup


def _dim() -> dict[str, np.ndarray]:
    return {"k": np.arange(DIM_ROWS, dtype=np.int64),
            "w": np.arange(DIM_ROWS, dtype=np.float64)}


def run(api: ModuleType, scale: float, data: tuple[ParquetSet, tuple[int, float]]) -> Result:
    src, expected = data
    col = api_col(api)
    int64 = importlib.import_module(api.__name__ + ".datatype").DataType.int64()
    dim = api.from_items([{"k": i, "w": float(i)} for i in range(DIM_ROWS)])
    # The cast: Ray Data 2.60 evaluates ``int % int`` as float64 (its Arrow expression
    # evaluator floors a division), and its polars join then refuses float64 keys against
    # the dimension's int64 ones (polars SchemaError).
    facts = (api.read_parquet(str(src.directory), columns=["id", "user"])
             .with_column("k", (col("user") % DIM_ROWS).cast(int64)))
    joined = facts.join(dim, "inner", PARTITIONS, on=("k",))
    return check(src, consume(joined, "w"), expected, 12 * src.rows)


def run_daft(daft: ModuleType, scale: float,
             data: tuple[ParquetSet, tuple[int, float]]) -> Result:
    src, expected = data
    c = daft.col
    dim = daft.from_pydict(_dim())
    facts = (daft.read_parquet(src.paths).select("id", "user")
             .with_column("k", (c("user") % DIM_ROWS).cast(daft.DataType.int64())))
    return check(src, consume_daft(facts.join(dim, on="k"), "w"), expected, 12 * src.rows)
