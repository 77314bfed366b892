"""Errors specific to reading and writing files (both survive pickling).

They extend the engine's hierarchy (``engine.errors``) and the built-in type that Ray Data
raises in the same situation, so ported ``except`` clauses keep working.
"""

from __future__ import annotations

from typing import Any

from engine.errors import DatasetReadError


class SchemaMismatchError(DatasetReadError, TypeError):
    """Two files of one read disagree on a column's type in a way no cast reconciles.

    The message names both files and the column.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (SchemaMismatchError, (self.args[0] if self.args else "", self.path))


class DestinationExistsError(FileExistsError, ValueError):
    """A write with ``mode="error"`` found files at its destination.

    A ``ValueError`` like Ray Data's, and a ``FileExistsError`` naming the path.
    """
