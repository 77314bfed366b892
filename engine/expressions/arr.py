"""``expr.arr``: functions of fixed-size array (``fixed_size_list``) columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from engine.expressions.core import Expr, UDFExpr


@dataclass(frozen=True)
class ArrayNamespace:
    """Array functions of an expression (``expr.arr``)."""

    _expr: Expr

    def to_list(self) -> Expr:
        """Return fixed-size lists as variable-length lists (lists pass unchanged)."""
        return UDFExpr(array_to_list, (self._expr,), call="arr.to_list()")


def array_to_list(values: Any) -> Any:
    """``values`` (fixed-size lists) as variable-length lists of the same items."""
    t = values.type
    if pa.types.is_fixed_size_list(t):
        return values.cast(pa.list_(t.value_field))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return values
    raise TypeError(f"arr.to_list() can only be called on list-like columns, but got {t}")
