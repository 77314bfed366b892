"""Errors specific to reading and writing files (both survive pickling).

They extend the engine's hierarchy (``engine.errors``) and the built-in type that Ray Data
raises in the same situation, so ported ``except`` clauses keep working.
"""

from __future__ import annotations

import json
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


class JSONReadError(DatasetReadError, json.JSONDecodeError):
    """A JSON file holds something that is not valid JSON (or not objects).

    Also a ``json.JSONDecodeError`` (a ``ValueError``), which is what Ray Data raises when
    both of its JSON parsers give up. The message names the file and, where known, the line.
    """

    def __init__(self, message: str, path: str = "", doc: str = "", pos: int = 0) -> None:
        # Not super(): JSONDecodeError's __init__ wants (msg, doc, pos) and builds its own
        # message; ours already names the file and line.
        Exception.__init__(self, message)
        self.path = path
        self.msg, self.doc, self.pos = message, doc, pos
        self.lineno, self.colno = 1, 1

    def __reduce__(self) -> tuple[Any, ...]:
        return (JSONReadError, (self.args[0] if self.args else "", self.path))
