"""materialize: 4 GiB of 256 KiB rows kept by ``materialize()`` through a 1 GiB budget.

What must be kept spills to disk as it is produced, so peak memory (engine processes plus
/dev/shm) stays within 1.5x of the budget; then every row is read back (from disk where it
spilled) and checked.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from bench.engines import set_memory_budget
from bench.workloads import Result, scaled
from bench.workloads.stream10g import ROW_BYTES, _expected_checksums, _generate

ROWS = 16_384  # 4 GiB
MEMORY_BUDGET = 1 << 30
GEN_BATCH = 64  # 16 MiB per generated block


def setup(api: ModuleType, scale: float) -> None:
    set_memory_budget(api, MEMORY_BUDGET)


def run(api: ModuleType, scale: float, data: None) -> Result:
    rows = scaled(ROWS, scale)
    kept = api.range(rows).map_batches(_generate, batch_size=GEN_BATCH).materialize()
    seen = id_sum = bad = 0
    for batch in kept.iter_batches(batch_size=GEN_BATCH):
        ids = np.asarray(batch["id"])
        payload = np.ascontiguousarray(batch["payload"]).reshape(len(ids), ROW_BYTES)
        sums = payload.view(np.uint64).sum(axis=1, dtype=np.uint64)
        seen += len(ids)
        id_sum += int(ids.sum())
        bad += int((sums != _expected_checksums(ids)).sum())
    ok = seen == rows and id_sum == rows * (rows - 1) // 2 and bad == 0
    detail = "" if ok else f"rows {seen}/{rows}, id sum {id_sum}, bad checksums {bad}"
    return Result(rows=rows, bytes=rows * ROW_BYTES, ok=ok, detail=detail)
