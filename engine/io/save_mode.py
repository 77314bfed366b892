"""What a write does when its destination already holds data (Ray's ``SaveMode``).

Ray 2.60's values and default (``"append"``). For file datasinks:

- ``append``: add new files next to what is there (names carry the write's id).
- ``overwrite``: write the new files, then, once every task has succeeded, delete every
  other file under the destination. A failed write leaves the old files in place.
- ``error`` / ``create``: raise :class:`~engine.io.exceptions.DestinationExistsError`
  before writing if the destination holds files (an empty directory is not data).
- ``ignore``: write nothing if the destination holds files.
- ``upsert``: needs row keys, which files do not have; file datasinks reject it.
"""

from __future__ import annotations

from enum import Enum


class SaveMode(str, Enum):
    """Behaviour of a write whose destination already has data."""

    CREATE = "create"
    APPEND = "append"
    OVERWRITE = "overwrite"
    IGNORE = "ignore"
    ERROR = "error"
    UPSERT = "upsert"

    @classmethod
    def parse(cls, mode: SaveMode | str) -> SaveMode:
        """Accept a ``SaveMode`` or its name/value in any case; else raise ``ValueError``."""
        if isinstance(mode, SaveMode):
            return mode
        if isinstance(mode, str):
            try:
                return cls(mode.lower())
            except ValueError:
                pass
        raise ValueError(f"mode must be one of {[m.value for m in cls]}, got {mode!r}")
