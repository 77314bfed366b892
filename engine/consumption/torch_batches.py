"""Arrow batches to torch tensors for ``iter_torch_batches`` (torch stays optional).

A column becomes a tensor without a copy when its memory belongs to this batch alone (the
shuffle buffer's output, or chunks just combined) or lies in this process's copy-on-write
mapping of a store block (``engine.private_memory``: a write copies just the pages written);
other memory a batch shares (an inline block, a table the driver holds) is copied once, so
every tensor handed out may be modified in place. A cast to another dtype is the copy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from engine.block import number_view
from engine.private_memory import writable_view

# Copy columns on threads only when a batch is this large: below it, handing columns to a
# pool costs more than the copies.
_PARALLEL_COPY_BYTES = 4 << 20


def import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError("iter_torch_batches needs torch: pip install torch") from exc
    return torch


def resolve_device(device: Any) -> Any:
    """``device`` as a ``torch.device``; ``"auto"`` is the first GPU when there is one."""
    torch = import_torch()
    if device is None:
        return None
    if device == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return device if isinstance(device, torch.device) else torch.device(device)


def _primitive_view(arr: pa.Array) -> tuple[np.ndarray | None, bool]:
    """``(view, private)``: a numpy view of a number array (no nulls), or None;
    ``private`` where the view lies in a copy-on-write mapping of a store block (this
    process's own pages once written, so writable whoever else reads the block)."""
    view = number_view(arr)
    if view is None:
        return None, False
    private = writable_view(arr.buffers()[1], view.dtype, len(arr),
                            arr.offset * view.dtype.itemsize)
    if private is not None:
        return private, True
    return view, False


def _writable_view(arr: pa.Array) -> np.ndarray | None:
    """A writable numpy view of a primitive array's values (no nulls), or None."""
    view, _ = _primitive_view(arr)
    return view if view is not None and view.flags.writeable else None


def column_to_numpy(column: pa.ChunkedArray | pa.Array, owned: bool) -> tuple[np.ndarray, bool]:
    """``(values, private)``: the column as numpy, and whether that memory is this batch's
    alone (so a tensor over it may be written)."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            column = column.chunk(0)
        else:  # combining makes fresh memory
            column, owned = column.combine_chunks(), True
    typ = column.type
    if pa.types.is_null(typ):
        return np.full(len(column), np.nan), True
    if isinstance(typ, pa.FixedShapeTensorType):
        if owned:
            flat = _writable_view(column.storage.flatten())
            if flat is not None:
                return flat.reshape((len(column), *typ.shape)), True
        return column.to_numpy_ndarray(), False
    if owned:  # this batch's own memory: no need to look for a private mapping
        view = number_view(column)
        if view is not None and view.flags.writeable:
            return view, True
    view, private = _primitive_view(column)
    if view is not None:
        return view, private or (owned and bool(view.flags.writeable))
    values = column.to_numpy(zero_copy_only=False)
    # Arrow marks its zero-copy views read-only; what it had to convert is a fresh copy.
    return values, bool(values.flags.writeable)


def _numpy_dtype(torch: Any, dtype: Any) -> np.dtype | None:
    if dtype is None:
        return None
    try:
        return torch.empty(0, dtype=dtype).numpy().dtype  # type: ignore[no-any-return]
    except (TypeError, RuntimeError):  # bfloat16 and others numpy lacks
        return None


def array_to_tensor(values: np.ndarray, private: bool, dtype: Any, name: str) -> Any:
    """A tensor over ``values`` (copied first unless ``private``), cast to ``dtype``."""
    torch = import_torch()
    if values.dtype == object:
        raise TypeError(f"column {name!r}: values of dtype object (strings, ragged lists) "
                        "cannot become a torch.Tensor; pass a collate_fn to convert them")
    if not private:
        target = _numpy_dtype(torch, dtype)
        values = values.astype(target) if target is not None and target != values.dtype \
            else np.array(values)
    tensor = torch.from_numpy(values)
    if dtype is not None and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor


def _dtype_of(dtypes: Any, name: str) -> Any:
    if isinstance(dtypes, Mapping):
        return dtypes.get(name)
    return dtypes


def arrow_batch_to_tensors(batch: pa.Table, *, dtypes: Any = None, owned: bool = False,
                           pin_memory: bool = False,
                           threadpool: ThreadPoolExecutor | None = None) -> dict[str, Any]:
    """A dict of CPU tensors, one per column of ``batch`` (see the module docstring)."""
    torch = import_torch()
    pin = pin_memory and torch.cuda.is_available()  # pinning needs an accelerator
    if owned and dtypes is None and not pin:
        tensors = _owned_number_tensors(torch, batch)
        if tensors is not None:
            return tensors

    def convert(name: str) -> Any:
        values, private = column_to_numpy(batch.column(name), owned)
        tensor = array_to_tensor(values, private, _dtype_of(dtypes, name), name)
        return tensor.pin_memory() if pin else tensor

    names = batch.column_names
    if threadpool is not None and len(names) > 1 and not owned \
            and batch.nbytes >= _PARALLEL_COPY_BYTES:
        return dict(zip(names, threadpool.map(convert, names), strict=True))
    return {name: convert(name) for name in names}


def _owned_number_tensors(torch: Any, batch: pa.Table) -> dict[str, Any] | None:
    """Tensors over the memory of a batch that owns it, when every column is one chunk of
    numbers without nulls (a shuffled batch, typically); else None. What the general path
    does, in fewer steps: it runs once per batch on the thread that feeds the loop."""
    tensors = {}
    for name, column in zip(batch.column_names, batch.columns, strict=True):
        if column.num_chunks != 1:
            return None
        view = number_view(column.chunk(0))
        if view is None or not view.flags.writeable:
            return None
        tensors[name] = torch.from_numpy(view)
    return tensors


def numpy_batch_to_tensors(batch: Mapping[str, np.ndarray], dtypes: Any = None) -> \
        dict[str, Any]:
    """A dict of tensors from a dict of numpy arrays (copies of read-only arrays)."""
    return {name: array_to_tensor(np.asarray(values), bool(np.asarray(values).flags.writeable),
                                  _dtype_of(dtypes, name), name)
            for name, values in batch.items()}


def move_to_device(batch: Any, device: Any, non_blocking: bool = False) -> Any:
    """``batch`` with every tensor in it (a tensor, or a dict/list/tuple of them) moved to
    ``device``; other values are returned as they are."""
    torch = import_torch()
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch if batch.device == device else batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and all(isinstance(t, (torch.Tensor, list, tuple))
                                                for t in batch):
        moved = [move_to_device(v, device, non_blocking) for v in batch]
        return type(batch)(moved) if isinstance(batch, tuple) else moved
    return batch


def finalizer(device: Any, pin_memory: bool) -> Callable[[Any], Any] | None:
    """The host to device step for ``device`` (None when the tensors stay on the CPU)."""
    target = resolve_device(device)
    if target is None or target.type == "cpu":
        return None
    return lambda batch: move_to_device(batch, target, non_blocking=pin_memory)
