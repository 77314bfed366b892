"""Partition values encoded in file paths (``year=2024/month=01/part.parquet``).

:class:`Partitioning` mirrors Ray Data's: ``Partitioning("hive")`` reads ``key=value``
directories, ``Partitioning("dir", field_names=[...])`` reads plain directory names as the
values of ``field_names``. Values are strings unless ``field_types`` says otherwise
(``int``, ``float``, ``str``, ``bool``). Hive values are URL-decoded, and Hive's
``__HIVE_DEFAULT_PARTITION__`` reads as null.

:class:`PathPartitionFilter` is Ray's ``partition_filter``: it keeps the files whose
partition values (always strings) a user function accepts, before anything is read.

Choice where Ray is unclear: with ``"dir"`` style and no ``base_dir``, the last
``len(field_names)`` directories of each path are the values (Ray would take every
directory of an absolute path and fail on the count).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_ARROW_TYPES: dict[Any, pa.DataType] = {
    int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_(),
}


class PartitionStyle(str, Enum):
    """How partition values are laid out in paths: ``"hive"`` (k=v) or ``"dir"`` (v)."""

    HIVE = "hive"
    DIRECTORY = "dir"


@dataclass
class Partitioning:
    """A path-based partition scheme.

    Args:
        style: ``"hive"`` or ``"dir"``.
        base_dir: Only directories below this one hold partition values ("" = any).
        field_names: Partition keys; required for ``"dir"``.
        field_types: Python type per key (``int``, ``float``, ``str``, ``bool``).
        filesystem: The filesystem ``base_dir`` lives on (used to normalize it).
    """

    style: PartitionStyle | str
    base_dir: str | None = None
    field_names: list[str] | None = None
    field_types: dict[str, Any] | None = field(default=None)
    filesystem: Any = None

    def __post_init__(self) -> None:
        try:
            self.style = PartitionStyle(self.style)
        except ValueError:
            raise ValueError(f"partitioning style must be 'hive' or 'dir', got "
                             f"{self.style!r}") from None
        if self.base_dir is None:
            self.base_dir = ""
        if self.field_types is None:
            self.field_types = {}
        for name, typ in self.field_types.items():
            if typ not in _ARROW_TYPES:
                raise ValueError(f"field_types[{name!r}] must be one of int, float, str, "
                                 f"bool; got {typ!r}")
        if self.style == PartitionStyle.DIRECTORY and not self.field_names:
            raise ValueError("Partitioning('dir') needs field_names: the partition key "
                             "of each directory level")

    def arrow_type(self, name: str) -> pa.DataType:
        """The Arrow type of partition key ``name``."""
        assert self.field_types is not None
        return _ARROW_TYPES[self.field_types.get(name, str)]


class PathPartitionParser:
    """Parses the raw (string) partition values out of file paths.

    Args:
        partitioning: The scheme.
        normalize: Turns ``base_dir`` into a path of the filesystem being read.
    """

    def __init__(self, partitioning: Partitioning,
                 normalize: Callable[[str], str] | None = None) -> None:
        self.partitioning = partitioning
        base = partitioning.base_dir or ""
        if base and normalize is not None:
            base = normalize(base)
        self._base = base.rstrip("/") + "/" if base else ""

    def __call__(self, path: str) -> dict[str, str | None]:
        """Return ``{key: value}`` for ``path``; values are strings or None (Hive null)."""
        if self._base:
            if not path.startswith(self._base):
                return {}
            path = path[len(self._base):]
        dirs = [d for d in path.split("/")[:-1] if d]
        if self.partitioning.style == PartitionStyle.HIVE:
            return self._parse_hive(dirs)
        return self._parse_dirs(dirs, path)

    def _parse_hive(self, dirs: list[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for d in dirs:
            if "=" not in d:
                continue
            key, _, value = d.partition("=")
            value = urllib.parse.unquote(value)
            out[urllib.parse.unquote(key)] = None if value == HIVE_NULL else value
        names = self.partitioning.field_names
        if names and out and list(out) != list(names):
            raise ValueError(f"hive partition keys {list(out)} do not match field_names "
                             f"{names}")
        return out

    def _parse_dirs(self, dirs: list[str], path: str) -> dict[str, str | None]:
        names = self.partitioning.field_names or []
        if not dirs:
            return {}
        if self._base:
            if len(dirs) != len(names):
                raise ValueError(f"{path!r} has {len(dirs)} partition directories below "
                                 f"{self._base!r} but field_names has {len(names)}: {names}")
        elif len(dirs) < len(names):
            return {}
        values = dirs[-len(names):]
        return {n: urllib.parse.unquote(v) for n, v in zip(names, values, strict=True)}


def partition_schema(partitioning: Partitioning,
                     parsed: list[dict[str, str | None]]) -> pa.Schema:
    """The Arrow fields of the partition keys found, in first-seen order."""
    names: dict[str, None] = {}
    for n in partitioning.field_names or []:
        names[n] = None
    for values in parsed:
        for k in values:
            names.setdefault(k, None)
    return pa.schema([(n, partitioning.arrow_type(n)) for n in names])


def typed_value(raw: str | None, typ: pa.DataType) -> Any:
    """Convert a raw partition string to a Python value of Arrow type ``typ``."""
    if raw is None:
        return None
    if pa.types.is_boolean(typ):
        lowered = raw.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError(f"partition value {raw!r} is not a bool")
    if pa.types.is_integer(typ):
        return int(raw)
    if pa.types.is_floating(typ):
        return float(raw)
    return raw


def partition_expression(values: dict[str, Any], schema: pa.Schema) -> pc.Expression | None:
    """An expression true exactly for rows carrying these partition values (for pruning)."""
    expr = None
    for name, value in values.items():
        typ = schema.field(name).type
        term = (pc.field(name).is_null() if value is None
                else pc.field(name) == pc.scalar(pa.scalar(value, typ)))
        expr = term if expr is None else expr & term
    return expr


class PathPartitionFilter:
    """Keeps files whose partition values pass ``filter_fn`` (Ray's ``partition_filter``).

    ``filter_fn`` receives ``{key: value}`` with string values (``{}`` for an
    unpartitioned file) and returns whether to read the file.
    """

    def __init__(self, parser: PathPartitionParser,
                 filter_fn: Callable[[dict[str, str | None]], bool]) -> None:
        self._parser = parser
        self._filter_fn = filter_fn

    @staticmethod
    def of(filter_fn: Callable[[dict[str, str | None]], bool],
           style: PartitionStyle | str = PartitionStyle.HIVE, base_dir: str | None = None,
           field_names: list[str] | None = None, field_types: dict[str, Any] | None = None,
           filesystem: Any = None) -> PathPartitionFilter:
        """Build a filter from a partition scheme's arguments and a predicate on values."""
        scheme = Partitioning(style, base_dir, field_names, field_types, filesystem)
        return PathPartitionFilter(PathPartitionParser(scheme), filter_fn)

    def with_normalizer(self, normalize: Callable[[str], str]) -> PathPartitionFilter:
        """This filter with ``base_dir`` resolved on the filesystem being read."""
        return PathPartitionFilter(PathPartitionParser(self._parser.partitioning, normalize),
                                   self._filter_fn)

    def __call__(self, paths: list[str]) -> list[str]:
        return [p for p in paths if self._filter_fn(self._parser(p))]
