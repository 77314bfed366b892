"""Datasources and datasinks over fsspec and pyarrow filesystems.

Reads: :class:`ParquetDatasource`, :class:`CSVDatasource`, :class:`JSONDatasource`,
:class:`TextDatasource`, :class:`BinaryDatasource`, :class:`NumpyDatasource`,
:class:`ImageDatasource`. Writes: :class:`ParquetDatasink`, :class:`CSVDatasink`,
:class:`JSONDatasink`, :class:`NumpyDatasink`, run by :func:`run_write_task`.
The contracts they implement are in :mod:`engine.io.interfaces`.

Names are imported on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BinaryDatasource": "engine.io.binary_datasource",
    "CSVDatasink": "engine.io.csv_datasink",
    "CSVDatasource": "engine.io.csv_datasource",
    "Datasink": "engine.io.interfaces",
    "Datasource": "engine.io.interfaces",
    "DestinationExistsError": "engine.io.exceptions",
    "FileBasedDatasource": "engine.io.file_datasource",
    "FileDatasink": "engine.io.file_datasink",
    "FilenameProvider": "engine.io.filename_provider",
    "FileShuffleConfig": "engine.io.file_datasource",
    "ImageDatasource": "engine.io.image_datasource",
    "JSONDatasink": "engine.io.json_datasink",
    "JSONDatasource": "engine.io.json_datasource",
    "NumpyDatasink": "engine.io.numpy_datasink",
    "NumpyDatasource": "engine.io.numpy_datasource",
    "ParquetDatasink": "engine.io.parquet_datasink",
    "ParquetDatasource": "engine.io.parquet_datasource",
    "PartitionStyle": "engine.io.partitioning",
    "Partitioning": "engine.io.partitioning",
    "PathPartitionFilter": "engine.io.partitioning",
    "PathPartitionParser": "engine.io.partitioning",
    "ReadTask": "engine.io.interfaces",
    "SaveMode": "engine.io.save_mode",
    "SchemaMismatchError": "engine.io.exceptions",
    "TaskContext": "engine.io.interfaces",
    "TextDatasource": "engine.io.text_datasource",
    "WriteResult": "engine.io.interfaces",
    "WriteTaskResult": "engine.io.write_task",
    "WrittenFiles": "engine.io.file_datasink",
    "collect_write_results": "engine.io.write_task",
    "run_write_task": "engine.io.write_task",
    "write_blocks": "engine.io.write_task",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
