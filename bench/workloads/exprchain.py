"""exprchain: ``filter(expr) -> with_column -> select_columns`` on 10M materialized rows.

Expression-only transforms that an engine can run in its native kernels. Consumed twice
(``count`` and ``sum``); checked against numpy.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from bench.data import float_frame, split_frame
from bench.engines import col
from bench.workloads import Result, scaled

ROWS = 10_000_000
COLUMNS = ["a", "b", "c"]
BLOCKS = 16
THRESHOLD = 0.5


def _check(frame: pd.DataFrame, count: int, total: float) -> Result:
    a = frame["a"].to_numpy()
    kept = a[a > THRESHOLD]
    ok = count == len(kept) and bool(np.isclose(total, 2 * kept.sum(), rtol=1e-9, atol=0))
    detail = "" if ok else f"count {count} vs {len(kept)}, sum {total} vs {2 * kept.sum()}"
    rows = len(frame)
    return Result(rows=rows, bytes=rows * 8 * len(COLUMNS), ok=ok, detail=detail)


def setup(api: ModuleType, scale: float) -> tuple[Any, pd.DataFrame]:
    frame = float_frame(scaled(ROWS, scale), COLUMNS)
    return api.from_pandas(split_frame(frame, BLOCKS)).materialize(), frame


def run(api: ModuleType, scale: float, data: tuple[Any, pd.DataFrame]) -> Result:
    ds, frame = data
    c = col(api)
    out = ds.filter(expr=c("a") > THRESHOLD).with_column("d", c("a") * 2).select_columns(["a", "d"])
    return _check(frame, int(out.count()), float(out.sum("d")))


def setup_daft(daft: ModuleType, scale: float) -> tuple[Any, pd.DataFrame]:
    frame = float_frame(scaled(ROWS, scale), COLUMNS)
    return daft.from_pandas(split_frame(frame, BLOCKS)).collect(), frame


def run_daft(daft: ModuleType, scale: float, data: tuple[Any, pd.DataFrame]) -> Result:
    df, frame = data
    c = daft.col
    out = df.where(c("a") > THRESHOLD).with_column("d", c("a") * 2).select("a", "d")
    total = out.sum("d").to_pydict()["d"][0]
    return _check(frame, int(out.count_rows()), float(total))
