"""Helpers for predicates pushed into reads (``pyarrow.compute.Expression`` objects).

pyarrow offers no public way to walk an expression, so the columns a predicate reads are
found by binding it against growing subsets of the schema: each failed bind names one
missing field. A predicate that cannot be analysed that way makes the reader fetch every
column, which is slower but never wrong.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

_MISSING_FIELD = re.compile(r"No match for FieldRef\.Name\((.*?)\) in ")


def referenced_columns(predicate: pc.Expression, schema: pa.Schema) -> list[str] | None:
    """The names of ``schema``'s fields that ``predicate`` reads, in schema order.

    Returns None when the fields cannot be determined (nested references, or a predicate
    that does not bind for another reason). Raises ``ValueError`` naming a column that
    ``schema`` lacks.
    """
    found: set[str] = set()
    for _ in range(len(schema) + 1):
        subset = pa.schema([f for f in schema if f.name in found])
        try:
            subset.empty_table().filter(predicate)
        except pa.ArrowInvalid as exc:
            match = _MISSING_FIELD.search(str(exc))
            if match is None:
                return None
            name = match.group(1)
            if name not in schema.names:
                raise ValueError(f"filter {predicate} references column {name!r}, which is "
                                 f"not among the columns {schema.names}") from None
            if name in found:
                return None
            found.add(name)
            continue
        except (pa.ArrowException, TypeError):
            return None
        return [f.name for f in schema if f.name in found]
    return None


def combine(left: pc.Expression | None, right: pc.Expression | None) -> pc.Expression | None:
    """The conjunction of two optional predicates."""
    if left is None:
        return right
    if right is None:
        return left
    return left & right


def check_predicate(predicate: object) -> pc.Expression:
    """Return ``predicate`` if it is a pyarrow expression, else raise ``TypeError``."""
    if not isinstance(predicate, pc.Expression):
        raise TypeError(f"predicate must be a pyarrow.compute.Expression, got "
                        f"{type(predicate).__name__}")
    return predicate
