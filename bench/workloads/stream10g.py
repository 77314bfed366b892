"""stream10g: 10 GiB of 256 KiB rows through two maps to a slow consumer, 1 GiB budget.

One ``map_batches`` makes the big rows, a second (different ``num_cpus``, so the two are
not fused) reduces each row to a checksum, and ``iter_batches`` feeds a consumer that
sleeps per batch. Only backpressure keeps memory flat: the target for this engine is a
peak within 1.5x of the budget.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import numpy as np

from bench.engines import set_memory_budget
from bench.workloads import Result, scaled

ROW_BYTES = 256 * 1024
ROWS = 40_960  # 10 GiB
MEMORY_BUDGET = 1 << 30
GEN_BATCH = 64  # 16 MiB per generated batch
CONSUMER_BATCH = 512
CONSUMER_SLEEP_S = 0.6  # 80 batches at scale 1: about 50 s of consuming
_FILL = np.uint64(0x0101010101010101)
_WORDS = np.uint64(ROW_BYTES // 8)


def _value(ids: np.ndarray) -> np.ndarray:
    return (ids % 251).astype(np.uint8)


def _generate(batch: dict[str, Any]) -> dict[str, Any]:
    ids = batch["id"]
    payload = np.empty((len(ids), ROW_BYTES), dtype=np.uint8)
    payload[:] = _value(ids)[:, None]
    return {"id": ids, "payload": payload}


def _checksum(batch: dict[str, Any]) -> dict[str, Any]:
    payload = np.ascontiguousarray(batch["payload"]).reshape(len(batch["id"]), ROW_BYTES)
    return {"id": batch["id"], "checksum": payload.view(np.uint64).sum(axis=1, dtype=np.uint64)}


def _expected_checksums(ids: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # the row sums wrap modulo 2**64, like the checksums
        return _value(ids).astype(np.uint64) * _FILL * _WORDS


def setup(api: ModuleType, scale: float) -> None:
    set_memory_budget(api, MEMORY_BUDGET)


def run(api: ModuleType, scale: float, data: None) -> Result:
    rows = scaled(ROWS, scale)
    ds = (
        api.range(rows)
        .map_batches(_generate, batch_size=GEN_BATCH, num_cpus=1)
        .map_batches(_checksum, batch_size=GEN_BATCH, num_cpus=0.5)
    )
    seen = id_sum = bad = 0
    for batch in ds.iter_batches(batch_size=CONSUMER_BATCH):
        ids = np.asarray(batch["id"])
        seen += len(ids)
        id_sum += int(ids.sum())
        bad += int((np.asarray(batch["checksum"]) != _expected_checksums(ids)).sum())
        time.sleep(CONSUMER_SLEEP_S)
    ok = seen == rows and id_sum == rows * (rows - 1) // 2 and bad == 0
    detail = "" if ok else f"rows {seen}/{rows}, id sum {id_sum}, bad checksums {bad}"
    return Result(rows=rows, bytes=rows * ROW_BYTES, ok=ok, detail=detail)
