"""``ray.data.datasource.filename_provider``: names of written files
(see :mod:`engine.io.filename_provider`)."""

from __future__ import annotations

from engine.io.filename_provider import FilenameProvider

__all__ = ["FilenameProvider"]
