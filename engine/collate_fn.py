"""Collate functions for ``iter_torch_batches`` (``ray.data.collate_fn`` in Ray Data).

Subclass the one whose input you want and pass an instance as ``collate_fn``: the batch
format follows the class (``ArrowBatchCollateFn``: ``pyarrow.Table``,
``NumpyBatchCollateFn``: dict of numpy arrays, ``PandasBatchCollateFn``:
``pandas.DataFrame``). ``DefaultCollateFn`` is what runs without one: Arrow columns to
tensors, zero-copy where the memory is the batch's own, copied where it is shared (see
:mod:`engine.consumption.torch_batches`). A collate function runs on the iterator's
background thread.

    >>> import torch
    >>> from engine.collate_fn import NumpyBatchCollateFn
    >>> class Features(NumpyBatchCollateFn):
    ...     def __call__(self, batch):
    ...         return torch.as_tensor(batch["x"] + 5)
"""

from __future__ import annotations

import abc
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import pyarrow as pa

DataBatchType = TypeVar("DataBatchType")


class CollateFn(Generic[DataBatchType]):
    """Turns one batch into what the training step takes."""

    @abc.abstractmethod
    def __call__(self, batch: DataBatchType) -> Any:
        """Collate ``batch``."""


class ArrowBatchCollateFn(CollateFn["pa.Table"]):
    """A collate function whose input is a ``pyarrow.Table``."""

    def __call__(self, batch: pa.Table) -> Any:
        raise NotImplementedError("subclass ArrowBatchCollateFn and define __call__")


class NumpyBatchCollateFn(CollateFn[dict[str, Any]]):
    """A collate function whose input is a dict of numpy arrays."""

    def __call__(self, batch: dict[str, Any]) -> Any:
        raise NotImplementedError("subclass NumpyBatchCollateFn and define __call__")


class PandasBatchCollateFn(CollateFn[Any]):
    """A collate function whose input is a ``pandas.DataFrame``."""

    def __call__(self, batch: Any) -> Any:
        raise NotImplementedError("subclass PandasBatchCollateFn and define __call__")


class DefaultCollateFn(ArrowBatchCollateFn):
    """Arrow batch to a dict of CPU tensors, one per column.

    Args:
        dtypes: The torch dtype of every tensor, or a dict of column name to dtype; None
            keeps each column's own.
        device: Where the tensors go; the iterator moves them after collating.
        pin_memory: Copy the tensors to page-locked memory (only where an accelerator is
            present: without one there is nothing to pin for).
        num_workers: Threads that copy the columns of large batches whose memory is shared
            (``RAY_DATA_DEFAULT_COLLATE_FN_THREADPOOL_MAX_WORKERS``, default 4); 0: none.
    """

    _DEFAULT_NUM_WORKERS = int(os.environ.get(
        "RAY_DATA_DEFAULT_COLLATE_FN_THREADPOOL_MAX_WORKERS", "4"))

    def __init__(self, dtypes: Any = None, device: Any = None, pin_memory: bool = False,
                 num_workers: int = _DEFAULT_NUM_WORKERS) -> None:
        from engine.consumption.torch_batches import resolve_device

        self.dtypes = dtypes
        self.device = resolve_device(device) if device is not None else None
        self.pin_memory = pin_memory
        self.num_workers = num_workers
        self._threadpool: ThreadPoolExecutor | None = None

    def __call__(self, batch: pa.Table) -> dict[str, Any]:
        return self.collate(batch, owned=False)

    def collate(self, batch: pa.Table, owned: bool) -> dict[str, Any]:
        """Like calling it; ``owned`` says the batch's memory is its own (no copy needed)."""
        from engine.consumption.torch_batches import arrow_batch_to_tensors

        if self.num_workers > 0 and self._threadpool is None:
            self._threadpool = ThreadPoolExecutor(max_workers=self.num_workers,
                                                  thread_name_prefix="engine-collate")
        return arrow_batch_to_tensors(batch, dtypes=self.dtypes, owned=owned,
                                      pin_memory=self.pin_memory, threadpool=self._threadpool)

    def __del__(self) -> None:
        pool = getattr(self, "_threadpool", None)
        if pool is not None:
            pool.shutdown(wait=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_threadpool"] = None  # threads do not travel to another process
        return state


__all__ = ["ArrowBatchCollateFn", "CollateFn", "DefaultCollateFn", "NumpyBatchCollateFn",
           "PandasBatchCollateFn"]
