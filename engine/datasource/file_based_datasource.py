"""``ray.data.datasource.file_based_datasource``: the base of file formats
(see :mod:`engine.io.file_datasource`)."""

from __future__ import annotations

from engine.io.file_datasource import FileBasedDatasource, FileShuffleConfig

__all__ = ["FileBasedDatasource", "FileShuffleConfig"]
