"""CSV files through ``pyarrow.csv``'s streaming reader (Ray's ``read_csv``).

``arrow_csv_args`` holds what Ray's ``**arrow_csv_args`` holds: ``read_options``,
``parse_options`` and ``convert_options`` (pyarrow option objects), passed through. The
default ``read_options`` read on one thread (the engine parallelizes across files) in
16 MiB batches.

Bad input raises ``DatasetReadError`` naming the file: a row with the wrong number of
fields (with its line number, found by re-scanning the file's first 64 MiB), and text that
is not valid UTF-8 (pyarrow would silently type such a column as ``binary``; here it is an
error unless the column's type is given in ``convert_options.column_types`` or an
``encoding`` is set in ``read_options``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from engine.errors import DatasetReadError
from engine.io.file_datasource import FileBasedDatasource
from engine.io.partitioning import Partitioning

_BLOCK_SIZE = 16 * 1024 * 1024
_SCAN_LIMIT = 64 * 1024 * 1024
_ALLOWED_ARGS = {"read_options", "parse_options", "convert_options"}


class CSVDatasource(FileBasedDatasource):
    """Reads CSV files.

    Args:
        paths: Files, directories, globs or URLs.
        arrow_csv_args: ``read_options``, ``parse_options``, ``convert_options``.
        **file_kwargs: See :class:`FileBasedDatasource`; ``partitioning`` defaults to
            ``Partitioning("hive")``, as in Ray's ``read_csv``.
    """

    def __init__(self, paths: str | list[str], *, arrow_csv_args: dict[str, Any] | None = None,
                 **file_kwargs: Any) -> None:
        args = dict(arrow_csv_args or {})
        unknown = set(args) - _ALLOWED_ARGS
        if unknown:
            raise TypeError(f"unsupported CSV arguments {sorted(unknown)}; expected "
                            f"{sorted(_ALLOWED_ARGS)}")
        file_kwargs.setdefault("partitioning", Partitioning("hive"))
        super().__init__(paths, **file_kwargs)
        self._read_options = args.get("read_options") or pacsv.ReadOptions(
            use_threads=False, block_size=_BLOCK_SIZE)
        self._parse_options = args.get("parse_options") or pacsv.ParseOptions()
        self._convert_options = args.get("convert_options") or pacsv.ConvertOptions()

    def _read_stream(self, stream: pa.NativeFile, path: str,
                     max_bytes: int) -> Iterator[pa.Table]:
        display = self._fs.display(path)
        try:
            reader = pacsv.open_csv(stream, read_options=self._read_options,
                                    parse_options=_fresh_parse_options(self._parse_options),
                                    convert_options=self._convert_options)
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return
            raise self._error(exc, path) from exc
        self._check_utf8(reader.schema, display)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise self._error(exc, path) from exc
            yield pa.Table.from_batches([batch])

    def _check_utf8(self, schema: pa.Schema, display: str) -> None:
        declared = self._convert_options.column_types or {}
        if self._read_options.encoding.lower().replace("-", "") != "utf8":
            return
        bad = [f.name for f in schema
               if pa.types.is_binary(f.type) and f.name not in declared]
        if bad:
            raise DatasetReadError(
                f"Failed to read {display}: column(s) {bad} are not valid UTF-8 text; set "
                f"read_options=pyarrow.csv.ReadOptions(encoding=...) or declare them binary "
                f"in convert_options.column_types", path=display)

    def _error(self, exc: Exception, path: str) -> DatasetReadError:
        display = self._fs.display(path)
        where = ""
        if "Expected" in str(exc) and "columns" in str(exc):
            line = self._find_ragged_line(path)
            where = f" (line {line})" if line is not None else ""
        return DatasetReadError(f"Failed to read CSV file {display}{where}: {exc}",
                                path=display)

    def _find_ragged_line(self, path: str) -> int | None:
        """The line number of the first row whose field count differs from the header's."""
        opts, parse = self._read_options, self._parse_options
        try:
            with self._fs.open_input_stream(path, **self._open_args) as stream:
                data = stream.read(_SCAN_LIMIT)
            if len(data) == _SCAN_LIMIT:
                data = data[:data.rfind(b"\n") + 1]  # never judge a cut-off last line
            text = io.TextIOWrapper(io.BytesIO(data), encoding=opts.encoding,
                                    errors="replace", newline="")
            rows = csv.reader(text, delimiter=parse.delimiter,
                              quotechar=parse.quote_char or '"',
                              quoting=csv.QUOTE_MINIMAL if parse.quote_char else csv.QUOTE_NONE,
                              doublequote=parse.double_quote,
                              escapechar=parse.escape_char or None)
            expected = len(opts.column_names) if opts.column_names else None
            for index, row in enumerate(rows):
                if index < opts.skip_rows or (not row and parse.ignore_empty_lines):
                    continue
                if expected is None:
                    expected = len(row)
                elif len(row) != expected:
                    return rows.line_num
        except (OSError, csv.Error, ValueError):
            return None
        return None


def _fresh_parse_options(options: pacsv.ParseOptions) -> pacsv.ParseOptions:
    """A new ``ParseOptions`` equal to ``options``.

    A ``ParseOptions`` that went through pickle (as it does on its way to a worker) makes
    pyarrow call a missing invalid-row handler on the first bad row; a fresh one does not.
    """
    return pacsv.ParseOptions(
        delimiter=options.delimiter, quote_char=options.quote_char,
        double_quote=options.double_quote, escape_char=options.escape_char,
        newlines_in_values=options.newlines_in_values,
        ignore_empty_lines=options.ignore_empty_lines,
        invalid_row_handler=options.invalid_row_handler)
