"""train-ingest: what a training loop asks of the engine, from a cold start.

Three columns of the parquet set (8M rows at scale 1) become dicts of torch tensors,
8192 rows a batch, with no shuffle (``train-ingest``) or through a 65,536-row local shuffle
buffer (``train-ingest-shuffle``, see ``train_ingest_shuffle.py``). Timed from the first
request, the engine's start included (``COLD_START``); the time to the first batch is
reported too. Baselines: a single-process pyarrow loop (which, shuffled, permutes each
65,536-row window: it mixes less than a carried-over buffer), and a torch ``DataLoader``
with 2 worker processes doing the same per file. Daft: its fastest batch path,
``read_parquet(...).into_batches(...).to_arrow_iter()`` with each record batch made tensors
as the loop does (``to_torch_iter_dataset`` yields one dict of Python scalars per row; Daft
has no local shuffle buffer and its ``shuffle()`` is a global sort, so shuffled it permutes
each 65,536-row window like the loop). Every variant checks that each id came
exactly once (count and sum) and that the shuffled ones are not in file order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

from bench.data import PARQUET_ROWS, ParquetSet, parquet_set
from bench.workloads import Result, scaled

COLUMNS = ["id", "x", "y"]
BATCH_SIZE = 8192
SHUFFLE_BUFFER = 65_536
DATALOADER_WORKERS = 2
COLD_START = True  # the harness starts the engine inside the timed part, then passes
# ``started`` (the moment before the start) to ``run*``
BUFFER: int | None = None  # rows of the local shuffle buffer; None: no shuffle


def _rows(scale: float) -> int:
    return scaled(PARQUET_ROWS, scale, minimum=16)


def _consume(batches: Iterable[Any], source: ParquetSet, started: float,
             shuffled: bool) -> Result:
    """Drain dicts of tensors; check every id once and (shuffled) not in order."""
    first = None
    rows = id_sum = in_order = 0
    for batch in batches:
        if first is None:
            first = time.perf_counter() - started
        ids = batch["id"]
        rows += len(ids)
        id_sum += int(ids.sum())
        in_order += int(bool((ids[1:] > ids[:-1]).all()))
    expected = source.rows * (source.rows - 1) // 2
    ok = rows == source.rows and id_sum == expected and (not shuffled or in_order <= 1)
    detail = "" if ok else f"rows {rows}/{source.rows}, id sum {id_sum}, sorted {in_order}"
    extra = {"first_batch_s": first if first is not None else float("nan")}
    return Result(rows=rows, bytes=24 * rows, ok=ok, detail=detail, extra=extra)


def prepare(scale: float) -> None:
    parquet_set(_rows(scale))


def setup(api: ModuleType | None, scale: float) -> ParquetSet:
    """The parquet set; and torch imported, as a training script has it before it asks
    for data (its import takes seconds and is no part of any engine's work)."""
    import torch  # noqa: F401

    return parquet_set(_rows(scale))


setup_pyarrow_loop = setup
setup_torch_dataloader = setup
setup_daft = setup


def run(api: ModuleType, scale: float, data: ParquetSet, *, started: float,
        buffer: int | None = BUFFER) -> Result:
    """This engine or Ray Data: the same ray.data calls (``started``: before the engine's
    start)."""
    ds = api.read_parquet(str(data.directory), columns=COLUMNS)
    batches = ds.iter_torch_batches(batch_size=BATCH_SIZE, local_shuffle_buffer_size=buffer)
    return _consume(batches, data, started, buffer is not None)


def _windows(path: str, rows: int) -> Iterator[Any]:
    import pyarrow.parquet as pq

    yield from pq.ParquetFile(path).iter_batches(rows, columns=COLUMNS)


# Arrow's names of the columns' types, as numpy dtypes.
_NUMPY_DTYPES = {"int64": np.dtype("int64"), "int32": np.dtype("int32"),
                 "double": np.dtype("float64"), "float": np.dtype("float32")}


def _tensors(record_batch: Any) -> dict[str, Any]:
    """Zero-copy writable tensors: the loop's freshly decoded (or gathered) memory is its
    own (the columns have no nulls). The dtype comes from a table, not from
    ``to_pandas_dtype`` or ``to_numpy``: both import pandas, a cost the loop need not pay."""
    import torch

    out = {}
    for i, name in enumerate(COLUMNS):
        col = record_batch.column(i)
        dtype = _NUMPY_DTYPES[str(col.type)]
        values = np.frombuffer(col.buffers()[1], dtype=dtype, count=len(col),
                               offset=col.offset * dtype.itemsize)
        out[name] = torch.from_numpy(values)
    return out


def _file_batches(paths: list[str], buffer: int | None, seed: int) -> Iterator[dict[str, Any]]:
    """Batches of tensors from ``paths``; shuffled: each window of ``buffer`` rows
    permuted (one take) and sliced."""
    rng = np.random.default_rng(seed)
    for path in paths:
        if buffer is None:
            for rb in _windows(path, BATCH_SIZE):
                yield _tensors(rb)
            continue
        for window in _windows(path, buffer):
            mixed = window.take(_arrow_indices(rng.permutation(window.num_rows)))
            for offset in range(0, mixed.num_rows, BATCH_SIZE):
                yield _tensors(mixed.slice(offset, BATCH_SIZE))


def _arrow_indices(values: np.ndarray) -> Any:
    """int64 indices as an Arrow array without a copy: handing ``take`` a numpy array
    converts it with ``pa.array``, whose first call imports pandas (a tenth of a second the
    baselines need not pay)."""
    import pyarrow as pa

    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def run_pyarrow_loop(pa: ModuleType, scale: float, data: ParquetSet, *, started: float,
                     buffer: int | None = BUFFER) -> Result:
    return _consume(_file_batches(data.paths, buffer, seed=0), data, started,
                    buffer is not None)


class _FileShards:
    """A torch ``IterableDataset`` whose workers read every n-th file (built lazily so that
    this module imports without torch)."""

    def __new__(cls, paths: list[str], buffer: int | None) -> Any:
        from torch.utils.data import IterableDataset, get_worker_info

        class FileShards(IterableDataset):  # type: ignore[type-arg]
            def __iter__(self) -> Iterator[dict[str, Any]]:
                info = get_worker_info()
                wid, workers = (info.id, info.num_workers) if info is not None else (0, 1)
                return _file_batches(paths[wid::workers], buffer, seed=wid)

        return FileShards()


def run_torch_dataloader(torch: ModuleType, scale: float, data: ParquetSet, *,
                         started: float, buffer: int | None = BUFFER) -> Result:
    from torch.utils.data import DataLoader

    loader = DataLoader(_FileShards(data.paths, buffer), batch_size=None,
                        num_workers=DATALOADER_WORKERS)
    return _consume(loader, data, started, buffer is not None)


def _daft_batches(daft: ModuleType, paths: list[str], buffer: int | None,
                  seed: int) -> Iterator[dict[str, Any]]:
    """Daft's record batches (``into_batches``) as tensors; shuffled: each window of
    ``buffer`` rows permuted (one take) and sliced, as the pyarrow loop does."""
    df = daft.read_parquet(paths).select(*COLUMNS)
    if buffer is None:
        for rb in df.into_batches(BATCH_SIZE).to_arrow_iter():
            yield _tensors(rb)
        return
    rng = np.random.default_rng(seed)
    for window in df.into_batches(buffer).to_arrow_iter():
        mixed = window.take(_arrow_indices(rng.permutation(window.num_rows)))
        for offset in range(0, mixed.num_rows, BATCH_SIZE):
            yield _tensors(mixed.slice(offset, BATCH_SIZE))


def run_daft(daft: ModuleType, scale: float, data: ParquetSet, *, started: float,
             buffer: int | None = BUFFER) -> Result:
    return _consume(_daft_batches(daft, data.paths, buffer, seed=0), data, started,
                    buffer is not None)
