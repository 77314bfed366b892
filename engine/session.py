"""The process-wide session that Ray Data's API implies: the implicitly started cluster.

``init()`` starts the embedded local cluster (or returns the running one); any consuming
call starts it implicitly; ``shutdown()`` stops it and runs at exit. To keep a whole small
script under a second, the zygote is started ahead (``prestart``) while the driver still
imports pyarrow.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.physical.resource_manager import ResourceManager
    from engine.runtime.driver_tasks import DriverTasks
    from engine.runtime.interfaces import Runtime

logger = logging.getLogger(__name__)

# Modules every map task unpickles code from, the parquet reader's and the local shuffle's
# (numpy.random is imported at its first use): imported once in the zygote, not per worker
# at its first task (a cold parquet scan's first block came ~0.6 s
# later without them on the 2-core machine).
_WORKER_PRELOAD = ("engine.physical.transform", "engine.expressions", "engine.aggregate",
                   "engine.io.parquet_scan", "engine.physical.exchange.plans",
                   "engine.physical.operators.broadcast_join", "pyarrow.parquet",
                   "engine.consumption.local_shuffle", "numpy.random")
# Preloaded too when the driver has imported pandas (its pipeline likely formats batches as
# DataFrames): pandas costs the zygote ~0.2 s, half its start, which a pipeline that never
# needs it (parquet to torch, numpy batches) should not wait for. Workers of a zygote without
# it import it themselves at the first task that needs it.
_PANDAS_PRELOAD = ("pandas", "pyarrow.dataset")


def _worker_preload() -> tuple[str, ...]:
    import sys

    return _WORKER_PRELOAD + (_PANDAS_PRELOAD if "pandas" in sys.modules else ())

_lock = threading.RLock()
_cluster: Runtime | None = None
_resources: ResourceManager | None = None
_driver_tasks: DriverTasks | None = None
_zygote: Any = None


def prestart() -> None:
    """Start the zygote early so its imports overlap the driver's (no-op once running)."""
    global _zygote
    with _lock:
        if _cluster is None and _zygote is None:
            from engine.runtime.zygote import Zygote

            _zygote = Zygote(preload=_worker_preload())


def init(num_cpus: int | None = None, num_gpus: int | None = None,
         address: str | None = None, *, ignore_reinit_error: bool = True,
         object_store_memory: int | None = None, runtime_env: dict[str, Any] | None = None,
         **_: Any) -> Any:
    """Start the embedded local cluster, or connect to a Ray cluster, and return it.

    Args:
        num_cpus: Worker processes for tasks (default: every CPU of this machine).
        num_gpus: GPUs handed to actors (default: detected).
        address: ``None`` or ``"local"``: the embedded cluster on this machine.
            ``"auto"``: the Ray cluster named by ``RAY_ADDRESS`` or started on this
            machine with ``ray start`` (an error if there is none). ``"host:port"``: the
            Ray cluster whose head node (GCS) listens there. ``"ray://host:port"``: through
            Ray Client (each task then hands over its blocks when it ends). The
            ``ENGINE_ADDRESS`` environment variable sets the default.
        object_store_memory: The block store's budget in bytes (default:
            ``DataContext.memory_budget``).
        runtime_env: On a Ray cluster, Ray's runtime environment for this job's workers;
            the ``engine`` package is added to its ``py_modules`` unless
            ``ENGINE_SHIP_PACKAGE=0`` (workers then import the one installed there).

    Like ``ray.init()``, it returns once the embedded cluster is started while its worker
    processes may still be coming up (``init().wait_ready()`` waits for them): tasks
    submitted meanwhile wait for them, except the engine's own reads of built-in formats,
    which a thread of this process runs until then (``engine.runtime.driver_lane``). On a
    Ray cluster it returns once a worker per CPU has started.
    """
    on_ray = resolve_address(address) is not None
    if not on_ray:
        prestart()  # the zygote imports while the driver does (not after: 2 serial waits)
    _import_while_workers_start()
    cluster = _start(num_cpus, num_gpus, address, ignore_reinit_error, object_store_memory,
                     runtime_env)
    if on_ray and not cluster.wait_ready():  # Ray's workers: started and warmed up here
        logger.warning("engine.init: not every Ray worker started within 30 s; going on")
    return cluster


# What the driver imports for a first read (a parquet scan): imported while init() waits for
# the workers rather than after it returns. (A consuming call that starts the cluster
# implicitly needs no such help: the zygote starts while the driver imports.) Not pandas
# (nor pyarrow.dataset, which imports it): a plain ingest never needs it in the driver, and
# its quarter second of CPU competes with the zygote's start on a small machine.
_DRIVER_WARM_IMPORTS = ("pyarrow.parquet", "pyarrow.compute", "engine.dataset",
                        "engine.io.parquet_datasource", "engine.read_api",
                        "engine.physical.planner", "engine.physical.executor",
                        "engine.consumption.batching", "engine.consumption.torch_batches",
                        "engine.collate_fn", "numpy.random")


def _import_while_workers_start() -> None:
    import importlib

    for name in _DRIVER_WARM_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional part of pyarrow missing: a read says so later
            continue


def resolve_address(address: str | None) -> str | None:
    """The Ray address ``address`` names, or ``None`` for the embedded cluster."""
    if address is None:
        address = os.environ.get("ENGINE_ADDRESS") or None
    if address is None or address == "local":
        return None
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"address={address!r}: expected None, 'local', 'auto', "
                         "'ray://host:port' or 'host:port'")
    address = address.strip()
    if address == "auto":
        return os.environ.get("RAY_ADDRESS") or "auto"
    if address.startswith("ray://") or ":" in address:
        return address
    raise ValueError(f"address={address!r}: expected None, 'local', 'auto', "
                     "'ray://host:port' or 'host:port'")


def _start(num_cpus: int | None, num_gpus: int | None, address: str | None,
           ignore_reinit_error: bool, object_store_memory: int | None,
           runtime_env: dict[str, Any] | None = None) -> Any:
    global _cluster, _zygote
    ray_address = resolve_address(address)
    with _lock:
        if _cluster is not None:
            if not ignore_reinit_error:
                raise RuntimeError("the engine is already initialized; call shutdown() first")
            return _cluster
        if ray_address is not None:
            _cluster = _connect_ray(ray_address, num_cpus, num_gpus, runtime_env)
            return _cluster
        from engine.context import DataContext
        from engine.runtime.cluster import LocalCluster

        ctx = DataContext.get_current()
        zygote, _zygote = _zygote, None
        if zygote is None:
            from engine.runtime.zygote import Zygote

            zygote = Zygote(preload=_worker_preload())
        _cluster = LocalCluster(num_cpus=num_cpus, num_gpus=num_gpus,
                                memory_budget=object_store_memory or ctx.memory_budget,
                                inline_max_bytes=ctx.inline_block_max_bytes, zygote=zygote,
                                default_credits=ctx.task_output_credits,
                                spill_root=ctx.spill_dir)
        return _cluster


def _connect_ray(address: str, num_cpus: int | None, num_gpus: int | None,
                 runtime_env: dict[str, Any] | None) -> Runtime:
    if num_cpus is not None or num_gpus is not None:
        raise ValueError("engine.init: num_cpus and num_gpus describe the embedded cluster; "
                         f"a Ray cluster (address={address!r}) has its own resources")
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ImportError(f"engine.init(address={address!r}) runs on Ray: install it with "
                          "pip install 'engine[ray]'")
    from engine.context import DataContext
    from engine.runtime.ray_backend.cluster import RayCluster

    ship = os.environ.get("ENGINE_SHIP_PACKAGE", "1") != "0"
    cluster: Runtime = RayCluster(address, runtime_env=runtime_env, ship_engine=ship,
                                  default_credits=DataContext.get_current().task_output_credits,
                                  preload=_worker_preload())
    return cluster


def get_cluster() -> Runtime:
    """The running cluster, started implicitly on first use."""
    with _lock:
        cluster: Runtime = _cluster if _cluster is not None else \
            _start(None, None, None, True, None, None)
        return cluster


def resource_manager() -> ResourceManager:
    """The resource manager every execution on the running cluster shares."""
    global _resources
    cluster = get_cluster()
    with _lock:
        if _resources is None or _resources.runtime is not cluster:
            from engine.physical.resource_manager import ResourceManager

            _resources = ResourceManager(cluster)
        return _resources


def driver_tasks() -> DriverTasks | None:
    """The running embedded cluster wrapped to run the engine's own tasks on this
    process's threads (see ``engine.runtime.driver_tasks``); ``None`` on a Ray cluster."""
    global _driver_tasks
    cluster = get_cluster()
    from engine.runtime.cluster import LocalCluster

    if not isinstance(cluster, LocalCluster):
        return None
    with _lock:
        if _driver_tasks is None or _driver_tasks.runtime is not cluster:
            from engine.runtime.driver_tasks import DriverTasks

            _driver_tasks = DriverTasks(cluster)
        return _driver_tasks


def is_initialized() -> bool:
    """Whether the embedded cluster is running (``ray.is_initialized()``)."""
    return _cluster is not None


def shutdown() -> None:
    """Stop the cluster: workers, actors, zygote; remove the block store."""
    global _cluster, _zygote, _resources, _driver_tasks
    with _lock:
        cluster, _cluster = _cluster, None
        zygote, _zygote = _zygote, None
        _resources = _driver_tasks = None
    if cluster is not None:
        cluster.shutdown()
    if zygote is not None:
        zygote.close()


atexit.register(shutdown)
