"""The named workloads and the contract each workload module keeps.

A workload module ``bench/workloads/<name>.py`` defines, for the ray.data-shaped API (the
module ``ray.data`` or ``engine`` is passed in as ``api``):

- ``run(api, scale, data) -> Result``: the timed part. It checks its own result.
- ``setup(api, scale) -> data`` (optional): untimed preparation after the engine started,
  e.g. building and materializing the input; its return value is passed to ``run``.
- ``prepare(scale)`` (optional): files on disk the workload reads, made once per data size
  in a process of their own before any engine runs (cached across runs).

and, where another engine has an equivalent, ``run_daft``/``setup_daft`` (``api`` is the
``daft`` module) and ``run_pyarrow_loop``/``setup_pyarrow_loop`` (``api`` is ``pyarrow``: a
hand-written single-process loop as a baseline) and ``run_torch_dataloader`` (``api`` is
``torch``). A workload with ``COLD_START = True`` is timed from before the engine starts:
its ``setup`` runs first (``api`` None), and ``run`` gets ``started=`` (that moment) as a
keyword. A workload that is a whole process
instead (``tiny``) defines ``script(engine) -> str | None``, the ``python -c`` source.

Every workload generates its data from a fixed seed and ``scale`` shrinks its sizes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

WORKLOADS = ("tiny", "map20m", "actor", "stream10g", "agg", "exprchain", "etl", "ingest",
             "materialize", "concurrent", "train-ingest", "train-ingest-shuffle",
             "shuffle", "sort", "sort-full", "sort-budget", "groupby", "join-small",
             "join-large")

# Which functions of a workload module implement it for an engine.
_SUFFIX = {"engine": "", "engine-ray": "", "ray": "", "daft": "_daft",
           "pyarrow-loop": "_pyarrow_loop", "torch-dataloader": "_torch_dataloader"}


@dataclass
class Result:
    """What the timed part of a workload reports.

    ``rows`` and ``bytes`` are what it processed (for rows/s and MB/s; ``bytes`` is None
    where a rate is meaningless), ``ok`` whether the result matched the expected one,
    ``detail`` what differed, ``extra`` further timings in seconds (e.g. first batch).
    """

    rows: int
    ok: bool
    bytes: int | None = None
    detail: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def load(name: str) -> ModuleType:
    """Return the module of workload ``name``."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; expected one of {', '.join(WORKLOADS)}")
    return importlib.import_module(f"bench.workloads.{name.replace('-', '_')}")


def is_whole_process(module: ModuleType) -> bool:
    """Whether the workload is timed as a whole ``python -c`` process."""
    return hasattr(module, "script")


def starts_cold(module: ModuleType) -> bool:
    """Whether the engine's start is part of the workload's timed part."""
    return bool(getattr(module, "COLD_START", False))


def supports(module: ModuleType, engine: str) -> bool:
    """Whether ``module`` has an implementation for ``engine``."""
    if is_whole_process(module):
        return module.script(engine) is not None
    return hasattr(module, "run" + _SUFFIX[engine])


def implementation(
    module: ModuleType, engine: str
) -> tuple[Callable[[Any, float], Any], Callable[[Any, float, Any], Result]]:
    """Return the ``(setup, run)`` pair of ``module`` for ``engine``."""
    suffix = _SUFFIX[engine]
    setup = getattr(module, "setup" + suffix, None) or _no_setup
    return setup, getattr(module, "run" + suffix)


def _no_setup(api: Any, scale: float) -> None:
    return None


def scaled(n: int, scale: float, minimum: int = 1) -> int:
    """Return ``n * scale`` rounded, and at least ``minimum``."""
    return max(minimum, round(n * scale))
