"""How each engine is imported, started and stopped, and the few knobs whose names differ.

Engines: ``engine`` (this project), ``engine-ray`` (this project on its Ray Core backend,
against a local Ray instance started as Ray Data's is), ``ray`` (``ray.data``), ``daft``,
``pyarrow-loop`` (a hand-written single-process pyarrow baseline) and ``torch-dataloader`` (a
torch ``DataLoader`` with worker processes, where a workload has one). Workloads written against
the ray.data API get the module ``engine`` or ``ray.data`` as ``api`` and call the helpers
here for what the two spell differently.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

ENGINES = ("engine", "engine-ray", "ray", "daft", "pyarrow-loop", "torch-dataloader")
BASELINES = ("pyarrow-loop", "torch-dataloader")  # listed only where a workload has them

# The module whose import tells whether an engine is installed.
PROBE_MODULE = {
    "engine": "engine",
    "engine-ray": "ray",
    "ray": "ray.data",
    "daft": "daft",
    "pyarrow-loop": "pyarrow.parquet",
    "torch-dataloader": "torch.utils.data",
}

# Ray Data 2.60 hangs forever on a machine with as many CPUs as actors: the actor pool of
# ``map_batches(Cls, concurrency=2)`` holds both CPUs of a 2-CPU machine and the read tasks
# feeding it never get one. Ray runs that workload with one more logical CPU than actors.
RAY_ACTOR_WORKLOADS = {"actor": 2}


def parse_engines(text: str) -> list[str]:
    """Return the engine names of a comma-separated list, validated."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}; expected some of {', '.join(ENGINES)}")
    return names


def ray_init_kwargs(workload: str) -> dict[str, Any]:
    """Return the arguments of ``ray.init`` for ``workload`` (empty: Ray's defaults)."""
    actors = RAY_ACTOR_WORKLOADS.get(workload)
    cpus = os.cpu_count() or 1
    if actors is not None and cpus <= actors:
        return {"num_cpus": actors + 1}
    return {}


def start(engine: str, workload: str, ready: bool = True) -> tuple[ModuleType, str]:
    """Import and initialize ``engine``; return its API module and a note on deviations.

    ``ready``: return once the engine has started completely (this engine's ``init``
    returns while its worker processes are still starting; a warm timing excludes that)."""
    if engine == "engine":
        import engine as ed

        data_context(ed).get_current().enable_progress_bars = False
        cluster = ed.init()
        if ready:
            cluster.wait_ready()
        importlib.import_module("engine.expressions")
        return ed, ""
    if engine == "engine-ray":
        import ray

        import engine as ed

        data_context(ed).get_current().enable_progress_bars = False
        kwargs = ray_init_kwargs(workload)
        ray.init(**kwargs)  # the same local Ray instance Ray Data gets
        cluster = ed.init(address="auto")
        if ready:
            cluster.wait_ready()
        importlib.import_module("engine.expressions")
        return ed, ""
    if engine == "ray":
        import ray
        import ray.data
        import ray.data.expressions  # makes ray.data.expressions an attribute

        kwargs = ray_init_kwargs(workload)
        # "local": a Ray instance of its own. Without an address ray.init joins any cluster
        # already running on the machine (another process's, possibly of another Ray
        # install), and its tasks run there.
        ray.init(address="local", **kwargs)
        data_context(ray.data).get_current().enable_progress_bars = False
        note = ""
        if kwargs:
            args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
            note = f"ray.init({args}): with the default CPU count Ray Data 2.60 hangs"
        return ray.data, note
    if engine == "daft":
        import daft

        return daft, ""
    if engine == "pyarrow-loop":
        import pyarrow
        import pyarrow.parquet

        return pyarrow, ""
    if engine == "torch-dataloader":
        import torch
        import torch.utils.data

        return torch, ""
    raise ValueError(f"unknown engine {engine!r}")


def stop(engine: str) -> None:
    """Shut ``engine`` down so that none of its processes outlive the benchmark child."""
    if engine == "ray":
        import ray

        ray.shutdown()
    elif engine in ("engine", "engine-ray"):
        import engine as ed

        shutdown = getattr(ed, "shutdown", None)
        if shutdown is not None:
            shutdown()
        if engine == "engine-ray":
            import ray

            ray.shutdown()


def data_context(api: ModuleType) -> Any:
    """Return the API's ``DataContext`` class (``ray.data.DataContext``)."""
    found = getattr(api, "DataContext", None)
    return found or importlib.import_module(api.__name__ + ".context").DataContext


def col(api: ModuleType) -> Callable[[str], Any]:
    """Return ``col`` of the API's expression module (``ray.data.expressions.col``)."""
    return importlib.import_module(api.__name__ + ".expressions").col


def set_memory_budget(api: ModuleType, nbytes: int) -> None:
    """Cap the bytes of blocks an execution may hold in the block/object store."""
    ctx = data_context(api).get_current()
    if api.__name__ == "engine":
        ctx.memory_budget = nbytes
    else:
        # Ray 2.60: ExecutionResources is immutable; resource_limits is replaced whole.
        limits = ctx.execution_options.resource_limits
        ctx.execution_options.resource_limits = limits.copy(object_store_memory=nbytes)
