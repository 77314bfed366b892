"""JSON files (Ray's ``read_json``): JSON Lines, or one JSON array of objects per file.

The layout is detected per file from its first non-blank byte: ``[`` means an array of
objects (parsed whole with the standard library, as Ray's fallback does), anything else
is JSON Lines, parsed by ``pyarrow.json`` in pieces of about 32 MiB cut at line ends, so
large files stream. Later pieces are parsed with the first piece's schema (new fields
still inferred), so the blocks of one file agree on column types where they can.
A file holding a single pretty-printed object reads as one row.

``lines=True`` reads every file as JSON Lines the way Ray Data does (through pandas): a
line may be an array as well as an object (arrays become columns ``"0"``, ``"1"``, ...,
short ones padded with nulls), and a column whose nested values change type from row to
row is kept as Python objects (a pickled-object column) instead of failing.

``arrow_json_args`` holds ``read_options`` and ``parse_options`` (pyarrow objects). A
``read_options.block_size`` of zero or less is one pyarrow cannot use: as in Ray Data, the
file is then parsed whole by the standard library (which reads a JSON document, not JSON
Lines).

A line that is not valid JSON raises ``JSONReadError`` (a ``DatasetReadError`` and a
``json.JSONDecodeError``) naming the file and the line.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson

from engine.context import UNLIMITED_BLOCK_BYTES
from engine.io.exceptions import JSONReadError
from engine.io.file_datasource import FileBasedDatasource
from engine.io.partitioning import Partitioning

JSON_FILE_EXTENSIONS = ["json", "jsonl", "json.gz", "jsonl.gz", "json.br", "jsonl.br",
                        "json.zst", "jsonl.zst", "json.lz4", "jsonl.lz4"]
_PIECE_BYTES = 32 * 1024 * 1024
_ALLOWED_ARGS = {"read_options", "parse_options"}
_ROW_RE = re.compile(r"in row (\d+)")


class JSONDatasource(FileBasedDatasource):
    """Reads JSON Lines files and files holding a JSON array of objects.

    Args:
        paths: Files, directories, globs or URLs.
        lines: Read every file as JSON Lines with Ray Data's ``lines=True`` semantics
            (arrays as rows, mixed nested types as Python objects).
        arrow_json_args: ``read_options`` and ``parse_options`` for ``pyarrow.json``.
        **file_kwargs: See :class:`FileBasedDatasource`; ``file_extensions`` defaults to
            the JSON extensions Ray uses and ``partitioning`` to ``Partitioning("hive")``.
    """

    def __init__(self, paths: str | list[str], *, lines: bool = False,
                 arrow_json_args: dict[str, Any] | None = None, **file_kwargs: Any) -> None:
        args = dict(arrow_json_args or {})
        if lines and args:
            raise ValueError("`arrow_json_args` is not supported when `lines=True`; got "
                             f"{sorted(args)}")
        unknown = set(args) - _ALLOWED_ARGS
        if unknown:
            raise TypeError(f"unsupported JSON arguments {sorted(unknown)}; expected "
                            f"{sorted(_ALLOWED_ARGS)}")
        file_kwargs.setdefault("file_extensions", JSON_FILE_EXTENSIONS)
        file_kwargs.setdefault("partitioning", Partitioning("hive"))
        super().__init__(paths, **file_kwargs)
        self._lines = lines
        self._read_options = args.get("read_options") or pajson.ReadOptions(use_threads=False)
        self._parse_options = args.get("parse_options") or pajson.ParseOptions()

    def _read_stream(self, stream: pa.NativeFile, path: str,
                     max_bytes: int) -> Iterator[pa.Table]:
        head = stream.read(_PIECE_BYTES)
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        if not start:
            return
        if self._lines:
            yield from self._read_pandas_lines(head, stream, path, max_bytes)
            return
        if start == b"[" or self._read_options.block_size <= 0:
            yield self._read_array(head + stream.read(), path)
            return
        yield from self._read_lines(head, stream, path)

    def _read_pandas_lines(self, head: bytes, stream: pa.NativeFile, path: str,
                           max_bytes: int) -> Iterator[pa.Table]:
        import pandas as pd

        from engine.block import pandas_to_table

        # Rows per chunk from the first line's size, so a chunk is about a block.
        chunksize: int | None = None
        if max_bytes < UNLIMITED_BLOCK_BYTES:
            first = head.find(b"\n")
            chunksize = max(1, max_bytes // max(1, first if first > 0 else len(head)))
        source = io.BufferedReader(_ChainedReader(head, stream), buffer_size=1 << 20)
        try:
            reader = pd.read_json(source, lines=True, chunksize=chunksize)
            frames = [reader] if chunksize is None else reader
            for df in frames:
                if isinstance(df.columns, pd.RangeIndex):  # array lines: columns 0, 1, ...
                    df.columns = df.columns.astype(str)
                yield pandas_to_table(df)
        except ValueError as exc:
            raise self._error(path, None, str(exc)) from exc

    def _read_array(self, data: bytes, path: str) -> pa.Table:
        try:
            value = json.loads(data)
        except json.JSONDecodeError as exc:
            raise self._error(path, exc.lineno, exc.msg) from exc
        rows = [value] if isinstance(value, dict) else value
        if not all(isinstance(r, dict) for r in rows):
            raise self._error(path, None, "expected a JSON array of objects")
        return pa.Table.from_pylist(rows)

    def _read_lines(self, pending: bytes, stream: pa.NativeFile, path: str
                    ) -> Iterator[pa.Table]:
        eof = False
        line_offset = 0
        schema: pa.Schema | None = None
        while pending or not eof:
            if not eof:
                more = stream.read(_PIECE_BYTES)
                eof = not more
                pending += more
            if eof:
                piece, pending = pending, b""
            else:
                cut = pending.rfind(b"\n")
                if cut < 0:
                    continue  # one line longer than a piece: read on
                piece, pending = pending[:cut + 1], pending[cut + 1:]
            if piece.strip():
                whole_file = eof and line_offset == 0
                table = self._parse_piece(piece, schema, line_offset, path, whole_file)
                schema = schema or table.schema
                yield table
            line_offset += piece.count(b"\n")

    def _parse_piece(self, piece: bytes, schema: pa.Schema | None, line_offset: int,
                     path: str, whole_file: bool) -> pa.Table:
        user = self._read_options
        read_options = pajson.ReadOptions(use_threads=user.use_threads,
                                          block_size=max(user.block_size, len(piece) + 1))
        if schema is not None and self._parse_options.explicit_schema is None:
            guided = pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer",
                newlines_in_values=self._parse_options.newlines_in_values)
            try:
                return pajson.read_json(pa.BufferReader(piece), read_options=read_options,
                                        parse_options=guided)
            except pa.ArrowInvalid:
                pass  # types changed since the first piece: infer this piece afresh
        try:
            return pajson.read_json(pa.BufferReader(piece), read_options=read_options,
                                    parse_options=self._parse_options)
        except pa.ArrowInvalid as exc:
            if whole_file:
                table = _parse_single_object(piece)
                if table is not None:
                    return table
            line, detail = _locate_bad_line(piece, str(exc))
            raise self._error(path, None if line is None else line_offset + line,
                              detail) from exc

    def _error(self, path: str, line: int | None, detail: str) -> JSONReadError:
        display = self._fs.display(path)
        where = f" (line {line})" if line is not None else ""
        return JSONReadError(f"Failed to read JSON file {display}{where}: {detail}",
                             path=display)


class _ChainedReader(io.RawIOBase):
    """A raw file over bytes already read followed by the rest of a stream."""

    def __init__(self, head: bytes, stream: pa.NativeFile) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head.nbytes:
            n = min(len(buffer), self._head.nbytes)
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _parse_single_object(data: bytes) -> pa.Table | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return pa.Table.from_pylist([value]) if isinstance(value, dict) else None


def _locate_bad_line(piece: bytes, arrow_message: str) -> tuple[int | None, str]:
    """The 1-based line of ``piece`` that is not a JSON object, and why; failing that,
    the line of the row pyarrow's message names."""
    non_blank = []
    for number, line in enumerate(piece.split(b"\n"), start=1):
        if not line.strip():
            continue
        non_blank.append(number)
        try:
            value = json.loads(line)
        except ValueError as exc:
            return number, f"invalid JSON: {exc}"
        if not isinstance(value, dict):
            return number, f"expected a JSON object, got {type(value).__name__}"
    match = _ROW_RE.search(arrow_message)
    if match and int(match.group(1)) < len(non_blank):
        return non_blank[int(match.group(1))], arrow_message
    return None, arrow_message
