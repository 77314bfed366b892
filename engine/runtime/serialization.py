"""Serialization of the code the driver ships to workers (functions, actor classes).

cloudpickle pickles functions that are not importable (defined in ``__main__``, in a
notebook, inside another function, lambdas) by value, and since 3.x it replaces each code
object's file name with ``"<dynamic-code>"``. A UDF that raises on a worker then shows
``File "<dynamic-code>", line 12`` and no source line. :func:`dumps_code` keeps the real
file name, so the worker's traceback names the user's file and (via ``linecache``, the
file being on the same machine) quotes the failing line.

Workers start with the driver's ``sys.path`` of the moment the cluster started. A function
from a module found through a path added later (``sys.path.insert`` in a script or notebook
after the first dataset call) would not import on a worker: the payload carries the
driver's current ``sys.path`` and the worker appends the entries it lacks before loading.
"""

from __future__ import annotations

import io
import sys
import types
from collections import ChainMap
from typing import Any

import cloudpickle

_DYNAMIC_FILENAME = "<dynamic-code>"
_cloudpickle_code_reduce = cloudpickle.Pickler.dispatch_table[types.CodeType]


def _code_reduce_keeping_filename(code: types.CodeType) -> Any:
    ctor, args = _cloudpickle_code_reduce(code)
    return ctor, tuple(code.co_filename if a == _DYNAMIC_FILENAME else a for a in args)


class _CodePickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _code_reduce_keeping_filename},
                              cloudpickle.Pickler.dispatch_table)


def _dumps(obj: Any) -> bytes:
    with io.BytesIO() as buffer:
        _CodePickler(buffer).dump(obj)
        return buffer.getvalue()


class _SysPathHook:
    """Unpickles to ``None`` after putting the driver's import paths on ``sys.path``."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __reduce__(self) -> tuple[Any, ...]:
        return (_extend_sys_path, (self.paths,))


class _AfterSysPath:
    """Pickles ``obj`` behind a :class:`_SysPathHook`: arguments are unpickled in order, so
    the paths are in place before anything ``obj`` imports (one pickling, not two)."""

    def __init__(self, paths: list[str], obj: Any) -> None:
        self.paths = paths
        self.obj = obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (_second, (_SysPathHook(self.paths), self.obj))


def _extend_sys_path(paths: list[str]) -> None:
    missing = [p for p in paths if p not in sys.path]
    sys.path.extend(missing)  # appended: never shadows what the worker already imports


def _second(_: Any, obj: Any) -> Any:
    return obj


def dumps_code(obj: Any) -> bytes:
    """Like ``cloudpickle.dumps(obj)`` (``pickle.loads`` reads it back), keeping the file
    names of code pickled by value and carrying the driver's current ``sys.path``."""
    return _dumps(_AfterSysPath([p for p in sys.path if p], obj))
