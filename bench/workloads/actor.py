"""actor: 1M rows through an actor pool of 2 whose constructor is expensive.

Stands in for a model: the constructor sleeps 1 s (loading weights) and builds a lookup
table; every batch then indexes it. Measures actor start-up and per-call overhead.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import numpy as np

from bench.data import SEED
from bench.workloads import Result, scaled

ROWS = 1_000_000
BATCH_SIZE = 4096
CONCURRENCY = 2
TABLE_SIZE = 1 << 20
LOAD_S = 1.0


def _table() -> np.ndarray:
    return np.random.default_rng(SEED).integers(0, 1000, size=TABLE_SIZE, dtype=np.int64)


class Lookup:
    """A callable class for ``map_batches``: expensive to build, cheap to call."""

    def __init__(self) -> None:
        time.sleep(LOAD_S)
        self.table = _table()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        ids = batch["id"]
        return {"id": ids, "v": self.table[ids % TABLE_SIZE]}


def run(api: ModuleType, scale: float, data: None) -> Result:
    rows = scaled(ROWS, scale)
    ds = api.range(rows).map_batches(Lookup, concurrency=CONCURRENCY, batch_size=BATCH_SIZE)
    total = int(ds.sum("v"))
    expected = int(_table()[np.arange(rows) % TABLE_SIZE].sum())
    detail = "" if total == expected else f"sum {total} != {expected}"
    return Result(rows=rows, bytes=8 * rows, ok=total == expected, detail=detail)
