"""The ``write_*`` calls of a :class:`~engine.dataset.Dataset` (a mixin of it).

``write_datasink`` is the one mechanism: ``on_write_start`` in the driver, ``write`` in
parallel tasks on the workers, then ``on_write_complete`` with every task's result, or
``on_write_failed`` (after every cancelled task has stopped) if any failed. The file
formats are datasinks of ``engine.io``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.logical import operators as lo

if TYPE_CHECKING:
    from engine.dataset import Dataset
    from engine.physical.executor import StreamingExecutor
    from engine.schema import Schema

logger = logging.getLogger(__name__)
# How long a failed write waits for its cancelled tasks before cleaning up without them.
_WRITE_STOP_TIMEOUT_S = 300.0

# A destination: a path or URL, as a string or an os.PathLike (pathlib.Path).
PathArg = str | os.PathLike


class DatasetWrites:
    """``write_datasink`` and the file formats' ``write_*``."""

    if TYPE_CHECKING:  # provided by Dataset
        _last_executor: StreamingExecutor | None

        @property
        def _dag(self) -> lo.LogicalOperator: ...

        def _with(self, op: lo.LogicalOperator) -> Dataset: ...

        def schema(self, fetch_if_missing: bool = True) -> Schema | None: ...

    def write_datasink(self, datasink: Any, *, ray_remote_args: dict[str, Any] | None = None,
                       concurrency: int | None = None) -> None:
        """Write every block with ``datasink``.

        ``on_write_start`` runs first (here), ``write`` in parallel tasks, then
        ``on_write_complete`` with every task's result, or ``on_write_failed`` if any task
        failed (nothing is committed then).
        """
        from engine.io.interfaces import Datasink, WriteResult, start_write
        from engine.physical.transform import WriteOutput

        if not isinstance(datasink, Datasink):
            raise TypeError(f"write_datasink needs a Datasink; got {type(datasink).__name__}")
        from engine.io.file_datasink import FileDatasink

        if isinstance(datasink, FileDatasink):  # its files are written by worker processes
            datasink.check_reachable_from_workers()
            from engine.shared_storage import check_shared_write

            check_shared_write(datasink._fs, datasink.path)
        known = self.schema(fetch_if_missing=False)
        start_write(datasink, known.base_schema if known is not None else None)
        writing = self._with(lo.Write(self._dag, datasink=datasink))
        try:
            outputs = [item.value for item in writing.iter_internal_refs()
                       if isinstance(getattr(item, "value", None), WriteOutput)]
        except Exception as exc:
            # Cancelled write tasks run on until their next output, and a file task commits
            # its files before that: clean up only once every one has stopped.
            if writing._last_executor is not None and \
                    not writing._last_executor.wait_stopped(_WRITE_STOP_TIMEOUT_S):
                logger.warning("write tasks of %s still running %ss after the write failed; "
                               "on_write_failed runs without them", datasink.get_name(),
                               _WRITE_STOP_TIMEOUT_S)
            datasink.on_write_failed(exc)
            raise
        finally:
            self._last_executor = writing._last_executor
        datasink.on_write_complete(WriteResult(
            num_rows=sum(o.num_rows for o in outputs),
            size_bytes=sum(o.size_bytes for o in outputs),
            write_returns=[o.write_return for o in outputs]))

    def _file_sink_kwargs(self, filesystem: Any, try_create_dir: bool,
                          arrow_open_stream_args: dict[str, Any] | None,
                          filename_provider: Any, min_rows_per_file: int | None,
                          num_rows_per_file: int | None, mode: Any) -> dict[str, Any]:
        if num_rows_per_file is not None:  # Ray's deprecated name
            if min_rows_per_file is not None:
                raise ValueError("give min_rows_per_file or num_rows_per_file, not both")
            min_rows_per_file = num_rows_per_file
        return {"filesystem": filesystem, "try_create_dir": try_create_dir,
                "open_stream_args": arrow_open_stream_args,
                "filename_provider": filename_provider, "dataset_uuid": self._uuid,
                "min_rows_per_file": min_rows_per_file, "mode": mode}

    @property
    def _uuid(self) -> str:
        uid = getattr(self, "_dataset_uuid", None)
        if uid is None:
            import uuid

            uid = self._dataset_uuid = uuid.uuid4().hex[:12]
        return uid

    def write_parquet(self, path: PathArg, *, partition_cols: list[str] | None = None,
                      filesystem: Any = None, try_create_dir: bool = True,
                      arrow_open_stream_args: dict[str, Any] | None = None,
                      filename_provider: Any = None,
                      arrow_parquet_args_fn: Callable[[], dict[str, Any]] | None = None,
                      min_rows_per_file: int | None = None,
                      max_rows_per_file: int | None = None,
                      ray_remote_args: dict[str, Any] | None = None,
                      concurrency: int | None = None, num_rows_per_file: int | None = None,
                      mode: Any = "append", **arrow_parquet_args: Any) -> None:
        """Write Parquet files under ``path`` (atomically: a failed write leaves nothing).

        ``partition_cols`` writes hive directories; ``mode`` is ``"append"`` (default),
        ``"overwrite"``, ``"error"`` or ``"ignore"``; ``**arrow_parquet_args`` go to
        pyarrow's writer (``compression``, ``row_group_size``...).
        """
        from engine.io.parquet_datasink import ParquetDatasink

        self.write_datasink(ParquetDatasink(
            path, partition_cols=partition_cols, arrow_parquet_args_fn=arrow_parquet_args_fn,
            arrow_parquet_args=arrow_parquet_args, max_rows_per_file=max_rows_per_file,
            **self._file_sink_kwargs(filesystem, try_create_dir, arrow_open_stream_args,
                                     filename_provider, min_rows_per_file,
                                     num_rows_per_file, mode)))

    def write_csv(self, path: PathArg, *, filesystem: Any = None, try_create_dir: bool = True,
                  arrow_open_stream_args: dict[str, Any] | None = None,
                  filename_provider: Any = None,
                  arrow_csv_args_fn: Callable[[], dict[str, Any]] | None = None,
                  min_rows_per_file: int | None = None, max_rows_per_file: int | None = None,
                  partition_cols: list[str] | None = None,
                  ray_remote_args: dict[str, Any] | None = None,
                  concurrency: int | None = None, num_rows_per_file: int | None = None,
                  mode: Any = "append", **arrow_csv_args: Any) -> None:
        """Write CSV files under ``path``; ``**arrow_csv_args`` go to pyarrow's writer."""
        from engine.io.csv_datasink import CSVDatasink

        self.write_datasink(CSVDatasink(
            path, arrow_csv_args_fn=arrow_csv_args_fn, arrow_csv_args=arrow_csv_args,
            max_rows_per_file=max_rows_per_file, partition_cols=partition_cols,
            **self._file_sink_kwargs(filesystem, try_create_dir, arrow_open_stream_args,
                                     filename_provider, min_rows_per_file,
                                     num_rows_per_file, mode)))

    def write_json(self, path: PathArg, *, filesystem: Any = None, try_create_dir: bool = True,
                   arrow_open_stream_args: dict[str, Any] | None = None,
                   filename_provider: Any = None,
                   pandas_json_args_fn: Callable[[], dict[str, Any]] | None = None,
                   min_rows_per_file: int | None = None, max_rows_per_file: int | None = None,
                   partition_cols: list[str] | None = None,
                   ray_remote_args: dict[str, Any] | None = None,
                   concurrency: int | None = None, num_rows_per_file: int | None = None,
                   mode: Any = "append", **pandas_json_args: Any) -> None:
        """Write JSON Lines files under ``path``."""
        from engine.io.json_datasink import JSONDatasink

        self.write_datasink(JSONDatasink(
            path, pandas_json_args_fn=pandas_json_args_fn, pandas_json_args=pandas_json_args,
            max_rows_per_file=max_rows_per_file, partition_cols=partition_cols,
            **self._file_sink_kwargs(filesystem, try_create_dir, arrow_open_stream_args,
                                     filename_provider, min_rows_per_file,
                                     num_rows_per_file, mode)))

    def write_numpy(self, path: PathArg, *, column: str, filesystem: Any = None,
                    try_create_dir: bool = True,
                    arrow_open_stream_args: dict[str, Any] | None = None,
                    filename_provider: Any = None, min_rows_per_file: int | None = None,
                    max_rows_per_file: int | None = None,
                    ray_remote_args: dict[str, Any] | None = None,
                    concurrency: int | None = None, num_rows_per_file: int | None = None,
                    mode: Any = "append") -> None:
        """Write ``column`` as ``.npy`` files under ``path``."""
        from engine.io.numpy_datasink import NumpyDatasink

        self.write_datasink(NumpyDatasink(
            path, column, max_rows_per_file=max_rows_per_file,
            **self._file_sink_kwargs(filesystem, try_create_dir, arrow_open_stream_args,
                                     filename_provider, min_rows_per_file,
                                     num_rows_per_file, mode)))
