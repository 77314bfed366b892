"""concurrent: 4 streaming pipelines at once, from threads of one driver, 1 GiB budget.

Each pipeline makes 1 GiB of 256 KiB rows and reduces them to checksums for a consumer
thread of its own. The pipelines share one budget: peak memory (engine processes plus
/dev/shm) stays within 1.5x of it.
"""

from __future__ import annotations

import threading
from types import ModuleType

import numpy as np

from bench.engines import set_memory_budget
from bench.workloads import Result, scaled
from bench.workloads.stream10g import (
    GEN_BATCH,
    ROW_BYTES,
    _checksum,
    _expected_checksums,
    _generate,
)

PIPELINES = 4
ROWS = 4_096  # per pipeline: 1 GiB
MEMORY_BUDGET = 1 << 30


def setup(api: ModuleType, scale: float) -> None:
    set_memory_budget(api, MEMORY_BUDGET)


def run(api: ModuleType, scale: float, data: None) -> Result:
    rows = scaled(ROWS, scale)
    outcomes: list[tuple[int, int, int] | BaseException] = []
    lock = threading.Lock()

    def consume(offset: int) -> None:
        try:
            ds = (api.range(rows)
                  .map_batches(lambda b, o=offset: {"id": b["id"] + o})
                  .map_batches(_generate, batch_size=GEN_BATCH, num_cpus=1)
                  .map_batches(_checksum, batch_size=GEN_BATCH, num_cpus=0.5))
            seen = id_sum = bad = 0
            for batch in ds.iter_batches(batch_size=GEN_BATCH):
                ids = np.asarray(batch["id"])
                seen += len(ids)
                id_sum += int(ids.sum())
                bad += int((np.asarray(batch["checksum"]) != _expected_checksums(ids)).sum())
            outcome: tuple[int, int, int] | BaseException = (seen, id_sum, bad)
        except BaseException as exc:  # reported in the result
            outcome = exc
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=consume, args=(i * rows,)) for i in range(PIPELINES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    counts = [o for o in outcomes if not isinstance(o, BaseException)]
    total = PIPELINES * rows
    seen = sum(c[0] for c in counts)
    id_sum = sum(c[1] for c in counts)
    bad = sum(c[2] for c in counts)
    ok = not errors and seen == total and id_sum == total * (total - 1) // 2 and bad == 0
    detail = "" if ok else f"errors {errors[:1]}, rows {seen}/{total}, bad checksums {bad}"
    return Result(rows=total, bytes=total * ROW_BYTES, ok=ok, detail=detail)
