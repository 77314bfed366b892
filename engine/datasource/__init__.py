"""Datasource and datasink contracts at Ray Data's module path (``ray.data.datasource`` ->
``engine.datasource``), for ported scripts that write their own sources and sinks.

The implementations live in :mod:`engine.io`; this package re-exports the public ones,
with Ray's submodules (``engine.datasource.datasource``, ``.datasink``, ``.partitioning``,
``.file_based_datasource``, ``.filename_provider``) holding the same names.
"""

from __future__ import annotations

from engine.io.file_datasink import FileDatasink
from engine.io.file_datasource import FileBasedDatasource, FileShuffleConfig
from engine.io.filename_provider import FilenameProvider
from engine.io.interfaces import Datasink, Datasource, ReadTask, WriteResult
from engine.io.partitioning import (
    Partitioning,
    PartitionStyle,
    PathPartitionFilter,
    PathPartitionParser,
)
from engine.io.save_mode import SaveMode

__all__ = ["Datasink", "Datasource", "FileBasedDatasource", "FileDatasink",
           "FileShuffleConfig", "FilenameProvider", "PartitionStyle", "Partitioning",
           "PathPartitionFilter", "PathPartitionParser", "ReadTask", "SaveMode",
           "WriteResult"]
