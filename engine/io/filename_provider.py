"""File names of written files (Ray's ``FilenameProvider``).

Ray 2.60 names each write task's file from ``get_filename_for_task(write_uuid,
task_index)``: ``{dataset_uuid}_{write_uuid}_{task_index:06}.{file_format}`` by default
(``{write_uuid}_{task_index:06}.{file_format}`` without a dataset id). The older
``get_filename_for_block(block, write_uuid, task_index, block_index)`` is deprecated there
but still honoured here for providers that only implement it (``block`` is the task's first
block, ``block_index`` is 0). Names are a function of the write id and the task index, so
a retried task writes the same names and replaces its own files.

A task that writes several files (``max_rows_per_file``, Parquet's numbering) inserts
``-{i}`` before the extension, as Ray's Parquet writer does, unless the name contains an
``{i}`` placeholder to fill instead.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa


class FilenameProvider:
    """Generates the file names of a write.

    Args:
        dataset_uuid: Prefix of every name, if given.
        file_format: Extension (without the dot) of every name, if given.
    """

    def __init__(self, dataset_uuid: str | None = None, file_format: str | None = None) -> None:
        self.dataset_uuid = dataset_uuid
        self.file_format = file_format

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        """The file name of write task ``task_index`` (unique and deterministic)."""
        name = f"{write_uuid}_{task_index:06}"
        if self.dataset_uuid is not None:
            name = f"{self.dataset_uuid}_{name}"
        if self.file_format is not None:
            name = f"{name}.{self.file_format}"
        return name

    def get_filename_for_block(self, block: pa.Table | None, write_uuid: str, task_index: int,
                               block_index: int) -> str:
        """Deprecated in Ray 2.60: override :meth:`get_filename_for_task` instead."""
        raise NotImplementedError

    def get_filename_for_row(self, row: dict[str, Any], write_uuid: str, task_index: int,
                             block_index: int, row_index: int) -> str:
        """Deprecated in Ray 2.60 (row-per-file writes derive names from the task's)."""
        raise NotImplementedError


def _overrides(provider: Any, name: str) -> bool:
    method = getattr(type(provider), name, None)
    return method is not None and method is not getattr(FilenameProvider, name)


def task_filename(provider: Any, write_uuid: str, task_index: int,
                  first_block: pa.Table | None) -> str:
    """Ask ``provider`` (ours, Ray's, or any object with either method) for a task's name."""
    block_only = (_overrides(provider, "get_filename_for_block")
                  and not _overrides(provider, "get_filename_for_task"))
    if block_only or not hasattr(provider, "get_filename_for_task"):
        return str(provider.get_filename_for_block(first_block, write_uuid, task_index, 0))
    return str(provider.get_filename_for_task(write_uuid, task_index))


def numbered(filename: str, index: int, file_format: str | None) -> str:
    """``filename`` as the ``index``-th file of its task: fills ``{i}``, else inserts
    ``-{index}`` before the format's extension (or the last extension)."""
    if "{i}" in filename:
        filled = filename.replace("{i}", str(index))
        if file_format and not filled.endswith("." + file_format):
            filled += "." + file_format
        return filled
    suffix = "." + file_format if file_format else ""
    if suffix and filename.endswith(suffix):
        return f"{filename[:-len(suffix)]}-{index}{suffix}"
    stem, dot, ext = filename.rpartition(".")
    if dot and "/" not in ext:
        return f"{stem}-{index}.{ext}"
    return f"{filename}-{index}"
