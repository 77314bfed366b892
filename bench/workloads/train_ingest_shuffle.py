"""train-ingest-shuffle: ``train-ingest`` through a 65,536-row local shuffle buffer.

The pyarrow loop, the ``DataLoader`` and Daft (which has no local shuffle buffer) permute
each 65,536-row window of a file; the engine and Ray Data carry rows over from one buffer
refill to the next (they mix more).
"""

from __future__ import annotations

from types import ModuleType

from bench.data import ParquetSet
from bench.workloads import Result
from bench.workloads import train_ingest as base

COLD_START = True
prepare = base.prepare
setup = setup_pyarrow_loop = setup_torch_dataloader = setup_daft = base.setup


def run(api: ModuleType, scale: float, data: ParquetSet, *, started: float) -> Result:
    return base.run(api, scale, data, started=started, buffer=base.SHUFFLE_BUFFER)


def run_pyarrow_loop(pa: ModuleType, scale: float, data: ParquetSet, *,
                     started: float) -> Result:
    return base.run_pyarrow_loop(pa, scale, data, started=started, buffer=base.SHUFFLE_BUFFER)


def run_torch_dataloader(torch: ModuleType, scale: float, data: ParquetSet, *,
                         started: float) -> Result:
    return base.run_torch_dataloader(torch, scale, data, started=started,
                                     buffer=base.SHUFFLE_BUFFER)


def run_daft(daft: ModuleType, scale: float, data: ParquetSet, *, started: float) -> Result:
    return base.run_daft(daft, scale, data, started=started, buffer=base.SHUFFLE_BUFFER)
