"""Conversion of numpy batches to torch tensors for ``iter_torch_batches`` (torch optional)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def to_torch_collate(dtypes: Any, device: str | None,
                     collate_fn: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """Return the function turning a numpy batch into tensors (or calling ``collate_fn``)."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError("iter_torch_batches needs torch: pip install torch") from exc
    if collate_fn is not None:
        return collate_fn
    target = None if device in (None, "auto") else torch.device(device)
    if device == "auto" and torch.cuda.is_available():
        target = torch.device("cuda")

    def convert(batch: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, values in batch.items():
            dtype = dtypes.get(name) if isinstance(dtypes, dict) else dtypes
            tensor = torch.as_tensor(values, dtype=dtype)
            out[name] = tensor.to(target) if target is not None else tensor
        return out

    return convert
