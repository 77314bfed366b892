"""File readers: ``read_parquet``, ``read_csv``, ``read_json``, ``read_text``,
``read_binary_files``, ``read_numpy`` and ``read_images``.

Each builds a datasource from ``engine.io`` and returns a lazy dataset; the reading happens
in parallel read tasks on the workers. Arguments mirror ``ray.data.read_*``; scheduling
arguments Ray takes (``num_cpus``, ``concurrency``, ``ray_remote_args``...) are accepted
and the embedded cluster sizes the work itself.
"""

from __future__ import annotations

from typing import Any

from engine.dataset import Dataset
from engine.read_api import read_datasource

_UNSET: Any = object()


def _file_kwargs(filesystem: Any, partition_filter: Any, partitioning: Any,
                 include_paths: bool, ignore_missing_paths: bool, shuffle: Any,
                 file_extensions: Any, arrow_open_stream_args: Any = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"filesystem": filesystem, "partition_filter": partition_filter,
                              "include_paths": include_paths,
                              "ignore_missing_paths": ignore_missing_paths, "shuffle": shuffle,
                              "arrow_open_stream_args": arrow_open_stream_args}
    if partitioning is not _UNSET:
        kwargs["partitioning"] = partitioning
    if file_extensions is not _UNSET:
        kwargs["file_extensions"] = file_extensions
    return kwargs


def _read(datasource: Any, parallelism: int, override_num_blocks: int | None) -> Dataset:
    from engine.io.filesystem import check_reachable_from_workers

    files = datasource.input_files()
    check_reachable_from_workers(datasource._fs, files[0] if files else "this path")
    from engine.shared_storage import check_shared_read

    check_shared_read(datasource._fs, files[0] if files else None)
    return read_datasource(datasource, parallelism=parallelism,
                           override_num_blocks=override_num_blocks)


def read_parquet(paths: str | list[str], *, filesystem: Any = None,
                 columns: list[str] | None = None, parallelism: int = -1,
                 num_cpus: float | None = None, num_gpus: float | None = None,
                 memory: float | None = None, ray_remote_args: dict[str, Any] | None = None,
                 meta_provider: Any = None, partition_filter: Any = None,
                 partitioning: Any = _UNSET, shuffle: Any = None, include_paths: bool = False,
                 file_extensions: Any = _UNSET, ignore_missing_paths: bool = False,
                 concurrency: int | None = None, override_num_blocks: int | None = None,
                 tensor_column_schema: dict[str, Any] | None = None,
                 **arrow_parquet_args: Any) -> Dataset:
    """Read Parquet files (a path, directory, glob, list or fsspec URL).

    Only ``columns`` are read; filters after the read (``filter(expr=...)``) skip row groups
    and hive partitions that cannot match. ``**arrow_parquet_args`` go to pyarrow
    (``filter``, ``schema``, ``batch_size``...).
    """
    from engine.io.parquet_datasource import ParquetDatasource

    source = ParquetDatasource(
        paths, columns=columns, tensor_column_schema=tensor_column_schema,
        arrow_parquet_args=arrow_parquet_args,
        **_file_kwargs(filesystem, partition_filter, partitioning, include_paths,
                       ignore_missing_paths, shuffle, file_extensions))
    return _read(source, parallelism, override_num_blocks)


def read_csv(paths: str | list[str], *, filesystem: Any = None, parallelism: int = -1,
             num_cpus: float | None = None, num_gpus: float | None = None,
             memory: float | None = None, ray_remote_args: dict[str, Any] | None = None,
             arrow_open_stream_args: dict[str, Any] | None = None, meta_provider: Any = None,
             partition_filter: Any = None, partitioning: Any = _UNSET,
             include_paths: bool = False, ignore_missing_paths: bool = False,
             shuffle: Any = None, file_extensions: Any = _UNSET,
             concurrency: int | None = None, override_num_blocks: int | None = None,
             **arrow_csv_args: Any) -> Dataset:
    """Read CSV files; ``**arrow_csv_args`` are pyarrow's ``read_options``,
    ``parse_options`` and ``convert_options``."""
    from engine.io.csv_datasource import CSVDatasource

    source = CSVDatasource(paths, arrow_csv_args=arrow_csv_args, **_file_kwargs(
        filesystem, partition_filter, partitioning, include_paths, ignore_missing_paths,
        shuffle, file_extensions, arrow_open_stream_args))
    return _read(source, parallelism, override_num_blocks)


def read_json(paths: str | list[str], *, lines: bool = False, filesystem: Any = None,
              parallelism: int = -1, num_cpus: float | None = None,
              num_gpus: float | None = None, memory: float | None = None,
              ray_remote_args: dict[str, Any] | None = None,
              arrow_open_stream_args: dict[str, Any] | None = None, meta_provider: Any = None,
              partition_filter: Any = None, partitioning: Any = _UNSET,
              include_paths: bool = False, ignore_missing_paths: bool = False,
              shuffle: Any = None, file_extensions: Any = _UNSET,
              concurrency: int | None = None, override_num_blocks: int | None = None,
              **arrow_json_args: Any) -> Dataset:
    """Read JSON Lines files or files holding a JSON array of objects (detected per file)."""
    from engine.io.json_datasource import JSONDatasource

    source = JSONDatasource(paths, lines=lines, arrow_json_args=arrow_json_args,
                            **_file_kwargs(filesystem, partition_filter, partitioning,
                                           include_paths, ignore_missing_paths, shuffle,
                                           file_extensions, arrow_open_stream_args))
    return _read(source, parallelism, override_num_blocks)


def read_text(paths: str | list[str], *, encoding: str = "utf-8",
              drop_empty_lines: bool = True, filesystem: Any = None, parallelism: int = -1,
              num_cpus: float | None = None, num_gpus: float | None = None,
              memory: float | None = None, ray_remote_args: dict[str, Any] | None = None,
              arrow_open_stream_args: dict[str, Any] | None = None, meta_provider: Any = None,
              partition_filter: Any = None, partitioning: Any = None,
              include_paths: bool = False, ignore_missing_paths: bool = False,
              shuffle: Any = None, file_extensions: Any = None,
              concurrency: int | None = None,
              override_num_blocks: int | None = None) -> Dataset:
    """Read text files: one row per line, in a ``text`` column."""
    from engine.io.text_datasource import TextDatasource

    source = TextDatasource(paths, encoding=encoding, drop_empty_lines=drop_empty_lines,
                            **_file_kwargs(filesystem, partition_filter, partitioning,
                                           include_paths, ignore_missing_paths, shuffle,
                                           file_extensions, arrow_open_stream_args))
    return _read(source, parallelism, override_num_blocks)


def read_binary_files(paths: str | list[str], *, include_paths: bool = False,
                      filesystem: Any = None, parallelism: int = -1,
                      num_cpus: float | None = None, num_gpus: float | None = None,
                      memory: float | None = None,
                      ray_remote_args: dict[str, Any] | None = None,
                      arrow_open_stream_args: dict[str, Any] | None = None,
                      meta_provider: Any = None, partition_filter: Any = None,
                      partitioning: Any = None, ignore_missing_paths: bool = False,
                      shuffle: Any = None, file_extensions: Any = None,
                      concurrency: int | None = None,
                      override_num_blocks: int | None = None) -> Dataset:
    """Read whole files: one row per file, in a ``bytes`` column."""
    from engine.io.binary_datasource import BinaryDatasource

    source = BinaryDatasource(paths, **_file_kwargs(
        filesystem, partition_filter, partitioning, include_paths, ignore_missing_paths,
        shuffle, file_extensions, arrow_open_stream_args))
    return _read(source, parallelism, override_num_blocks)


def read_numpy(paths: str | list[str], *, filesystem: Any = None, parallelism: int = -1,
               arrow_open_stream_args: dict[str, Any] | None = None,
               meta_provider: Any = None, partition_filter: Any = None,
               partitioning: Any = None, include_paths: bool = False,
               ignore_missing_paths: bool = False, shuffle: Any = None,
               file_extensions: Any = _UNSET, concurrency: int | None = None,
               override_num_blocks: int | None = None, **numpy_load_args: Any) -> Dataset:
    """Read ``.npy`` files into a ``data`` column (n-d arrays become tensor columns)."""
    from engine.io.numpy_datasource import NumpyDatasource

    source = NumpyDatasource(paths, numpy_load_args=numpy_load_args or None, **_file_kwargs(
        filesystem, partition_filter, partitioning, include_paths, ignore_missing_paths,
        shuffle, file_extensions, arrow_open_stream_args))
    return _read(source, parallelism, override_num_blocks)


def read_images(paths: str | list[str], *, filesystem: Any = None, parallelism: int = -1,
                meta_provider: Any = None, ray_remote_args: dict[str, Any] | None = None,
                arrow_open_file_args: dict[str, Any] | None = None,
                partition_filter: Any = None, partitioning: Any = None,
                size: tuple[int, int] | None = None, mode: str | None = None,
                include_paths: bool = False, ignore_missing_paths: bool = False,
                shuffle: Any = None, file_extensions: Any = _UNSET,
                concurrency: int | None = None,
                override_num_blocks: int | None = None) -> Dataset:
    """Read images (Pillow needed: ``pip install 'engine[images]'``) into an ``image``
    column, optionally resized to ``size=(height, width)`` and converted to ``mode``."""
    from engine.io.image_datasource import ImageDatasource

    source = ImageDatasource(paths, size=size, mode=mode, **_file_kwargs(
        filesystem, partition_filter, partitioning, include_paths, ignore_missing_paths,
        shuffle, file_extensions, arrow_open_file_args))
    return _read(source, parallelism, override_num_blocks)
