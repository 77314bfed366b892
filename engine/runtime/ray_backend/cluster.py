"""``RayCluster``: the runtime contract on a Ray cluster (see the package docstring).

Tasks ask Ray for no CPU: the streaming executor already runs one task per CPU of the
cluster and lets tasks stopped on credits give their CPU to others, and a Ray task paused by
generator backpressure would hold a Ray CPU forever (stages below it could never be
scheduled: a deadlock). So the driver places each task itself, on the alive node with the
fewest running tasks per CPU, as a *soft* node affinity (Ray moves it if the node is gone).
Actors do ask for their ``num_cpus``/``num_gpus`` (and ``memory``, custom ``resources``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from engine.errors import (
    ActorDiedError,
    ObjectLostError,
    ResourceUnavailableError,
    WorkerCrashedError,
)
from engine.runtime.interfaces import (
    BlockRef,
    FailureEvent,
    FailureKind,
    NodeResources,
    StoreUsage,
)
from engine.runtime.ray_backend.connect import check_reachable, engine_runtime_env
from engine.runtime.ray_backend.errors import from_ray_error
from engine.runtime.ray_backend.handles import RayActorHandle, RayTaskHandle
from engine.runtime.ray_backend.handles_client import RayClientTaskHandle
from engine.runtime.ray_backend.refs import RayBlockRef
from engine.runtime.ray_backend.spilled import SpilledBytes
from engine.runtime.serialization import dumps_code
from engine.runtime.store_account import StoreAccount

logger = logging.getLogger(__name__)

_NODES_TTL_S = 5.0  # how long a view of the cluster's nodes is trusted (autoscaling)
# The share of the cluster's object store the executor may fill (Ray Data uses half too:
# the rest is for Ray's own copies, other jobs and fragmentation).
STORE_FRACTION = 0.5
_CLIENT_TRIES = 3  # connections through Ray Client tried (see __init__)


class RayCluster:
    """The engine's runtime on Ray Core.

    Args:
        address: Passed to ``ray.init``: ``"auto"``, ``"host:port"``, ``"ray://host:port"``
            (Ray Client: tasks hand over their outputs when they end, see
            :mod:`.handles_client`), or ``"local"`` to start a Ray instance on this machine.
        runtime_env: Ray's runtime environment for this job's workers.
        ship_engine: Add this ``engine`` package to ``runtime_env["py_modules"]``.
        default_credits: Outputs a task may run ahead of its consumer.
        preload: Modules each worker imports when ``wait_ready`` starts it.
        init_kwargs: More arguments of ``ray.init`` (``num_cpus`` for a local instance...).
    """

    def __init__(self, address: str, *, runtime_env: dict[str, Any] | None = None,
                 ship_engine: bool = False, default_credits: int = 2,
                 preload: tuple[str, ...] = (), **init_kwargs: Any) -> None:
        import ray

        self.address = address
        self.default_credits = default_credits
        # Ray Client cannot stream generator returns: its tasks return their outputs when
        # they end instead (see handles_client.py).
        self.client = address.startswith("ray://")
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            check_reachable(address)
            env = engine_runtime_env(runtime_env, ship_engine)
            try:
                for attempt in itertools.count(1):
                    try:
                        ray.init(address=None if address == "local" else address,
                                 runtime_env=env or None, log_to_driver=True, **init_kwargs)
                        break
                    except ConnectionAbortedError as exc:
                        # The Ray Client server starts a server process per client; one
                        # that fails to start is reported as this: ask again, twice.
                        if not self.client or attempt == _CLIENT_TRIES:
                            raise
                        logger.warning("Ray Client connection failed (%s); retrying",
                                       str(exc).splitlines()[-1])
            except ConnectionError as exc:
                raise ConnectionError(
                    f"engine.init(address={address!r}): no Ray cluster to connect to "
                    f"({exc}). Start one with `ray start --head`, set RAY_ADDRESS, or call "
                    "engine.init() for the embedded local cluster") from exc
        if not self.client and ray.util.client.ray.is_connected():
            self.client = True  # Ray was already connected through Ray Client
        with warnings.catch_warnings():  # "dynamic" is deprecated, but all Ray Client has
            warnings.simplefilter("ignore", DeprecationWarning)
            returns: Any = "dynamic" if self.client else "streaming"  # typed: no "dynamic"
            self._task_fn = ray.remote(num_returns=returns, num_cpus=0)(
                _run_task_fn(self.client))
        self._actor_cls = ray.remote(_actor_host_cls())
        self._keys = itertools.count(1)
        self._actor_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._fn_cache: dict[int, tuple[Any, bytes, list[Any]]] = {}
        self._actors: dict[str, RayActorHandle] = {}
        self._running: dict[str, int] = {}  # tasks placed per node id, still running
        self._nodes: list[tuple[str, float]] = []
        self._nodes_at = 0.0
        self._turn = 0
        self._listeners: list[Callable[[FailureEvent], None]] = []
        totals = ray.cluster_resources()
        self.num_cpus = 1
        self.num_gpus = 0
        self._refresh_totals(totals)
        self.account = StoreAccount(int(totals.get("object_store_memory", 0) * STORE_FRACTION))
        self._spilled = SpilledBytes(self.client)
        self._stopped = False
        self._preload = preload
        self._warmed = False
        self._shutdown_hooks: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ resources
    def _refresh_totals(self, totals: dict[str, float]) -> None:
        """The cluster's CPUs and GPUs as of now (an autoscaler changes them)."""
        self.num_cpus = max(1, int(totals.get("CPU", 1)))
        self.num_gpus = int(totals.get("GPU", 0))

    def cluster_resources(self) -> dict[str, float]:
        import ray

        totals = dict(ray.cluster_resources())
        for key in ("CPU", "GPU", "object_store_memory"):
            totals[key] = float(totals.get(key, 0.0))
        return totals

    def available_resources(self) -> dict[str, float]:
        """CPUs and GPUs not held by this driver's actors (tasks hold none: see above)."""
        totals = self.cluster_resources()
        with self._lock:
            actors = list(self._actors.values())
        return {"CPU": max(0.0, totals["CPU"] - sum(a.num_cpus for a in actors)),
                "GPU": totals["GPU"]}

    def nodes(self) -> list[NodeResources]:
        import ray

        available = ray.available_resources()  # cluster-wide only in Ray's public API
        out = []
        for node in ray.nodes():
            if node.get("Alive"):
                total = {k: float(v) for k, v in node.get("Resources", {}).items()
                         if k in ("CPU", "GPU", "memory", "object_store_memory")}
                out.append(NodeResources(node["NodeID"], total, {
                    k: min(v, float(available.get(k, 0.0))) for k, v in total.items()}))
        return out

    def _alive_nodes(self) -> list[tuple[str, float]]:
        import ray

        now = time.monotonic()
        if now - self._nodes_at > _NODES_TTL_S or not self._nodes:
            self._nodes = [(n["NodeID"], float(n.get("Resources", {}).get("CPU", 0)))
                           for n in ray.nodes()
                           if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
            self._nodes_at = now
            self._refresh_totals(ray.cluster_resources())
        return self._nodes

    def _place(self) -> str | None:
        """The node for the next task: fewest running tasks per CPU (``None``: Ray picks)."""
        with self._lock:
            nodes = self._alive_nodes()
            if not nodes:
                return None
            # Ties go round-robin, so tasks that run one after another still spread.
            self._turn += 1
            order = {n[0]: (i - self._turn) % len(nodes) for i, n in enumerate(nodes)}
            node_id, _ = min(nodes, key=lambda n: ((self._running.get(n[0], 0) + 1) / n[1],
                                                   order[n[0]]))
            self._running[node_id] = self._running.get(node_id, 0) + 1
            return node_id

    def _unplace(self, node_id: str | None) -> None:
        if node_id is not None:
            with self._lock:
                self._running[node_id] = max(0, self._running.get(node_id, 0) - 1)

    # ------------------------------------------------------------------ tasks
    def _code(self, fn: Callable[..., Any]) -> tuple[bytes, list[Any]]:
        """``fn``'s digest and a box holding its pickled code in the store (once per fn)."""
        import ray

        with self._lock:
            cached = self._fn_cache.get(id(fn))
            if cached is not None and cached[0] is fn:
                return cached[1], cached[2]
        data = dumps_code(fn)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        box = [ray.put(data)]  # in a list: Ray resolves top-level refs, not nested ones
        with self._lock:
            if len(self._fn_cache) > 256:
                self._fn_cache.clear()
            self._fn_cache[id(fn)] = (fn, digest, box)
        return digest, box

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), *, name: str = "",
               max_retries: int = 3, credits: int | None = None,
               notify: Callable[[], None] | None = None,
               local_ok: bool = False) -> RayTaskHandle:
        """Run ``fn(*args)`` as a Ray task streaming its outputs into the handle
        (``local_ok`` is ignored: Ray's workers are up before any task)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._check_running()
        digest, box = self._code(fn)
        credits = credits or self.default_credits
        node_id = self._place()
        options: dict[str, Any] = {
            "max_retries": max_retries, "retry_exceptions": False,
            "name": name or getattr(fn, "__name__", "task")}
        if not self.client:
            options["_generator_backpressure_num_objects"] = 2 * credits + 1
        if node_id is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=True)
        try:
            gen = self._task_fn.options(**options).remote(digest, box, tuple(args))
        except Exception:
            self._unplace(node_id)
            raise
        return self._handle_cls(next(self._keys), options["name"], gen, self, notify, credits,
                                on_done=lambda: self._unplace(node_id))

    def submit_actor_call(self, actor: Any, fn: Callable[..., Any], args: tuple[Any, ...], *,
                          name: str, credits: int | None,
                          notify: Callable[[], None] | None,
                          actor_error: Callable[[], BaseException | None] | None = None,
                          ) -> RayTaskHandle:
        self._check_running()
        digest, box = self._code(fn)
        credits = credits or self.default_credits
        if self.client:
            with warnings.catch_warnings():  # see __init__
                warnings.simplefilter("ignore", DeprecationWarning)
                gen = actor.call_listed.options(num_returns="dynamic").remote(
                    digest, box, tuple(args))
        else:
            gen = actor.call.options(num_returns="streaming",
                                     _generator_backpressure_num_objects=2 * credits + 1) \
                .remote(digest, box, tuple(args))
        return self._handle_cls(next(self._keys), name, gen, self, notify, credits,
                                actor_error=actor_error)

    @property
    def _handle_cls(self) -> type[RayTaskHandle]:
        return RayClientTaskHandle if self.client else RayTaskHandle

    # ------------------------------------------------------------------ actors
    def create_actor(self, cls: type, args: tuple[Any, ...] = (),
                     kwargs: dict[str, Any] | None = None, *, num_cpus: float = 1,
                     num_gpus: float = 0, max_restarts: int = 3,
                     env: dict[str, str] | None = None, memory: float = 0,
                     resources: dict[str, float] | None = None) -> RayActorHandle:
        """Start a Ray actor holding ``cls(*args, **kwargs)``; its calls run in order."""
        self._check_running()
        if num_gpus > self.num_gpus:
            raise ResourceUnavailableError(
                f"an actor asks for num_gpus={num_gpus} but the Ray cluster has "
                f"{self.num_gpus} GPUs")
        options: dict[str, Any] = {
            "num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": max_restarts,
            "max_task_retries": max_restarts, "max_concurrency": 1}
        if memory:
            options["memory"] = memory
        if resources:
            options["resources"] = dict(resources)
        if env:
            options["runtime_env"] = {"env_vars": dict(env)}
        actor = self._actor_cls.options(**options).remote(dumps_code((cls, args, kwargs or {})))
        handle = RayActorHandle(f"a{next(self._actor_ids)}", actor, self, num_cpus,
                                max_restarts)
        with self._lock:
            self._actors[handle.actor_id] = handle
        return handle

    def forget_actor(self, handle: RayActorHandle) -> None:
        with self._lock:
            self._actors.pop(handle.actor_id, None)

    # ------------------------------------------------------------------ blocks
    def put(self, table: pa.Table) -> BlockRef:
        import ray

        return RayBlockRef(ray.put(table), table.num_rows, table.nbytes, schema=table.schema,
                           account=self.account)

    def get(self, refs: list[BlockRef]) -> list[pa.Table]:
        import ray

        object_refs = [r.object_ref for r in refs]  # type: ignore[attr-defined]
        try:
            return list(ray.get(object_refs))
        except ray.exceptions.RayError as exc:
            raise from_ray_error(exc, "reading blocks") from exc

    def free(self, refs: list[BlockRef]) -> None:
        """Stop counting the blocks; Ray frees each when its last reference goes."""
        for ref in refs:
            if isinstance(ref, RayBlockRef):
                ref.release()

    def keep(self, ref: BlockRef, owner: str | None = None) -> None:
        """Nothing to do: Ray's object store spills kept objects to disk by itself."""

    def spill_to(self, target_bytes: int) -> int:
        """Ray's object store decides what to spill and when: nothing is moved here."""
        return 0

    def take_spilled_bytes(self, owner: str) -> int:
        """Ray does not say which objects of an owner it spilled."""
        return 0

    def store_usage(self) -> StoreUsage:
        """This driver's blocks against its budget; spilled bytes are Ray's, cluster-wide
        (other jobs' spills count too) and up to a second stale (see :mod:`.spilled`)."""
        account = self.account
        return StoreUsage(account.used_bytes, account.budget_bytes, account.peak_bytes,
                          self._spilled.get())

    # ------------------------------------------------------------------ lifecycle
    def add_failure_listener(self, listener: Callable[[FailureEvent], None]) -> \
            Callable[[], None]:
        """Call ``listener`` for each system failure a task or actor call ended with. Ray
        retries tasks and restarts actors without telling the driver, so recovered
        failures (``task_retried``, ``actor_restarted``) are not reported."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)
        return remove

    def report_failure(self, error: BaseException, what: str) -> None:
        """Tell the failure listeners that ``what`` ended with the system error ``error``."""
        kind: FailureKind = (
            "worker_died" if isinstance(error, WorkerCrashedError) else
            "actor_died" if isinstance(error, ActorDiedError) else
            "block_lost" if isinstance(error, ObjectLostError) else "runtime_failed")
        event = FailureEvent(kind, f"{what}: {error}")
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not break a handle's thread
                logger.exception("a failure listener raised")

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Start a worker per CPU of the cluster (each importing ``preload``) and wait for
        them, as ``ray.init`` and the local cluster do: the first pipeline does not pay
        for worker start-up. Return whether they all started within ``timeout``."""

        if self._warmed:
            return True
        self._warmed = True
        # The real task path (a block argument in, a block out) with a function that also
        # imports ``preload``: each worker loads the task wrapper, this driver's code and
        # its object-store client, as a first pipeline would.
        warm = functools.partial(_import_modules, self._preload)
        arg = self.put(pa.table({"x": [0]}))
        handles = [self.submit(warm, (arg,), name="warm-up", credits=1)
                   for _ in range(self.num_cpus)]
        deadline = time.monotonic() + timeout
        done = True
        for handle in handles:
            while not handle.wait(timeout=0.05):
                handle.take()
                if time.monotonic() > deadline:
                    done = False
                    break
            handle.take()
        return done and all(h.error is None for h in handles)

    def add_shutdown_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` at shutdown, before Ray is disconnected (threads of the caller
        that use Ray must stop first: a Ray call after it would start a new Ray)."""
        with self._lock:
            self._shutdown_hooks.append(hook)

    def _check_running(self) -> None:
        if self._stopped:
            raise RuntimeError("the engine's Ray runtime is shut down")

    def shutdown(self) -> None:
        """Kill this driver's actors; disconnect from Ray (stopping it if we started it)."""
        import ray

        if self._stopped:
            return
        self._stopped = True
        with self._lock:
            actors = list(self._actors.values())
            hooks, self._shutdown_hooks = self._shutdown_hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:
                logger.exception("a shutdown hook of the Ray runtime raised")
        for actor in actors:
            actor.kill()
        self._spilled.stop()
        if self._owns_ray:
            ray.shutdown()


def _run_task_fn(client: bool) -> Any:
    from engine.runtime.ray_backend.remote import run_task, run_task_listed

    return run_task_listed if client else run_task


def _actor_host_cls() -> Any:
    from engine.runtime.ray_backend.remote import ActorHost

    return ActorHost


def _import_modules(names: tuple[str, ...], table: pa.Table) -> Iterator[pa.Table]:
    import importlib

    # Held a moment, so that the warm-up tasks overlap and each gets a worker of its own.
    started = time.monotonic()
    for name in names:
        importlib.import_module(name)
    time.sleep(max(0.0, 0.2 - (time.monotonic() - started)))
    yield table
