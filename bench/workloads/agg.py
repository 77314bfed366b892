"""agg: global sum, mean and std of 5 float columns over 1M materialized rows.

Building and materializing the input is untimed; the three aggregations are timed and
checked against numpy.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from bench.data import float_frame, split_frame
from bench.workloads import Result, scaled

ROWS = 1_000_000
COLUMNS = [f"c{i}" for i in range(5)]
BLOCKS = 16
_AGGS = ("sum", "mean", "std")


def _values(result: Any, fn: str) -> list[float]:
    """Ray returns ``{"sum(c0)": ...}`` for several columns; accept a list as well."""
    if isinstance(result, dict):
        return [float(result[f"{fn}({c})"]) for c in COLUMNS]
    return [float(v) for v in result]


def _check(frame: pd.DataFrame, got: dict[str, list[float]]) -> Result:
    expected = {
        "sum": frame[COLUMNS].sum().tolist(),
        "mean": frame[COLUMNS].mean().tolist(),
        "std": frame[COLUMNS].std(ddof=1).tolist(),
    }
    bad = [fn for fn in _AGGS if not np.allclose(got[fn], expected[fn], rtol=1e-9, atol=0)]
    detail = "; ".join(f"{fn}: {got[fn]} != {expected[fn]}" for fn in bad)
    rows = len(frame)
    return Result(rows=rows, bytes=rows * 8 * len(COLUMNS), ok=not bad, detail=detail)


def setup(api: ModuleType, scale: float) -> tuple[Any, pd.DataFrame]:
    frame = float_frame(scaled(ROWS, scale), COLUMNS)
    return api.from_pandas(split_frame(frame, BLOCKS)).materialize(), frame


def run(api: ModuleType, scale: float, data: tuple[Any, pd.DataFrame]) -> Result:
    ds, frame = data
    got = {
        "sum": _values(ds.sum(COLUMNS), "sum"),
        "mean": _values(ds.mean(COLUMNS), "mean"),
        "std": _values(ds.std(COLUMNS), "std"),
    }
    return _check(frame, got)


def setup_daft(daft: ModuleType, scale: float) -> tuple[Any, pd.DataFrame]:
    frame = float_frame(scaled(ROWS, scale), COLUMNS)
    return daft.from_pandas(split_frame(frame, BLOCKS)).collect(), frame


def run_daft(daft: ModuleType, scale: float, data: tuple[Any, pd.DataFrame]) -> Result:
    df, frame = data
    got = {
        "sum": list(df.sum(*COLUMNS).to_pandas().iloc[0]),
        "mean": list(df.mean(*COLUMNS).to_pandas().iloc[0]),
        "std": list(df.stddev(*COLUMNS).to_pandas().iloc[0]),
    }
    return _check(frame, got)
