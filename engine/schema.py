"""Schema: what ``Dataset.schema()`` returns (column names and types)."""

from __future__ import annotations

import pyarrow as pa


class Schema:
    """A dataset's schema. ``names`` and ``types`` list the columns; ``base_schema`` is the
    underlying ``pyarrow.Schema``."""

    def __init__(self, base_schema: pa.Schema) -> None:
        self.base_schema = base_schema

    @property
    def names(self) -> list[str]:
        return list(self.base_schema.names)

    @property
    def types(self) -> list[pa.DataType]:
        return list(self.base_schema.types)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Schema):
            return self.base_schema.equals(other.base_schema)
        if isinstance(other, pa.Schema):
            return self.base_schema.equals(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.names))

    def __len__(self) -> int:
        return len(self.base_schema)

    def __repr__(self) -> str:
        width = max([len("Column")] + [len(n) for n in self.names])
        lines = [f"{'Column':<{width}}  Type", f"{'-' * 6:<{width}}  ----"]
        lines += [f"{n:<{width}}  {t}" for n, t in zip(self.names, self.types, strict=False)]
        return "\n".join(lines)
