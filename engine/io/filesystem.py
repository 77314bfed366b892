"""Paths and filesystems: turning what a user passed into files to read or a place to write.

Every datasource and datasink goes through :func:`resolve_filesystem`. It accepts a local
path, a ``file://`` URL or any fsspec URL (``s3://``, ``gs://``, ``memory://``, ...), and an
optional ``filesystem`` that is either an fsspec filesystem or a ``pyarrow.fs.FileSystem``.
The result is a :class:`FileSystemHandle`: a picklable pair of the pyarrow filesystem that
the readers use and, where there is one, the fsspec filesystem behind it (needed to abort an
object-store upload).

Choices, where Ray Data leaves room:

- Local paths are made absolute, so the ``path`` column and error messages never depend on
  a worker's working directory. Other paths are the filesystem's own (``bucket/key`` for
  S3, as in Ray); messages add the scheme back (``s3://bucket/key``).
- URLs with a scheme go through fsspec (``s3fs`` for ``s3://``); when the fsspec
  implementation is not installed, pyarrow's native filesystem for that scheme is used.
- Directory listings skip every entry below the listed directory whose name starts with
  ``.`` or ``_`` (Ray skips only top-level ones); this also hides the temporary files of
  writes in progress.
- Glob patterns (``*``, ``?``, ``[...]``, ``**``) are expanded when the path does not exist
  literally; Ray 2.60 does not expand them.
- ``memory://`` (and pyarrow's mock filesystem) live in one process: the datasources and
  datasinks work on them in-process, but ``read_*``/``write_*`` refuse them with a clear
  error (:func:`check_reachable_from_workers`), since their tasks run in worker processes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_GLOB_CHARS = re.compile(r"[*?\[]")
_LOCAL_SCHEMES = ("", "file", "local")
# Filesystems where a rename is atomic and cheap; everything else is treated as an object
# store, where a rename is a copy and a delete (see PITFALLS.md, "Writes to object stores").
_RENAME_SAFE_PROTOCOLS = {"file", "local", "memory", "hdfs", "viewfs"}


@dataclass(frozen=True)
class FileEntry:
    """One file found by :func:`expand_paths`: its filesystem path and size in bytes."""

    path: str
    size: int | None


class FileSystemHandle:
    """A pyarrow filesystem, the fsspec filesystem behind it (if any), and how to name paths.

    Picklable: read and write tasks carry it to workers.
    """

    def __init__(self, pa_fs: pafs.FileSystem, fsspec_fs: Any = None, scheme: str = "",
                 object_store: bool = False) -> None:
        self.pa_fs = pa_fs
        self.fsspec_fs = fsspec_fs
        self.scheme = scheme
        self.object_store = object_store

    def __repr__(self) -> str:
        return f"FileSystemHandle(scheme={self.scheme!r}, object_store={self.object_store})"

    @property
    def is_local(self) -> bool:
        return self.scheme == "" and isinstance(self.pa_fs, pafs.LocalFileSystem)

    @property
    def process_local(self) -> bool:
        """Whether the files live in this process's memory (fsspec ``memory://``, pyarrow's
        mock filesystem), out of sight of worker processes."""
        if self.fsspec_fs is not None:
            return "memory" in _protocols(self.fsspec_fs)
        return bool(self.pa_fs.type_name == "mock")

    def display(self, path: str) -> str:
        """The path as a user would write it (scheme included), for messages."""
        if not self.scheme or self.scheme in _LOCAL_SCHEMES:
            return path
        return f"{self.scheme}://{path.lstrip('/')}"

    def normalize(self, path: str) -> str:
        """Return ``path`` (a URL or a filesystem path) as a path of this filesystem."""
        match = _SCHEME_RE.match(path)
        if self.is_local:
            if match and match.group(1).lower() in _LOCAL_SCHEMES:
                path = path[match.end():]
            return os.path.abspath(os.path.expanduser(path))
        if self.fsspec_fs is not None:
            return str(self.fsspec_fs._strip_protocol(path))
        if match:
            path = path[match.end():]
        return path.rstrip("/") or path

    # -- reading ------------------------------------------------------------------------
    def open_input_file(self, path: str) -> pa.NativeFile:
        """Open for random access (parquet). fsspec files are opened without read-ahead,
        so reading a few column chunks does not fetch the bytes between them."""
        if self.fsspec_fs is not None and self.object_store:
            try:
                raw = self.fsspec_fs.open(path, "rb", cache_type="none")
            except TypeError:
                raw = self.fsspec_fs.open(path, "rb")
            return pa.PythonFile(raw, mode="r")
        return self.pa_fs.open_input_file(path)

    def open_input_stream(self, path: str, **open_args: Any) -> pa.NativeFile:
        """Open for sequential reading; ``compression`` defaults to detection by extension."""
        args = dict(open_args)
        args.setdefault("compression", "detect")
        if args["compression"] == "snappy" or \
                (args["compression"] == "detect" and path.lower().endswith(".snappy")):
            args["compression"] = None
            with self.pa_fs.open_input_stream(path, **args) as raw:
                return _snappy_decompressed(raw, path)
        return self.pa_fs.open_input_stream(path, **args)

    def invalidate_cache(self, path: str) -> None:
        """Drop fsspec's cached listings: files may have been written by another process."""
        if self.fsspec_fs is not None:
            # A cache is an optimization; never fail a read over it.
            with contextlib.suppress(Exception):
                self.fsspec_fs.invalidate_cache(path)

    # -- listing ------------------------------------------------------------------------
    def list_files(self, directory: str, skip_hidden: bool = True) -> list[FileEntry]:
        """All files below ``directory`` (recursively), sorted by path."""
        selector = pafs.FileSelector(directory, recursive=True, allow_not_found=True)
        base = directory.rstrip("/")
        out = []
        for info in self.pa_fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            if skip_hidden and _is_hidden(info.path, base):
                continue
            out.append(FileEntry(info.path, info.size))
        out.sort(key=lambda e: e.path)
        return out

    def list_dir(self, directory: str) -> list[FileEntry]:
        """The files directly in ``directory`` (hidden ones included)."""
        selector = pafs.FileSelector(directory, recursive=False, allow_not_found=True)
        return [FileEntry(i.path, i.size) for i in self.pa_fs.get_file_info(selector)
                if i.type == pafs.FileType.File]

    def has_files(self, directory: str) -> bool:
        """Whether ``directory`` holds any file (hidden ones included)."""
        self.invalidate_cache(directory)
        info = self.pa_fs.get_file_info(directory)
        if info.type == pafs.FileType.File:
            return True
        if info.type != pafs.FileType.Directory:
            return False
        return bool(self.list_files(directory, skip_hidden=False))

    # -- writing ------------------------------------------------------------------------
    def create_dir(self, path: str) -> None:
        if not self.object_store:
            self.pa_fs.create_dir(path, recursive=True)

    def delete_file(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pa_fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        """Rename ``src`` to ``dest``, replacing ``dest`` (atomic on local filesystems)."""
        if self.is_local:
            os.replace(src, dest)
        else:
            self.pa_fs.move(src, dest)

    def delete_empty_dirs(self, root: str) -> None:
        """Remove empty directories below ``root`` (not ``root`` itself); local only."""
        if not self.is_local:
            return
        for dirpath, _dirnames, _files in os.walk(root, topdown=False):
            if dirpath != root:
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)


def _snappy_decompressed(raw: pa.NativeFile, path: str) -> pa.NativeFile:
    """The content of a snappy-framed file (Arrow has no streaming snappy codec; Ray Data
    decompresses these with python-snappy too)."""
    try:
        import snappy
    except ImportError as exc:
        raise ImportError(f"reading the snappy-compressed file {path} needs python-snappy: "
                          "pip install python-snappy") from exc
    out = io.BytesIO()
    snappy.stream_decompress(src=raw, dst=out)
    return pa.BufferReader(pa.py_buffer(out.getvalue()))


def check_reachable_from_workers(handle: FileSystemHandle, shown_path: str) -> None:
    """Raise ``ValueError`` naming ``shown_path`` if it is on a filesystem only this process
    sees. Read and write tasks run in worker processes: a read of the driver's
    ``memory://`` files would fail there with a misleading ``FileNotFoundError``, and a
    write would land in the workers' memory and vanish (Ray Data 2.60 fails such a read
    and silently loses such a write)."""
    if handle.process_local:
        raise ValueError(
            f"{shown_path} is on an in-memory filesystem that only this process can see, "
            f"but the engine reads and writes files in worker processes; use a local "
            f"directory (e.g. tempfile.mkdtemp()) or an object store instead")


def _is_hidden(path: str, base: str) -> bool:
    relative = path[len(base):].lstrip("/") if path.startswith(base) else path.rsplit("/", 1)[-1]
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _scheme_of(path: str) -> str:
    match = _SCHEME_RE.match(path)
    return match.group(1).lower() if match else ""


def _protocols(fsspec_fs: Any) -> tuple[str, ...]:
    protocol = getattr(fsspec_fs, "protocol", "")
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _is_fsspec(obj: Any) -> bool:
    try:
        from fsspec import AbstractFileSystem
    except ImportError:  # pragma: no cover - fsspec is a core dependency
        return False
    return isinstance(obj, AbstractFileSystem)


def _handle_for_fsspec(fsspec_fs: Any) -> FileSystemHandle:
    protocols = _protocols(fsspec_fs)
    scheme = protocols[0] if protocols else ""
    rename_safe = any(p in _RENAME_SAFE_PROTOCOLS for p in protocols)
    if scheme in ("file", "local"):
        scheme = ""
    pa_fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec_fs))
    return FileSystemHandle(pa_fs, fsspec_fs, scheme, object_store=not rename_safe)


def _handle_for_pyarrow(pa_fs: pafs.FileSystem) -> FileSystemHandle:
    if isinstance(pa_fs, pafs.PyFileSystem) and isinstance(pa_fs.handler, pafs.FSSpecHandler):
        return _handle_for_fsspec(pa_fs.handler.fs)
    if isinstance(pa_fs, pafs.LocalFileSystem):
        return FileSystemHandle(pa_fs, None, "", object_store=False)
    type_name = pa_fs.type_name
    rename_safe = type_name in ("local", "hdfs", "subtree", "mock")
    scheme = {"s3": "s3", "gcs": "gs", "hdfs": "hdfs", "abfs": "abfs"}.get(type_name, "")
    return FileSystemHandle(pa_fs, None, scheme, object_store=not rename_safe)


def _handle_for_url(url: str) -> FileSystemHandle:
    scheme = _scheme_of(url)
    try:
        import fsspec

        storage_options: dict[str, Any] = {}
        if scheme in ("s3", "s3a") and "anonymous@" in url.split("/", 3)[2]:
            storage_options["anon"] = True  # Ray's s3://anonymous@bucket/... convention
        return _handle_for_fsspec(fsspec.filesystem(scheme, **storage_options))
    except (ImportError, ValueError) as fsspec_error:
        try:
            pa_fs, _ = pafs.FileSystem.from_uri(url)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
            raise ImportError(
                f"cannot open {url!r}: no filesystem for scheme {scheme!r} ({fsspec_error}); "
                f"install the fsspec implementation for it (for s3://, `pip install s3fs`)"
            ) from fsspec_error
        return _handle_for_pyarrow(pa_fs)


def resolve_filesystem(paths: str | list[str], filesystem: Any = None
                       ) -> tuple[list[str], FileSystemHandle]:
    """Return the filesystem paths for ``paths`` and the handle to read or write them.

    Raises ``TypeError`` for a ``filesystem`` that is neither fsspec nor pyarrow, and
    ``ValueError`` for an empty list or paths that mix schemes.
    """
    path_list = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not path_list:
        raise ValueError("paths must name at least one file or directory, got an empty list")
    for p in path_list:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"paths must be strings, got {type(p).__name__}: {p!r}")
    path_list = [os.fspath(p) for p in path_list]
    if filesystem is None:
        schemes = {_scheme_of(p) if _scheme_of(p) not in _LOCAL_SCHEMES else ""
                   for p in path_list}
        if len(schemes) > 1:
            raise ValueError(f"paths mix filesystems {sorted(schemes)}; read them separately "
                             f"or pass one filesystem")
        scheme = schemes.pop()
        if scheme == "":
            handle = FileSystemHandle(pafs.LocalFileSystem(), None, "", object_store=False)
        else:
            handle = _handle_for_url(path_list[0])
    elif isinstance(filesystem, pafs.FileSystem):
        handle = _handle_for_pyarrow(filesystem)
    elif _is_fsspec(filesystem):
        handle = _handle_for_fsspec(filesystem)
    else:
        raise TypeError(
            "filesystem must be a pyarrow.fs.FileSystem or an fsspec filesystem, got "
            f"{type(filesystem).__name__}"
        )
    return [_strip_anonymous(handle.normalize(p)) for p in path_list], handle


def _strip_anonymous(path: str) -> str:
    return path[len("anonymous@"):] if path.startswith("anonymous@") else path


def has_file_extension(path: str, extensions: list[str] | None) -> bool:
    """Whether ``path`` ends with one of ``extensions`` (case-insensitive, dot optional)."""
    if extensions is None:
        return True
    lower = path.lower()
    return any(lower.endswith("." + ext.lower().lstrip(".")) for ext in extensions)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"(/.*)?\Z")


def _expand_glob(pattern: str, handle: FileSystemHandle) -> list[FileEntry]:
    parts = pattern.split("/")
    static = []
    for part in parts:
        if _GLOB_CHARS.search(part):
            break
        static.append(part)
    root = "/".join(static) or "/"
    regex = _glob_regex(pattern)
    handle.invalidate_cache(root)
    return [e for e in handle.list_files(root) if regex.match(e.path)]


def expand_paths(paths: list[str], handle: FileSystemHandle, *,
                 ignore_missing_paths: bool = False) -> list[FileEntry]:
    """List the files that ``paths`` name: files as given, directories recursively (in
    path order), glob patterns expanded.

    Raises ``FileNotFoundError`` naming the first missing path unless
    ``ignore_missing_paths``.
    """
    for p in paths:
        handle.invalidate_cache(p)
    infos = handle.pa_fs.get_file_info(paths)
    out: list[FileEntry] = []
    for path, info in zip(paths, infos, strict=True):
        if info.type == pafs.FileType.File:
            out.append(FileEntry(info.path, info.size))
        elif info.type == pafs.FileType.Directory:
            out.extend(handle.list_files(path))
        elif _GLOB_CHARS.search(path) and (matches := _expand_glob(path, handle)):
            out.extend(matches)
        elif not ignore_missing_paths:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory",
                                    handle.display(path))
    return out


def filter_extensions(entries: list[FileEntry], file_extensions: list[str] | None,
                      paths: list[str], handle: FileSystemHandle,
                      ignore_missing_paths: bool) -> list[FileEntry]:
    """Keep files with one of ``file_extensions``; raise ``ValueError`` (like Ray) if none
    is left."""
    shown = [handle.display(p) for p in paths[:3]] + (["..."] if len(paths) > 3 else [])
    if not entries:
        hint = " (missing paths were skipped: ignore_missing_paths=True)" \
            if ignore_missing_paths else ""
        raise ValueError(f"No files found under {shown}{hint}. Note that listing skips "
                         f"names starting with '.' or '_'.")
    kept = [e for e in entries if has_file_extension(e.path, file_extensions)]
    if not kept:
        raise ValueError(f"No files with extensions {file_extensions} found under {shown}; "
                         f"pass file_extensions=None to read every file")
    return kept
