"""shuffle: ``read_parquet(id, x) -> random_shuffle()``, every row consumed.

The parquet set (8M rows at scale 1) is read inside the timed part. The check: every id
arrives exactly once in sum and count. Baseline (``pyarrow-loop``): one process reads the
columns and applies one numpy permutation (``Table.take``). Daft has no row shuffle.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from bench.data import ParquetSet
from bench.workloads import Result
from bench.workloads.exchange_common import check, consume, prepare, source

__all__ = ["prepare", "run", "run_pyarrow_loop", "setup", "setup_pyarrow_loop"]


def setup(api: ModuleType, scale: float) -> ParquetSet:
    return source(scale)


setup_pyarrow_loop = setup


def _expected(src: ParquetSet) -> tuple[int, float]:
    return src.rows, float(src.rows * (src.rows - 1) // 2)


def run(api: ModuleType, scale: float, data: ParquetSet) -> Result:
    ds = api.read_parquet(str(data.directory), columns=["id", "x"]).random_shuffle()
    return check(data, consume(ds, "id"), _expected(data), 16 * data.rows)


def run_pyarrow_loop(pa: ModuleType, scale: float, data: ParquetSet) -> Result:
    from bench.workloads.exchange_common import read_columns

    table: Any = read_columns(data, ["id", "x"])
    order = np.random.default_rng().permutation(table.num_rows)
    shuffled = table.take(pa.array(order))
    ids = shuffled.column("id").to_numpy()
    return check(data, (len(ids), float(ids.sum())), _expected(data), 16 * data.rows)
