"""``expr.list``: functions of list columns (``list``, ``large_list``, ``fixed_size_list``).

Length, element and slice use Arrow's list kernels; ``sort`` and ``flatten`` have none and
work on the flattened values and the list offsets, never row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.expressions.core import Expr, FunctionExpr, UDFExpr, _args_text, _call, lit


@dataclass(frozen=True)
class ListNamespace:
    """List functions of an expression (``expr.list``).

    Example:
        >>> col("items").list[0] + col("items").list.len()
        col('items').list[0] + col('items').list.len()
    """

    _expr: Expr

    def len(self) -> Expr:
        """Return the number of items of each list (null for a null list)."""
        return _call(self._expr, "list_value_length", "list.len()")

    def get(self, index: int) -> Expr:
        """Return the item at ``index`` of each list (negative counts from the end);
        null where a list is null or too short."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"list.get() takes an int index; got {index!r}")
        return UDFExpr(list_get, (self._expr, lit(index)), ("index",),
                       call=f"list.get({index!r})")

    def __getitem__(self, key: int | slice) -> Expr:
        """``list[i]`` is ``get(i)``; ``list[a:b:c]`` is ``slice(a, b, c)``."""
        if isinstance(key, slice):
            return self.slice(key.start, key.stop, key.step)
        if isinstance(key, int) and not isinstance(key, bool):
            return self.get(key)
        raise TypeError(f"list indices must be integers or slices, not {type(key).__name__}")

    def slice(self, start: int | None = None, stop: int | None = None,
              step: int | None = None) -> Expr:
        """Return the items ``[start:stop:step]`` of each list (non-negative bounds)."""
        start, step = start or 0, step or 1
        if start < 0 or (stop is not None and stop < 0) or step < 1:
            raise ValueError(f"list.slice() takes non-negative start/stop and a positive "
                             f"step; got start={start}, stop={stop}, step={step}")
        call = f"list.slice({_args_text(start, stop, step)})"
        options: dict[str, Any] = {"start": start, "step": step}
        if stop is not None:
            options["stop"] = stop
        return FunctionExpr("list_slice", (self._expr,), tuple(sorted(options.items())), call)

    def sort(self, order: str = "ascending", null_placement: str = "at_end") -> Expr:
        """Return each list sorted (``order``: "ascending" or "descending"; nulls
        ``null_placement``: "at_start" or "at_end")."""
        if order not in ("ascending", "descending"):
            raise ValueError(f"order must be 'ascending' or 'descending'; got {order!r}")
        if null_placement not in ("at_start", "at_end"):
            raise ValueError(f"null_placement must be 'at_start' or 'at_end'; got "
                             f"{null_placement!r}")
        return UDFExpr(list_sort, (self._expr, lit(order), lit(null_placement)),
                       ("order", "null_placement"),
                       call=f"list.sort({_args_text(order, null_placement)})")

    def flatten(self) -> Expr:
        """Return each list of lists as one list of their items."""
        return UDFExpr(list_flatten, (self._expr,), call="list.flatten()")


def _per_chunk(values: Any, fn: Any, *args: Any) -> Any:
    if isinstance(values, pa.ChunkedArray):
        chunks = [fn(c, *args) for c in values.chunks]
        if not chunks:
            return fn(pa.array([], values.type), *args)
        return pa.chunked_array(chunks)
    return fn(values, *args)


def _check_list(values: Any, what: str) -> None:
    t = values.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise TypeError(f"list.{what}() needs a list column; got {t}")


def list_get(values: Any, index: int) -> Any:
    """Item ``index`` of each list of ``values``; null when out of range."""
    return _per_chunk(values, _get, index)


def _get(values: pa.Array, index: int) -> pa.Array:
    _check_list(values, "get")
    lengths = pc.fill_null(pc.list_value_length(values), 0).cast(pa.int64())
    position = index if index >= 0 else pc.add(lengths, index)
    ok = pc.and_(pc.greater_equal(position, 0), pc.less(position, lengths))
    wanted = pc.add(_row_starts(lengths), position)  # its index among all rows' items
    flat = pc.list_flatten(values)
    taken = flat.take(pc.if_else(ok, wanted, 0)) if len(flat) else \
        pa.nulls(len(values), flat.type)
    return pc.if_else(pc.and_(ok, values.is_valid()), taken, pa.scalar(None, flat.type))


def _row_starts(lengths: pa.Array) -> pa.Array:
    """For each row, the index of its first item in the flattened items."""
    return pc.subtract(pc.cumulative_sum(lengths), lengths)


def list_sort(values: Any, order: str, null_placement: str) -> Any:
    """Each list of ``values`` sorted by ``order`` with nulls at ``null_placement``."""
    return _per_chunk(values, _sort, order, null_placement)


def _sort(values: pa.Array, order: str, null_placement: str) -> pa.Array:
    _check_list(values, "sort")
    original = values.type
    if pa.types.is_fixed_size_list(original):
        values = values.cast(pa.list_(original.value_field))
    flat = pc.list_flatten(values)
    lengths = pc.fill_null(pc.list_value_length(values), 0)
    rows = np.repeat(np.arange(len(values)), lengths.to_numpy())  # each item's row
    keys = pa.table({"row": rows, "value": flat})
    indices = pc.sort_indices(keys, sort_keys=[("row", "ascending", "at_end"),
                                               ("value", order, null_placement)])
    offsets = pa.concat_arrays([pa.array([0], lengths.type), pc.cumulative_sum(lengths)])
    factory = pa.LargeListArray if pa.types.is_large_list(values.type) else pa.ListArray
    mask = values.is_null() if values.null_count else None
    result = factory.from_arrays(offsets.cast(values.offsets.type), flat.take(indices),
                                 mask=mask)
    return result.cast(original) if result.type != original else result


def list_flatten(values: Any) -> Any:
    """Each list of lists of ``values`` concatenated into one list."""
    return _per_chunk(values, _flatten)


def _flatten(values: pa.Array) -> pa.Array:
    _check_list(values, "flatten")
    if pa.types.is_fixed_size_list(values.type):
        values = values.cast(pa.list_(values.type.value_field))
    inner = values.values  # every row's lists (offsets below index into it)
    if not (pa.types.is_list(inner.type) or pa.types.is_large_list(inner.type) or
            pa.types.is_fixed_size_list(inner.type)):
        raise TypeError(f"list.flatten() needs a list column whose items are lists; got "
                        f"{values.type}")
    if pa.types.is_fixed_size_list(inner.type):
        inner = inner.cast(pa.list_(inner.type.value_field))
    # row i holds inner lists [o[i], o[i+1]); their items run from p[o[i]] to p[o[i+1]]
    offsets = inner.offsets.take(values.offsets)
    factory = pa.LargeListArray if pa.types.is_large_list(values.type) else pa.ListArray
    offsets = offsets.cast(values.offsets.type)
    mask = values.is_null() if values.null_count else None
    return factory.from_arrays(offsets, inner.values, mask=mask)
