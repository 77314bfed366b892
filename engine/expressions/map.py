"""``expr.map``: the keys or values of map columns, as list columns.

Map columns are Arrow ``map<k, v>`` arrays or, as Ray Data also accepts, lists of structs
whose first two fields are the key and the value. A null map gives a null list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.expressions.core import Expr, UDFExpr


@dataclass(frozen=True)
class MapNamespace:
    """Map functions of an expression (``expr.map``).

    Example:
        >>> col("attrs").map.keys().list.len()
        col('attrs').map.keys().list.len()
    """

    _expr: Expr

    def keys(self) -> Expr:
        """Return each map's keys as a list."""
        return UDFExpr(map_keys, (self._expr,), call="map.keys()")

    def values(self) -> Expr:
        """Return each map's values as a list."""
        return UDFExpr(map_values, (self._expr,), call="map.values()")


def map_keys(values: Any) -> Any:
    """The keys of each map of ``values`` (an Arrow map array) as a list array."""
    return _project(values, 0)


def map_values(values: Any) -> Any:
    """The values of each map of ``values`` (an Arrow map array) as a list array."""
    return _project(values, 1)


def _project(values: Any, index: int) -> Any:
    if isinstance(values, pa.ChunkedArray):
        t = _result_type(values.type, index)
        return pa.chunked_array([_project(c, index) for c in values.chunks], type=t)
    t = values.type
    if not len(values):
        return pa.array([], _result_type(t, index))
    if pa.types.is_map(t):
        child = values.keys if index == 0 else values.items
        offsets = values.offsets  # into the whole child, even for a sliced map array
    elif (pa.types.is_list(t) or pa.types.is_large_list(t)) and \
            pa.types.is_struct(t.value_type) and t.value_type.num_fields >= 2:
        child, offsets = values.values.field(index), values.offsets
    elif values.null_count == len(values):
        return pa.nulls(len(values), _result_type(t, index))
    else:
        raise TypeError(f"map.{'keys' if index == 0 else 'values'}() needs a map column (or a "
                        f"list of key/value structs); got {t}")
    # rebase the offsets on this (maybe sliced) array's first entry: Arrow takes a null
    # mask only with offsets that are an array of their own
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    offsets = pc.subtract(offsets, pa.scalar(start, offsets.type))
    factory = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
    return factory.from_arrays(offsets, child.slice(start, end - start),
                               mask=values.is_null() if values.null_count else None)


def _result_type(t: pa.DataType, index: int) -> pa.DataType:
    if pa.types.is_map(t):
        return pa.list_(t.key_type if index == 0 else t.item_type)
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type):
        make = pa.large_list if pa.types.is_large_list(t) else pa.list_
        return make(t.value_type.field(index).type)
    return pa.list_(pa.null())
