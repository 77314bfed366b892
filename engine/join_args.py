"""Argument checks of ``Dataset.join`` (eager, with Ray Data's messages)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.dataset import Dataset

class JoinType(enum.Enum):
    """The join types of ``Dataset.join`` (Ray Data's names); ``join`` takes a member or its
    string value."""

    INNER = "inner"
    LEFT_OUTER = "left_outer"
    RIGHT_OUTER = "right_outer"
    FULL_OUTER = "full_outer"
    LEFT_SEMI = "left_semi"
    RIGHT_SEMI = "right_semi"
    LEFT_ANTI = "left_anti"
    RIGHT_ANTI = "right_anti"


JOIN_TYPES = ("inner", "left_outer", "right_outer", "full_outer", "left_semi", "right_semi",
              "left_anti", "right_anti")


def _keys(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, (tuple, list)):
        raise ValueError(f"Expected tuple or list as `{name}` (got {type(value).__name__})")
    if not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"`{name}` must list one or more column names; got {value!r}")
    return tuple(value)


def check_join_args(left: Dataset, right: Any, join_type: Any, num_partitions: Any, on: Any,
                    right_on: Any, validate_schemas: bool) -> \
        tuple[tuple[str, ...], tuple[str, ...]]:
    """Return ``(left keys, right keys)`` or raise ``ValueError``/``TypeError`` naming the
    bad argument."""
    from engine.dataset import Dataset

    if not isinstance(right, Dataset):
        raise TypeError(f"join: ds must be a Dataset; got {type(right).__name__}")
    if join_type not in JOIN_TYPES:
        raise ValueError(f"join: join_type must be one of {list(JOIN_TYPES)}; got "
                         f"{join_type!r}")
    if isinstance(num_partitions, bool) or not isinstance(num_partitions, int) or \
            num_partitions < 1:
        raise ValueError(f"join: num_partitions must be a positive int; got "
                         f"{num_partitions!r}")
    left_on = _keys(on, "on")
    right_keys = left_on if right_on is None else _keys(right_on, "right_on")
    if len(left_on) != len(right_keys):
        raise ValueError(f"join: on has {len(left_on)} columns but right_on has "
                         f"{len(right_keys)}")
    if validate_schemas:
        _validate(left, right, left_on, right_keys)
    return left_on, right_keys


def _key_schema(ds: Dataset, keys: tuple[str, ...]) -> Any:
    import pyarrow as pa

    from engine.schema import Schema

    schema = ds.schema()
    if schema is None or any(k not in schema.names for k in keys):
        return None
    return Schema(pa.schema([schema.base_schema.field(k) for k in keys]))


def _validate(left: Dataset, right: Dataset, left_on: tuple[str, ...],
              right_on: tuple[str, ...]) -> None:
    left_keys = _key_schema(left, left_on)
    right_keys = _key_schema(right, right_on)
    same = left_keys is not None and right_keys is not None and \
        [f.type for f in left_keys.base_schema] == [f.type for f in right_keys.base_schema]
    if not same:
        raise ValueError("Key columns are expected to be present and have the same types in "
                         "both left and right operands of the join operation: left has "
                         f"{left_keys}, but right has {right_keys}")
