"""Text files as one row per line, in a ``text`` column (Ray's ``read_text``).

Lines are split as Python's ``str.splitlines`` splits them (``\\n``, ``\\r\\n``, ``\\r`` and
the other Unicode line boundaries), like Ray. The file is decoded incrementally, a chunk at
a time, so a large file streams instead of being held whole. ``drop_empty_lines`` drops
lines that are empty or only whitespace. Bytes that are not valid in ``encoding`` raise
``DatasetReadError`` naming the file and the line.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from engine.errors import DatasetReadError
from engine.io.file_datasource import FileBasedDatasource

TEXT_COLUMN = "text"
_CHUNK_BYTES = 8 * 1024 * 1024


class TextDatasource(FileBasedDatasource):
    """Reads lines of text files.

    Args:
        paths: Files, directories, globs or URLs.
        drop_empty_lines: Drop lines that are empty or whitespace only.
        encoding: The files' text encoding.
        **file_kwargs: See :class:`FileBasedDatasource`.
    """

    def __init__(self, paths: str | list[str], *, drop_empty_lines: bool = True,
                 encoding: str = "utf-8", **file_kwargs: Any) -> None:
        codecs.lookup(encoding)  # fail early on an unknown encoding name
        super().__init__(paths, **file_kwargs)
        self._drop_empty_lines = drop_empty_lines
        self._encoding = encoding

    def _data_schema(self) -> pa.Schema:
        return pa.schema([(TEXT_COLUMN, pa.string())])

    def _read_stream(self, stream: pa.NativeFile, path: str,
                     max_bytes: int) -> Iterator[pa.Table]:
        decoder = codecs.getincrementaldecoder(self._encoding)(errors="strict")
        carry = ""
        line_no = 0
        while True:
            chunk = stream.read(_CHUNK_BYTES)
            final = not chunk
            try:
                text = carry + decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                bad_line = line_no + (carry + exc.object[:exc.start].decode(
                    self._encoding, errors="replace")).count("\n") + 1
                display = self._fs.display(path)
                raise DatasetReadError(
                    f"Failed to read {display} (line {bad_line}): not valid "
                    f"{self._encoding}: {exc.reason}", path=display) from exc
            parts = text.splitlines(keepends=True)
            carry = ""
            if not final and parts and (parts[-1].endswith("\r")
                                        or parts[-1].splitlines()[0] == parts[-1]):
                carry = parts.pop()  # an unfinished line, or a \r that may precede \n
            lines = "".join(parts).splitlines()
            line_no += len(lines)
            if self._drop_empty_lines:
                lines = [line for line in lines if line.strip()]
            if lines:
                yield pa.table({TEXT_COLUMN: pa.array(lines, pa.string())})
            if final:
                return
