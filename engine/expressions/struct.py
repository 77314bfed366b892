"""``expr.struct``: field access on struct columns (Arrow's ``struct_field`` kernel)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.expressions.core import Expr, _call


@dataclass(frozen=True)
class StructNamespace:
    """Struct functions of an expression (``expr.struct``).

    Example:
        >>> col("user").struct["address"].struct.field("city")
        col('user').struct['address'].struct.field('city')
    """

    _expr: Expr

    def field(self, field_name: str) -> Expr:
        """Return the values of the field ``field_name`` of each struct."""
        _check_name(field_name)
        return _call(self._expr, "struct_field", f"struct.field({field_name!r})",
                     indices=field_name)

    def __getitem__(self, field_name: str) -> Expr:
        """Return the values of the field ``field_name``, as ``struct.field`` does."""
        _check_name(field_name)
        return _call(self._expr, "struct_field", f"struct[{field_name!r}]",
                     indices=field_name)


def _check_name(field_name: object) -> None:
    if not isinstance(field_name, str):
        raise TypeError(f"struct fields are named by strings; got {field_name!r}")
