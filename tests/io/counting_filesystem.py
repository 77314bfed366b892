"""A local fsspec filesystem that counts the files opened and bytes read, to prove that
pushdown reads less. Read tasks are pickled, which rebuilds the filesystem from its
arguments, so both copies count into one module-level table keyed by ``counter_id``."""

from __future__ import annotations

from typing import Any

from fsspec.implementations.local import LocalFileSystem

COUNTERS: dict[str, dict[str, Any]] = {}


class _CountingFile:
    def __init__(self, f: Any, counter: dict[str, Any]) -> None:
        self._f = f
        self._counter = counter

    def read(self, *args: Any) -> bytes:
        data = self._f.read(*args)
        self._counter["bytes"] += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _CountingFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._f.close()


class CountingFileSystem(LocalFileSystem):
    """A local fsspec filesystem that counts opened files and bytes read."""

    cachable = False

    def __init__(self, counter_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.counter_id = counter_id
        COUNTERS.setdefault(counter_id, {"bytes": 0, "opened": []})

    @property
    def counter(self) -> dict[str, Any]:
        return COUNTERS[self.counter_id]

    def reset(self) -> None:
        self.counter["bytes"] = 0
        self.counter["opened"] = []

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        f = super()._open(path, mode, *args, **kwargs)
        if "r" in mode:
            self.counter["opened"].append(path)
            return _CountingFile(f, self.counter)
        return f
