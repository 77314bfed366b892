"""The embedded local cluster: a zygote, worker processes, a ZeroMQ ROUTER and the store.

One IO thread owns the ROUTER socket and all scheduling state; other threads talk to it
through a command queue and a wake-up pipe (ZeroMQ sockets are not thread-safe). Workers are
forked by the zygote, so they are not the driver's children: their death is seen through
``pidfd`` descriptors polled next to the socket. A dead worker's tasks are retried (a new
attempt id; outputs of the dead attempt that arrive late are dropped, and outputs a retry
re-produces that were already delivered are skipped, so nothing is counted twice).

Workers connect over an ``ipc://`` socket in the session's private (0700) store directory;
there is no TCP fallback. Each worker's first message carries the session's secret (handed to
it through the zygote's private pipe); messages from a peer that has not shown it are dropped
unread, and block ids in messages are checked before they name a file.

No call waits forever. The IO thread only moves messages: forking a worker (a pipe to the
zygote, which may be dead) and spilling (a copy to a disk that may be full) run on a
:class:`~engine.runtime.background.Background` thread. A zygote found dead is restarted. If
the IO thread itself fails, every pending task and actor fails with ``RuntimeFailedError``
naming the cause, and so does every later call. Failures of the system reported by workers
(a lost input block, a failed block write) are retried like a worker's death, within
``max_retries``, and end as ``ObjectLostError``/``StoreWriteError``, never as the UDF's error.
A lost block that a task made is first rebuilt by re-running that task (see
:mod:`engine.runtime.lineage`); the tasks (or driver reads) that needed it wait, then go on.

State is bounded: dead actors are dropped (with their pickled class and arguments), each
worker's function cache is an LRU mirrored here, and messages about finished tasks leave
nothing behind.

This module knows nothing of datasets: it runs functions on blocks.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import hmac
import itertools
import logging
import os
import pickle
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import pyarrow as pa
import zmq

from engine.errors import (
    ActorDiedError,
    ObjectLostError,
    ResourceUnavailableError,
    RuntimeFailedError,
    StoreWriteError,
    SystemException,
    WorkerCrashedError,
)
from engine.runtime import protocol as p
from engine.runtime.allocator import use_on_demand_pool_in_driver
from engine.runtime.background import Background
from engine.runtime.block_store import BlockStore, is_valid_block_id, serialize_table
from engine.runtime.handles import ActorHandle, TaskHandle
from engine.runtime.interfaces import (
    BlockRef,
    FailureEvent,
    FailureKind,
    NodeResources,
    RemoteError,
    StoreUsage,
    ValueOutput,
)
from engine.runtime.lineage import BlockWaiter, Lineage, Producer
from engine.runtime.refs import LocalBlockRef
from engine.runtime.serialization import dumps_code
from engine.runtime.zygote import Zygote

logger = logging.getLogger(__name__)

_IPC_PATH_MAX = 107  # bytes in a unix socket's sun_path, less the terminating NUL
_ZYGOTE_RESTARTS = 3  # zygote restarts with no successful fork between before giving up
_MAX_REBUILDS = 3  # times one task may wait for lost inputs to be rebuilt


@dataclass
class _Task:
    key: int
    name: str
    digest: bytes
    fn_bytes: bytes
    args_bytes: bytes
    handle: TaskHandle
    max_retries: int
    credits: int
    actor_id: str | None = None
    actor: ActorHandle | None = None  # its error answers calls made after the actor is gone
    attempt: int = 0
    accepted: int = 0  # outputs delivered to the handle, across attempts
    untaken: int = 0  # delivered outputs the consumer has not taken: the worker's debt
    worker: str | None = None
    cancelled: bool = False
    rebuilds: int = 0  # times it waited for a lost input block to be rebuilt
    local_ok: bool = False  # holds no user code: the driver lane may run it

    @property
    def waiting_for_credit(self) -> bool:
        return self.untaken >= self.credits


@dataclass
class _Worker:
    worker_id: str
    pid: int
    pidfd: int
    actor_id: str | None = None
    ready: bool = False
    # The worker's function cache as the driver knows it (same LRU policy and size).
    fns: collections.OrderedDict[bytes, None] = field(default_factory=collections.OrderedDict)
    tasks: list[int] = field(default_factory=list)
    retiring: bool = False  # an extra worker sent home: do not replace it
    authenticated: bool = False  # it sent the session's secret; until then, read nothing
    in_driver: bool = False  # the driver lane (a thread of this process, not a worker)
    # It said READY before the zygote's reply that forked it came: it gets work only once
    # that reply does (a worker whose fork failed is sent home, and must not have run any).
    ready_unconfirmed: bool = False


@dataclass
class _Actor:
    actor_id: str
    init_bytes: bytes
    handle: ActorHandle
    max_restarts: int
    env: dict[str, str]
    gpu_ids: list[int]
    num_cpus: float
    worker: str | None = None
    queue: collections.deque[int] = field(default_factory=collections.deque)
    inflight: list[int] = field(default_factory=list)
    dead: bool = False


def detect_gpus() -> int:
    """Count NVIDIA GPUs without starting CUDA (respects CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"])
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


class LocalCluster:
    """A task/actor runtime on this machine.

    Args:
        num_cpus: Task worker processes (default: the CPUs of this machine).
        num_gpus: GPUs to hand to actors (default: detected).
        memory_budget: Bytes the shared-memory store may hold before kept blocks spill.
        inline_max_bytes: Blocks up to this size travel inside messages.
        zygote: A zygote started earlier (to overlap its start with the driver's imports).
        max_extra_workers: Workers beyond ``num_cpus`` started for tasks that wait for
            their outputs to be taken (default: four per CPU); a cap, so a driver running
            many stalled pipelines cannot fork without bound.
        spill_root: Where the session's private spill directory is made (default: TMPDIR).
        driver_lane: Run tasks that hold no user code (``submit(local_ok=True)``) on a
            thread of this process until every worker process is ready (see
            ``engine.runtime.driver_lane``).

    The worker processes start in the background: construction returns at once, and
    :meth:`wait_ready` waits for them.
    """

    def __init__(self, num_cpus: int | None = None, num_gpus: int | None = None,
                 memory_budget: int = 8 << 30, inline_max_bytes: int = 64 * 1024,
                 zygote: Zygote | None = None, default_credits: int = 2,
                 max_extra_workers: int | None = None, spill_root: str | None = None,
                 driver_lane: bool = True) -> None:
        self.num_cpus = int(num_cpus or os.cpu_count() or 1)
        self.max_extra_workers = 4 * self.num_cpus if max_extra_workers is None else \
            max_extra_workers
        if self.num_cpus < 1:
            raise ValueError(f"num_cpus must be at least 1, got {num_cpus}")
        self.num_gpus = detect_gpus() if num_gpus is None else int(num_gpus)
        self.inline_max_bytes = inline_max_bytes
        self.default_credits = default_credits
        self.store = BlockStore(memory_budget, spill_root=spill_root)
        socket_path = os.path.join(self.store.dir, "r")
        if len(os.fsencode(socket_path)) > _IPC_PATH_MAX:
            self.store.close()
            if zygote is not None:
                zygote.close()
            raise RuntimeError(
                f"the engine's socket path {socket_path!r} is longer than the "
                f"{_IPC_PATH_MAX} bytes a unix socket allows; set TMPDIR to a shorter "
                "directory (the engine never falls back to an unauthenticated TCP socket)")
        self._secret = secrets.token_bytes(32)  # shown by each worker in its first message
        self._zygote = zygote or Zygote()
        self._workers_wanted = False  # a task, actor or wait_ready() asked for a worker
        use_on_demand_pool_in_driver()  # the driver lane reads here: see allocator
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._router.setsockopt(zmq.SNDHWM, 0)
        self._router.setsockopt(zmq.RCVHWM, 0)
        self.address = f"ipc://{socket_path}"
        self._router.bind(self.address)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._commands: collections.deque[tuple[Any, ...]] = collections.deque()
        self._workers: dict[str, _Worker] = {}
        self._by_fd: dict[int, str] = {}
        self._idle: collections.deque[str] = collections.deque()
        self._queue: collections.deque[int] = collections.deque()
        self._tasks: dict[int, _Task] = {}
        self._actors: dict[str, _Actor] = {}
        self._free_gpus = list(range(self.num_gpus))
        self._keys = itertools.count(1)
        self._worker_ids = itertools.count(1)
        self._fn_cache: dict[int, tuple[Any, bytes, bytes]] = {}
        self._fn_lock = threading.Lock()
        self._stopping = False
        self._failure_listeners: list[Callable[[FailureEvent], None]] = []
        self._failed: RuntimeFailedError | None = None
        self._spill_scheduled = False
        self._fork_failures = 0  # in a row
        self._lineage = Lineage(self.store.holds)
        self.store.recover = self._recover_block
        self.blocks_rebuilt = 0
        self.workers_started = 0
        self.tasks_retried = 0
        self.zygote_restarts = 0
        self.shutdown_kills = 0  # workers that ignored SHUTDOWN (busy) and were SIGKILLed
        self.messages_rejected = 0  # from unknown or unauthenticated peers, dropped unread
        self._background = Background("engine-runtime-background", self._on_background_error)
        for _ in range(self.num_cpus):  # forked on the background thread: the zygote may
            self._start_worker(None, {})  # still be importing
        self._lane: threading.Thread | None = None
        self._pipe_lock = threading.Lock()  # the lane's exit vs. shutdown closing the pipe
        self._pipe_closed = False
        lane_id = f"w{next(self._worker_ids)}" if driver_lane else None
        self._lane_id = lane_id  # None once it is sent home
        if lane_id is not None:
            self._workers[lane_id] = _Worker(lane_id, os.getpid(), -1, in_driver=True)
        self._thread = threading.Thread(target=self._loop, name="engine-runtime", daemon=True)
        self._thread.start()
        if lane_id is not None:
            from engine.runtime.driver_lane import start_driver_lane

            self._lane_stop_r, self._lane_stop_w = os.pipe()
            self._lane = start_driver_lane(
                lane_id, self.address, self.store.dir, self.store.spill_dir,
                self.inline_max_bytes, self._secret, self.store.budget_bytes,
                self._lane_stop_r, on_exit=lambda: self._lane_exited(lane_id))

    # ================================================================== public contract
    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), *, name: str = "",
               max_retries: int = 3, credits: int | None = None,
               notify: Callable[[], None] | None = None, local_ok: bool = False) -> TaskHandle:
        """Run ``fn(*args)`` on a task worker; its outputs stream into the returned handle.

        ``BlockRef`` arguments (or lists of them) arrive as zero-copy tables. Retries
        (``max_retries``) cover system failures only: a worker that died mid-task.
        """
        return self._submit(fn, args, name=name, max_retries=max_retries, credits=credits,
                            notify=notify, actor_id=None, local_ok=local_ok)

    def create_actor(self, cls: type, args: tuple[Any, ...] = (),
                     kwargs: dict[str, Any] | None = None, *, num_cpus: float = 1,
                     num_gpus: float = 0, max_restarts: int = 3,
                     env: dict[str, str] | None = None, memory: float = 0,
                     resources: dict[str, float] | None = None) -> ActorHandle:
        """Start a dedicated process holding ``cls(*args, **kwargs)``; calls run in order.

        ``memory`` is checked against the machine when the plan is built; this machine has
        no custom ``resources``, so asking for any is an error, never an endless wait."""
        wanted = sorted(k for k, v in (resources or {}).items() if v and v > 0)
        if wanted:
            raise ResourceUnavailableError(
                f"an actor asks for custom resources {wanted}, which the embedded cluster "
                f"does not have (they exist on a Ray cluster: engine.init(address=...))")
        gpus = int(num_gpus) if num_gpus >= 1 else (1 if num_gpus > 0 else 0)
        with self._fn_lock:
            if gpus > len(self._free_gpus):
                raise ResourceUnavailableError(
                    f"an actor asks for num_gpus={num_gpus} but the cluster has "
                    f"{len(self._free_gpus)} free of {self.num_gpus} GPUs")
            gpu_ids = [self._free_gpus.pop(0) for _ in range(gpus)]
        actor_env = dict(env or {})
        if gpus:
            actor_env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
        self._want_workers()
        actor_id = f"a{next(self._worker_ids)}"
        handle = ActorHandle(actor_id, self)
        state = _Actor(actor_id, dumps_code((cls, args, kwargs or {})), handle,
                       max_restarts, actor_env, gpu_ids, num_cpus)
        self._command(("actor", state))
        return handle

    def put(self, table: pa.Table) -> BlockRef:
        """Store a block from the driver and return its reference."""
        schema = table.schema.serialize().to_pybytes()
        if table.nbytes <= self.inline_max_bytes:
            return LocalBlockRef("i", table.num_rows, table.nbytes, inline=serialize_table(table),
                            schema_bytes=schema)
        try:
            block_id, size = self.store.put(table)
        except OSError as exc:
            raise StoreWriteError(f"writing a block of {table.nbytes} bytes to the store "
                                  f"failed: {type(exc).__name__}: {exc}") from exc
        return LocalBlockRef(block_id, table.num_rows, size, path=self.store.block_path(block_id),
                        schema_bytes=schema, store=self.store, spill_dir=self.store.spill_dir)

    def get(self, refs: list[BlockRef]) -> list[pa.Table]:
        """Read blocks (zero-copy memory maps)."""
        return [ref.get() for ref in refs]

    def free(self, refs: list[BlockRef]) -> None:
        """Delete blocks' files now; their refs must not be read afterwards."""
        for ref in refs:
            if isinstance(ref, LocalBlockRef):
                ref.release()

    def keep(self, ref: BlockRef, owner: str | None = None) -> None:
        """Let a block that must be kept spill to disk past the budget."""
        if ref.in_store:
            self.store.mark_spillable(ref.block_id, owner)

    def spill_to(self, target_bytes: int) -> int:
        return self.store.spill_until_under_budget(target_bytes)

    def take_spilled_bytes(self, owner: str) -> int:
        return self.store.take_spilled_bytes(owner)

    def store_usage(self) -> StoreUsage:
        store = self.store
        return StoreUsage(store.used_bytes, store.budget_bytes, store.peak_bytes,
                          store.spilled_bytes_total)

    def cluster_resources(self) -> dict[str, float]:
        """Totals of this node: CPU, GPU and store memory."""
        return {"CPU": float(self.num_cpus), "GPU": float(self.num_gpus),
                "object_store_memory": float(self.store.budget_bytes)}

    def available_resources(self) -> dict[str, float]:
        with self._fn_lock:
            actor_cpus = sum(a.num_cpus for a in self._actors.values() if not a.dead)
            return {"CPU": max(0.0, self.num_cpus - actor_cpus),
                    "GPU": float(len(self._free_gpus))}

    def nodes(self) -> list[NodeResources]:
        """One node: this machine."""
        return [NodeResources("local", self.cluster_resources(), self.available_resources())]

    def add_failure_listener(self, listener: Callable[[FailureEvent], None]) -> \
            Callable[[], None]:
        with self._fn_lock:
            self._failure_listeners.append(listener)

        def remove() -> None:
            with self._fn_lock, contextlib.suppress(ValueError):
                self._failure_listeners.remove(listener)
        return remove

    def _report_failure(self, kind: FailureKind, detail: str) -> None:
        event = FailureEvent(kind, detail)
        with self._fn_lock:
            listeners = list(self._failure_listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not break the runtime's thread
                logger.exception("a failure listener raised")

    def driver_busy(self, busy: bool) -> None:
        """This process's own threads are (``busy``) or are no longer running engine tasks
        that need no worker (``engine.runtime.driver_tasks``): while nothing has asked for a
        worker yet, a zygote still importing waits meanwhile (within a bound, see
        ``Zygote.pause``), so its start takes no CPU from them."""
        if busy and not self._workers_wanted:
            self._zygote.pause()
        elif not busy:
            self._zygote.resume()

    def _want_workers(self) -> None:
        if not self._workers_wanted:
            self._workers_wanted = True
            self._zygote.resume()

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block until every task worker has started (forked, connected, said READY);
        return whether they all did within ``timeout`` seconds."""
        self._want_workers()
        deadline = time.monotonic() + timeout
        while True:
            workers = list(self._workers.values())
            if sum(1 for w in workers if w.actor_id is None and w.ready and not w.in_driver) \
                    >= self.num_cpus:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def worker_pids(self) -> list[int]:
        return [w.pid for w in list(self._workers.values()) if w.pid > 0 and not w.in_driver]

    def zygote_pid(self) -> int:
        """The pid of the process that forks workers (restarted if found dead)."""
        return int(self._zygote.proc.pid)

    def state_sizes(self) -> dict[str, int]:
        """Sizes of the runtime's bookkeeping (for leak checks: none may grow unboundedly)."""
        workers = list(self._workers.values())
        return {"tasks": len(self._tasks), "actors": len(self._actors),
                "workers": len(workers), "queued": len(self._queue),
                "worker_fns": sum(len(w.fns) for w in workers),
                "fn_cache": len(self._fn_cache), "commands": len(self._commands),
                "lineage": len(self._lineage), "rebuilds": len(self._lineage.rebuilds)}

    def shutdown(self) -> None:
        """Stop every worker and actor, the zygote and the IO thread; remove the store."""
        if self._stopping:
            return
        self._background.close()  # forks in flight finish first: their workers get stopped
        self._command(("stop",))
        self._thread.join(timeout=10)
        deadline = time.monotonic() + 3
        for w in list(self._workers.values()):
            if w.pidfd < 0:  # never forked, or the driver lane
                continue
            remaining = max(0.0, deadline - time.monotonic())
            if not _wait_fd(w.pidfd, remaining):
                self.shutdown_kills += 1
                with contextlib.suppress(OSError):  # exited, or a /dev/null stand-in
                    signal.pidfd_send_signal(w.pidfd, signal.SIGKILL)  # no pid-reuse risk
                _wait_fd(w.pidfd, 2)
            os.close(w.pidfd)
        if self._lane is not None:  # SHUTDOWN may not reach it (not connected yet): the pipe
            os.write(self._lane_stop_w, b"x")
            self._lane.join(timeout=10)
            if not self._lane.is_alive():  # else it may still poll them: leave them open
                os.close(self._lane_stop_r)
                os.close(self._lane_stop_w)
        self._workers.clear()
        self._zygote.close()
        self._router.close(0)
        self._ctx.term()
        with self._pipe_lock:
            self._pipe_closed = True
            os.close(self._wake_r)
            os.close(self._wake_w)
        self.store.close()

    # ================================================================== internal: callers
    def _command(self, cmd: tuple[Any, ...]) -> None:
        self._commands.append(cmd)
        if self._failed is not None:  # nobody reads the queue any more: answer it here
            self._fail_commands(self._failed)
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def _lane_exited(self, wid: str) -> None:
        """(The driver lane's thread, as it ends.)"""
        with self._pipe_lock:
            if not self._pipe_closed:
                self._command(("lane_gone", wid))

    def _pickle_fn(self, fn: Callable[..., Any]) -> tuple[bytes, bytes]:
        with self._fn_lock:
            cached = self._fn_cache.get(id(fn))
            if cached is not None and cached[0] is fn:
                return cached[1], cached[2]
        data = dumps_code(fn)  # keeps file names: UDF tracebacks quote their source
        digest = hashlib.blake2b(data, digest_size=16).digest()
        with self._fn_lock:
            if len(self._fn_cache) > 256:
                self._fn_cache.clear()
            self._fn_cache[id(fn)] = (fn, digest, data)
        return digest, data

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], *, name: str,
                max_retries: int, credits: int | None, notify: Callable[[], None] | None,
                actor_id: str | None, actor: ActorHandle | None = None,
                local_ok: bool = False) -> TaskHandle:
        if self._failed is not None:
            raise self._failed
        if self._stopping:
            raise RuntimeError("the cluster is shut down")
        self._want_workers()
        digest, fn_bytes = self._pickle_fn(fn)
        args_bytes = cloudpickle.dumps(tuple(args), protocol=pickle.HIGHEST_PROTOCOL)
        key = next(self._keys)
        credits = credits or self.default_credits
        handle = TaskHandle(key, name or getattr(fn, "__name__", "task"), self, notify, credits)
        handle.arg_refs = [a for a in args if isinstance(a, (BlockRef, list))]
        task = _Task(key, handle.name, digest, fn_bytes, args_bytes, handle, max_retries,
                     credits, actor_id, actor, local_ok=local_ok)
        self._command(("submit", task))
        return handle

    def _grant_credits(self, key: int, n: int) -> None:
        self._command(("credit", key, n))

    def _cancel(self, key: int) -> None:
        self._command(("cancel", key))

    def _kill_actor(self, actor_id: str) -> None:
        self._command(("kill_actor", actor_id))

    def _actor_alive(self, actor_id: str) -> bool:
        a = self._actors.get(actor_id)
        return a is not None and not a.dead

    # ================================================================== failure
    def _on_background_error(self, exc: BaseException) -> None:
        self._command(("fatal", exc))

    def _fail_runtime(self, cause: BaseException) -> None:
        """The IO thread cannot go on: fail every pending call and actor, and every later
        call, with one ``RuntimeFailedError`` naming the cause."""
        logger.error("the engine's runtime failed: %s: %s", type(cause).__name__, cause)
        error = RuntimeFailedError(f"the engine's runtime failed and can run nothing more: "
                                   f"{type(cause).__name__}: {cause}")
        error.__cause__ = cause
        self._failed = error
        for task in list(self._tasks.values()):
            task.handle._finish(error)
        self._tasks.clear()
        self._queue.clear()
        for actor in list(self._actors.values()):
            actor.dead = True
            actor.handle.error = error
            actor.handle.ready.set()
        self._fail_commands(error)
        self._lineage.fail_all(str(error))
        with contextlib.suppress(Exception):  # best effort: shutdown() kills what remains
            self._stop_workers()

    def _fail_commands(self, error: RuntimeFailedError) -> None:
        while True:
            try:
                cmd = self._commands.popleft()
            except IndexError:
                return
            if cmd[0] == "submit":
                cmd[1].handle._finish(error)
            elif cmd[0] == "actor":
                cmd[1].handle.error = error
                cmd[1].handle.ready.set()
            elif cmd[0] == "recover":
                cmd[2].resolve(False, str(error))
            elif cmd[0] == "forked":  # nobody will ever talk to it
                with contextlib.suppress(ProcessLookupError):
                    os.kill(cmd[2], signal.SIGKILL)

    # ================================================================== IO thread
    def _loop(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # every waiting caller hears of it
            self._fail_runtime(exc)

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        registered: set[int] = set()
        while True:
            for fd in set(self._by_fd) - registered:
                poller.register(fd, zmq.POLLIN)
                registered.add(fd)
            for fd in registered - set(self._by_fd):
                poller.unregister(fd)
                registered.discard(fd)
            events = dict(poller.poll(1000))
            if self._wake_r in events:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            while self._commands:
                if self._handle_command(self._commands.popleft()):
                    self._stop_workers()
                    return
            if self._router in events:
                self._drain_router()
            for fd in list(events):
                wid = self._by_fd.get(fd)
                if wid is not None:
                    self._on_worker_death(wid)
            self._dispatch()

    def _drain_router(self) -> None:
        while True:
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            wid = frames[0].bytes.decode(errors="replace")
            worker = self._workers.get(wid)
            if worker is None:  # declared dead (late messages are dropped), a stranger, or a
                self.messages_rejected += 1  # process a dying zygote forked unseen
                self._send(wid, p.encode_header(p.SHUTDOWN))
                continue
            if not worker.authenticated:
                if not self._authenticate(worker, frames):
                    continue
                frames = [frames[0], *frames[2:]]
            header: tuple[Any, ...] = ()
            try:
                header = p.decode_header(frames[1].buffer)
                self._on_message(worker, header, frames[2:])
            except Exception as exc:  # one bad message must not kill the thread
                logger.exception("the runtime could not handle a message from worker %s", wid)
                task = self._tasks.get(header[1]) if len(header) > 1 and \
                    isinstance(header[1], int) else None
                if task is not None:  # its caller must hear of it, not wait forever
                    self._fail_running(task, RuntimeFailedError(
                        f"the runtime could not handle a message of task {task.name}: "
                        f"{type(exc).__name__}: {exc}"))

    def _authenticate(self, worker: _Worker, frames: list[Any]) -> bool:
        """A worker's first message starts with the session's secret; anything else from
        that identity is dropped without being unpickled."""
        if len(frames) >= 3 and hmac.compare_digest(frames[1].bytes, self._secret):
            worker.authenticated = True
            return True
        logger.warning("dropped a message from unauthenticated peer %r", worker.worker_id)
        self.messages_rejected += 1
        return False

    def _handle_command(self, cmd: tuple[Any, ...]) -> bool:
        kind = cmd[0]
        if kind == "submit":
            task: _Task = cmd[1]
            self._tasks[task.key] = task
            if task.actor_id is None:
                self._queue.append(task.key)
            else:
                owner = self._actors.get(task.actor_id)
                if owner is None or owner.dead:
                    err = task.actor.error if task.actor is not None else None
                    task.handle._finish(err or ActorDiedError(f"actor {task.actor_id} is dead"))
                    self._tasks.pop(task.key, None)
                else:
                    owner.queue.append(task.key)
        elif kind == "credit":
            running = self._tasks.get(cmd[1])
            if running is not None:
                running.untaken = max(0, running.untaken - cmd[2])
                if running.worker is not None:
                    self._send(running.worker,
                               p.encode_header(p.CREDIT, running.key, cmd[2]))
        elif kind == "cancel":
            self._cancel_task(cmd[1])
        elif kind == "actor":
            new_actor: _Actor = cmd[1]
            with self._fn_lock:  # available_resources() reads the actors from other threads
                self._actors[new_actor.actor_id] = new_actor
            self._start_worker(new_actor.actor_id, new_actor.env)
        elif kind == "kill_actor":
            self._retire_actor(cmd[1], ActorDiedError(f"actor {cmd[1]} was killed"))
        elif kind == "forked":
            self._on_forked(cmd[1], cmd[2])
        elif kind == "fork_failed":
            self._on_fork_failed(cmd[1])
        elif kind == "lane_gone":
            lane = self._workers.get(cmd[1])
            if lane is not None:  # it failed: what it ran goes to the workers
                lane.retiring = True
                self._on_worker_death(cmd[1])
        elif kind == "spilled":
            self._spill_scheduled = False
            if cmd[1]:  # progress: go on; a failed pass waits for the next new block
                self._maybe_spill()
        elif kind == "recover":
            if not self._wait_for_rebuild(cmd[1], waiter=cmd[2]):
                cmd[2].resolve(False, "no task that made it is known (a block put by the driver, "
                               "or the output of an actor)")
        elif kind == "rebuilt":
            self._end_rebuild(cmd[1], cmd[2])
        elif kind == "fatal":
            raise cmd[1]
        elif kind == "stop":
            self._stopping = True
            return True
        return False

    def _cancel_task(self, key: int) -> None:
        task = self._tasks.get(key)
        if task is None:
            return
        task.cancelled = True
        if task.worker is None:
            self._tasks.pop(key, None)
            if key in self._queue:
                self._queue.remove(key)
            if task.actor_id is not None:
                actor = self._actors.get(task.actor_id)
                if actor is not None and key in actor.queue:
                    actor.queue.remove(key)
            task.handle._finish()
        else:
            self._send(task.worker, p.encode_header(p.CANCEL, key))

    # -- workers -------------------------------------------------------------------------
    def _start_worker(self, actor_id: str | None, env: dict[str, str],
                      now: bool = False) -> None:
        """Ask the zygote for a worker: on the background thread (a pipe write can block)
        unless ``now`` (only before the IO thread starts).

        The worker is known at once (pid 0, no pidfd) so that its READY, which may arrive
        before the fork is confirmed here, is not dropped. A worker id is never asked for
        twice: a zygote that dies during a request may have forked a process we cannot
        watch, and that one must not share an identity with its replacement."""
        wid = f"w{next(self._worker_ids)}"
        request = {
            "worker_id": wid, "address": self.address, "driver_pid": os.getpid(),
            "store_dir": self.store.dir, "spill_dir": self.store.spill_dir,
            "inline_max": self.inline_max_bytes, "env": env, "cpu_share": 1,
            "secret": self._secret.hex(), "budget_bytes": self.store.budget_bytes,
        }
        self._workers[wid] = _Worker(wid, 0, -1, actor_id)
        self.workers_started += 1
        if actor_id is not None:
            self._actors[actor_id].worker = wid
        if not now:
            self._background.submit(lambda: self._fork(wid, request))
            return
        try:
            pid = self._zygote.fork(request)
        except (OSError, RuntimeError, ValueError) as exc:
            self._restart_zygote(exc)
            del self._workers[wid]
            self._start_worker(actor_id, env, now=True)
            return
        self._on_forked(wid, pid)

    def _fork(self, wid: str, request: dict[str, Any]) -> None:
        """(Background thread.) Fork a worker; if the zygote is dead, replace it and let the
        IO thread start the worker again under a new id."""
        try:
            pid = self._zygote.fork(request)
        except (OSError, RuntimeError, ValueError) as exc:
            self._restart_zygote(exc)
            self._command(("fork_failed", wid))
            return
        self._fork_failures = 0
        self._command(("forked", wid, pid))

    def _restart_zygote(self, cause: BaseException) -> None:
        """Replace a dead zygote; too many failures in a row fail the runtime."""
        self._fork_failures += 1
        if self._fork_failures > _ZYGOTE_RESTARTS:
            raise RuntimeError(f"the engine's zygote failed {self._fork_failures} times in a "
                               f"row; last: {type(cause).__name__}: {cause}") from cause
        logger.warning("the engine's zygote failed (%s: %s); restarting it",
                       type(cause).__name__, cause)
        old = self._zygote
        self._zygote = Zygote(old.preload)
        self.zygote_restarts += 1
        with contextlib.suppress(Exception):
            old.close()

    def _on_fork_failed(self, wid: str) -> None:
        """A worker that may never have started (or started unwatched): its work goes
        elsewhere, a new worker takes its place; an actor's restart count is not charged."""
        if wid in self._workers:
            logger.warning("starting worker %s failed; starting another", wid)
            # If it did start (and said READY), send it home; if it has not connected yet,
            # its READY will be answered so (see _drain_router).
            self._send(wid, p.encode_header(p.SHUTDOWN))
            self._on_worker_death(wid, charge_actor=False)

    def _on_forked(self, wid: str, pid: int) -> None:
        worker = self._workers.get(wid)
        if worker is None:  # dropped meanwhile (its actor was killed, say)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pidfd = os.open("/dev/null", os.O_RDONLY)  # polls readable: seen dead at once
        worker.pid = pid
        worker.pidfd = pidfd
        self._by_fd[pidfd] = wid
        if worker.ready_unconfirmed:
            worker.ready_unconfirmed = False
            self._on_ready(worker)

    def _send(self, wid: str, *frames: bytes) -> bool:
        try:
            self._router.send_multipart([wid.encode(), *frames], copy=False)
            return True
        except zmq.ZMQError:  # unreachable: the worker is dying; its pidfd will tell
            return False

    def _dispatch(self) -> None:
        while self._queue and self._idle:
            key = self._queue.popleft()
            task = self._tasks.get(key)
            if task is None:
                continue
            self._run_on(self._idle.popleft(), task)
        self._dispatch_to_lane()
        if self._queue and not self._idle:
            self._add_worker_for_blocked_tasks()
        for actor in self._actors.values():
            worker = self._workers.get(actor.worker) if actor.worker else None
            if worker is None or not worker.ready:
                continue
            while actor.queue:
                key = actor.queue.popleft()
                task = self._tasks.get(key)
                if task is not None:
                    actor.inflight.append(key)
                    self._run_on(worker.worker_id, task)

    def _dispatch_to_lane(self) -> None:
        """Give the driver lane, while it is idle and no worker process is ready yet, the
        first queued task that holds no user code; send it home once every worker process
        is ready. (Once batches flow, the driver's own threads need its GIL: a lane task
        then ran at a fraction of a worker's speed, and held one of the executor's slots.)"""
        lane = self._workers.get(self._lane_id) if self._lane_id is not None else None
        if lane is None or not lane.ready or lane.tasks or lane.retiring:
            return
        started = sum(1 for w in self._workers.values()
                      if w.actor_id is None and w.ready and not w.in_driver)
        if started:
            if started < self.num_cpus:
                return
            lane.retiring = True
            self._send(lane.worker_id, p.encode_header(p.SHUTDOWN))
            del self._workers[lane.worker_id]  # it sends nothing more: its thread just ends
            self._lane_id = None
            return
        for key in self._queue:
            task = self._tasks.get(key)
            if task is not None and task.local_ok:
                self._queue.remove(key)
                self._run_on(lane.worker_id, task)
                return

    def _add_worker_for_blocked_tasks(self) -> None:
        """Queued tasks wait while workers sit blocked on credits (their consumer reads
        another execution first, e.g. two datasets iterated in lockstep): start one extra
        worker per blocked one so waiting never becomes a deadlock. Extras retire idle."""
        task_workers = [w for w in self._workers.values()
                        if w.actor_id is None and not w.in_driver]
        if any(not w.ready for w in task_workers):
            return  # one is starting already
        blocked = sum(1 for w in task_workers if w.tasks and
                      all(self._tasks[k].waiting_for_credit for k in w.tasks
                          if k in self._tasks))
        extras = min(blocked, self.max_extra_workers)
        if blocked and len(task_workers) < self.num_cpus + extras:
            self._start_worker(None, {})

    def _retire_if_extra(self, worker: _Worker) -> bool:
        """Send an idle extra worker home once the queue is empty; True if it was."""
        if self._queue:
            return False
        task_workers = sum(1 for w in self._workers.values()
                           if w.actor_id is None and not w.retiring and not w.in_driver)
        if task_workers <= self.num_cpus:
            return False
        worker.retiring = True
        self._send(worker.worker_id, p.encode_header(p.SHUTDOWN))
        return True

    def _run_on(self, wid: str, task: _Task) -> None:
        worker = self._workers[wid]
        if task.digest in worker.fns:
            fn_frame = b""
            worker.fns.move_to_end(task.digest)
        else:  # mirror the worker's LRU: what it evicts, it is sent again
            fn_frame = task.fn_bytes
            worker.fns[task.digest] = None
            while len(worker.fns) > p.FN_CACHE_SIZE:
                worker.fns.popitem(last=False)
        task.worker = wid
        worker.tasks.append(task.key)
        # A retry starts owing what its earlier attempt delivered and nobody has taken yet.
        credits = max(0, task.credits - task.untaken)
        header = p.encode_header(p.TASK, task.key, task.attempt, task.digest, credits)
        self._send(wid, header, fn_frame, task.args_bytes)

    def _on_message(self, worker: _Worker, header: tuple[Any, ...], frames: list[Any]) -> None:
        kind = header[0]
        if kind == p.OUTPUT:
            self._on_output(worker, header, frames)
        elif kind == p.DONE:
            _, key, attempt, cpu = header
            task = self._task_of(worker, key, attempt)
            if task is not None:
                self._release(worker, task)
                task.handle._finish(None, cpu)
        elif kind == p.ERROR:
            self._on_error(worker, header, frames)
        elif kind == p.SYSTEM_ERROR:
            self._on_system_error(worker, header)
        elif kind == p.READY:
            if not worker.pid:  # not forked as far as we know yet (see _on_forked)
                worker.ready_unconfirmed = True
                return
            self._on_ready(worker)
        elif kind == p.ACTOR_READY:
            worker.ready = True
            actor = self._actors.get(worker.actor_id)  # type: ignore[arg-type]
            if actor is not None:
                actor.handle.ready.set()

    def _on_ready(self, worker: _Worker) -> None:
        """A started worker (whose fork was confirmed) takes work, or its actor."""
        worker.ready = True
        if worker.in_driver:  # takes only local_ok tasks (see _dispatch_to_lane)
            return
        if worker.actor_id is None:
            self._idle.append(worker.worker_id)
        else:
            actor = self._actors.get(worker.actor_id)
            if actor is None or actor.dead or actor.worker != worker.worker_id:
                self._send(worker.worker_id, p.encode_header(p.SHUTDOWN))
                return
            self._send(worker.worker_id, p.encode_header(p.ACTOR_INIT), actor.init_bytes)
            worker.ready = False  # until the constructor ran

    def _task_of(self, worker: _Worker, key: int, attempt: int) -> _Task | None:
        task = self._tasks.get(key)
        if task is None or task.attempt != attempt or task.worker != worker.worker_id:
            return None  # a stale attempt, or a cancelled task
        return task

    def _release(self, worker: _Worker, task: _Task) -> None:
        self._tasks.pop(task.key, None)
        if task.key in worker.tasks:
            worker.tasks.remove(task.key)
        if worker.in_driver:
            return
        if worker.actor_id is None:
            if not worker.tasks and not self._retire_if_extra(worker):
                self._idle.append(worker.worker_id)
        else:
            actor = self._actors.get(worker.actor_id)
            if actor is not None and task.key in actor.inflight:
                actor.inflight.remove(task.key)

    def _on_output(self, worker: _Worker, header: tuple[Any, ...], frames: list[Any]) -> None:
        _, key, attempt, index, kind, block_id, rows, size = header
        task = self._task_of(worker, key, attempt)
        rebuild = self._lineage.rebuilds.get(key)
        if rebuild is not None:
            self._on_rebuild_output(worker, task, index, kind, block_id)
            return
        if kind == p.KIND_STORED:
            if not (is_valid_block_id(block_id) and
                    block_id.startswith(f"{worker.worker_id}-")):
                logger.warning("worker %s reported an invalid block id %r; rejected",
                               worker.worker_id, block_id)
                if task is not None and not task.cancelled:
                    self._fail_running(task, SystemException(
                        f"task {task.name}: its worker reported an invalid block id "
                        f"{block_id!r}"))
                return
            self.store.register(block_id, size, spill=False)  # spilling is not this thread's
            self._maybe_spill()
        if task is None or task.cancelled or index < task.accepted:
            if kind == p.KIND_STORED:
                self.store.free(block_id)
            if task is not None and not task.cancelled:
                self._send(worker.worker_id, p.encode_header(p.CREDIT, key, 1))
            return
        task.accepted += 1
        task.untaken += 1
        if kind == p.KIND_VALUE:
            try:
                item: Any = ValueOutput(cloudpickle.loads(frames[1].buffer), size)
            except Exception as exc:  # it pickled on the worker but cannot load here
                message = (f"output {index} of task {task.name} cannot be unpickled in the "
                           f"driver: {type(exc).__name__}: {exc}")
                self._fail_running(task, RemoteError(type(exc), type(exc).__name__, message,
                                                     ""))
                return
        elif kind == p.KIND_INLINE:
            item = LocalBlockRef("i", rows, size, inline=frames[1].bytes,
                                 schema_bytes=frames[0].bytes)
        else:
            item = LocalBlockRef(block_id, rows, size, path=self.store.block_path(block_id),
                            schema_bytes=frames[0].bytes, store=self.store,
                            spill_dir=self.store.spill_dir)
            if task.actor_id is None:  # an actor's state cannot be replayed: no lineage
                self._lineage.record(block_id, Producer(task.name, task.digest, task.fn_bytes,
                                                        task.args_bytes, index))
        task.handle._push(item)

    def _maybe_spill(self) -> None:
        """Over budget: spill on the background thread (one pass at a time). A spill that
        fails leaves its block in shared memory: nothing is lost, the store stays over."""
        if self._spill_scheduled or self.store.used_bytes <= self.store.budget_bytes:
            return
        self._spill_scheduled = True

        def spill() -> None:
            moved = 0
            try:
                moved = self.store.spill_until_under_budget()
            finally:
                self._command(("spilled", moved))

        self._background.submit(spill)

    def _fail_running(self, task: _Task, error: BaseException) -> None:
        """Fail a task's handle now and stop the task; its DONE releases the worker."""
        task.cancelled = True
        task.handle._finish(error)
        if task.worker is not None:
            self._send(task.worker, p.encode_header(p.CANCEL, task.key))

    def _on_error(self, worker: _Worker, header: tuple[Any, ...], frames: list[Any]) -> None:
        _, key, attempt, type_name, message, tb = header
        try:
            exc_type = cloudpickle.loads(frames[0].buffer) if frames[0].bytes else None
        except Exception:
            exc_type = None
        error = RemoteError(exc_type, type_name, message, tb)
        if key == -1:  # an actor's constructor raised
            self._on_constructor_error(worker, error)
            return
        task = self._task_of(worker, key, attempt)
        if task is not None:
            self._release(worker, task)
            task.handle._finish(error)

    def _on_constructor_error(self, worker: _Worker, error: RemoteError) -> None:
        """Rebuild the actor in a fresh process within ``max_restarts``; past them the actor
        dies with the constructor's own error."""
        actor = self._actors.get(worker.actor_id)  # type: ignore[arg-type]
        if actor is None or actor.dead or actor.worker != worker.worker_id:
            return
        if actor.handle.restarts >= actor.max_restarts:
            self._retire_actor(actor.actor_id, error)
            return
        actor.handle.restarts += 1
        self._send(worker.worker_id, p.encode_header(p.SHUTDOWN))  # its death is ignored
        logger.warning("the constructor of actor %s raised %s; restarting it (%d of %d)",
                       actor.actor_id, error.type_name, actor.handle.restarts,
                       actor.max_restarts)
        self._start_worker(actor.actor_id, actor.env)

    def _on_system_error(self, worker: _Worker, header: tuple[Any, ...]) -> None:
        """The worker's own work failed (not the UDF): retry the task like a worker death."""
        _, key, attempt, name, message, lost_block = header
        task = self._task_of(worker, key, attempt)
        if task is None:
            return
        self._release(worker, task)
        self._tasks[key] = task  # _release forgot it; it is not finished
        task.worker = None
        if name == p.SYS_FN_MISSING:  # not a failure: send the function again
            worker.fns.pop(task.digest, None)
            self._requeue(task)
            return
        if name == p.SYS_OBJECT_LOST and lost_block and not task.cancelled and \
                task.rebuilds < _MAX_REBUILDS and self._wait_for_rebuild(lost_block, task=task):
            logger.warning("task %s: %s; rebuilding it from its lineage", task.name, message)
            return
        error_cls: type[SystemException] = (
            ObjectLostError if name == p.SYS_OBJECT_LOST else StoreWriteError)
        if task.attempt < task.max_retries and not task.cancelled:
            logger.warning("task %s: %s; retrying it", task.name, message)
            task.attempt += 1
            self.tasks_retried += 1
            self._requeue(task)
            return
        self._tasks.pop(key, None)
        if task.cancelled:  # nobody waits for its outputs
            task.handle._finish()
            return
        task.handle._finish(error_cls(f"task {task.name} failed after {task.attempt + 1} "
                                      f"attempt(s) (max_retries={task.max_retries}): "
                                      f"{message}"))

    # -- lineage ------------------------------------------------------------------------
    def _recover_block(self, block_id: str) -> tuple[bool, str]:
        """(Any thread but the IO thread.) Rebuild a lost block a driver-side read needs;
        return whether it is back, and why not."""
        if threading.current_thread() is self._thread or self._failed or self._stopping:
            return False, "the runtime cannot rebuild it now"
        waiter = BlockWaiter()
        self._command(("recover", block_id, waiter))
        while not waiter.event.wait(1.0):  # a rebuild always ends; shutdown ends the wait
            if self._failed is not None or self._stopping:
                return False, "the runtime stopped"
        return waiter.ok, waiter.reason

    def _wait_for_rebuild(self, block_id: str, task: _Task | None = None,
                          waiter: BlockWaiter | None = None) -> bool:
        """Make ``task`` (or ``waiter``) wait for ``block_id`` to be rebuilt, starting the
        rebuild if needed; False if the block has no known producer."""
        rebuild = self._lineage.rebuilding(block_id)
        if rebuild is None:
            producer = self._lineage.producer(block_id)
            if producer is None:
                return False
            key = next(self._keys)
            handle = TaskHandle(key, f"{producer.name} (rebuilding block {block_id})", self,
                                None, credits=1 << 30)
            handle._notify = lambda: self._command(("rebuilt", key, handle))
            rerun = _Task(key, handle.name, producer.digest, producer.fn_bytes,
                          producer.args_bytes, handle, max_retries=1, credits=1 << 30)
            rebuild = self._lineage.start(key, block_id, producer.index)
            self._tasks[key] = rerun
            self._queue.appendleft(key)
        if task is not None:
            task.rebuilds += 1
            rebuild.task_keys.append(task.key)
        if waiter is not None:
            rebuild.waiters.append(waiter)
        return True

    def _on_rebuild_output(self, worker: _Worker, task: _Task | None, index: int, kind: int,
                           block_id: str) -> None:
        """An output of a re-run task: the wanted one takes the lost block's place (a file
        rename in the session directory); the others are dropped."""
        rebuild = self._lineage.rebuilds[task.key] if task is not None else None
        path = self.store.block_path(block_id) if kind == p.KIND_STORED else None
        if task is None or rebuild is None or rebuild.restored or index != rebuild.index \
                or path is None:
            if path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)  # never registered: nobody else would remove it
            if task is not None and rebuild is not None and index >= rebuild.index:
                self._fail_running_quietly(task)  # past the wanted output: nothing more needed
            return
        rebuild.restored = self.store.restore(rebuild.block_id, path)
        if rebuild.restored:
            self.blocks_rebuilt += 1
        self._fail_running_quietly(task)

    def _fail_running_quietly(self, task: _Task) -> None:
        if not task.cancelled:
            task.cancelled = True
            if task.worker is not None:
                self._send(task.worker, p.encode_header(p.CANCEL, task.key))

    def _end_rebuild(self, key: int, handle: TaskHandle) -> None:
        rebuild = self._lineage.end(key)
        if rebuild is None:
            return
        if rebuild.restored:
            reason = ""
        elif handle.error is not None:
            reason = f"re-running the task that made it failed: {handle.error}"
        else:
            reason = "re-running the task that made it did not produce it again"
        for waiter in rebuild.waiters:
            waiter.resolve(rebuild.restored, reason)
        for task_key in rebuild.task_keys:
            task = self._tasks.get(task_key)
            if task is None or task.worker is not None:
                continue  # cancelled meanwhile
            if task.cancelled:
                self._tasks.pop(task_key, None)
                task.handle._finish()
            elif rebuild.restored:
                task.attempt += 1
                self._requeue(task)
            else:
                self._tasks.pop(task_key, None)
                task.handle._finish(ObjectLostError(
                    f"task {task.name} failed: its input block {rebuild.block_id} is lost and "
                    f"could not be rebuilt: {reason}"))

    def _requeue(self, task: _Task) -> None:
        if task.actor_id is None:
            self._queue.appendleft(task.key)
            return
        actor = self._actors.get(task.actor_id)
        if actor is None or actor.dead:
            self._tasks.pop(task.key, None)
            err = task.actor.error if task.actor is not None else None
            task.handle._finish(err or ActorDiedError(f"actor {task.actor_id} is dead"))
        else:
            actor.queue.appendleft(task.key)

    def _on_worker_death(self, wid: str, charge_actor: bool = True) -> None:
        worker = self._workers.pop(wid, None)
        if worker is None:
            return
        self._by_fd.pop(worker.pidfd, None)
        if worker.pidfd >= 0:
            os.close(worker.pidfd)
        if wid in self._idle:
            self._idle.remove(wid)
        if self._stopping:
            return
        # Block ids are "<wid>-<pid>-<n>": files it wrote but never reported (or reported
        # after we stopped listening to it) have no BlockRef and would stay forever.
        self.store.remove_unreported(f"{wid}-{worker.pid}-")
        if worker.actor_id is not None:
            self._on_actor_death(worker, charge_actor)
            return
        for key in worker.tasks:
            task = self._tasks.get(key)
            if task is None:
                continue
            task.worker = None
            if task.attempt < task.max_retries and not task.cancelled:
                task.attempt += 1
                self.tasks_retried += 1
                self._report_failure("task_retried", f"task {task.name} (attempt "
                                     f"{task.attempt + 1}): worker pid {worker.pid} died")
                self._queue.appendleft(key)
            else:
                self._tasks.pop(key, None)
                task.handle._finish(WorkerCrashedError(
                    f"task {task.name} failed: its worker (pid {worker.pid}) died "
                    f"{task.attempt + 1} time(s) (max_retries={task.max_retries})"))
        if worker.retiring:
            return
        if worker.pid:
            logger.warning("worker pid %d died; starting a replacement", worker.pid)
        self._report_failure("worker_died", f"worker pid {worker.pid}")
        self._start_worker(None, {})

    def _on_actor_death(self, worker: _Worker, charge: bool = True) -> None:
        actor = self._actors.get(worker.actor_id)  # type: ignore[arg-type]
        if actor is None or actor.dead or actor.worker != worker.worker_id:
            return  # a retired actor, or an instance already replaced
        if not charge:
            actor.handle.restarts -= 1  # undone below: a failed start is not a restart
        elif actor.handle.restarts >= actor.max_restarts:
            self._retire_actor(actor.actor_id, ActorDiedError(
                f"actor {actor.actor_id} died (pid {worker.pid}) and exhausted "
                f"max_restarts={actor.max_restarts}"))
            self._report_failure("actor_died", f"actor {actor.actor_id} (pid {worker.pid})")
            return
        actor.handle.restarts += 1
        actor.handle.ready.clear()
        for key in reversed(actor.inflight):  # resubmit in-flight calls, in order, first
            task = self._tasks.get(key)
            if task is not None:
                task.attempt += 1
                task.worker = None
                actor.queue.appendleft(key)
        actor.inflight.clear()
        logger.warning("actor %s died (pid %d); restarting it", actor.actor_id, worker.pid)
        self._report_failure("actor_restarted", f"actor {actor.actor_id} (pid {worker.pid})")
        self._start_worker(actor.actor_id, actor.env)

    def _retire_actor(self, actor_id: str, error: BaseException) -> None:
        actor = self._actors.get(actor_id)
        if actor is None or actor.dead:
            return
        actor.dead = True
        actor.handle.error = error
        actor.handle.ready.set()
        with self._fn_lock:
            self._free_gpus.extend(actor.gpu_ids)
            del self._actors[actor_id]  # with its pickled class and arguments
        for key in [*actor.inflight, *actor.queue]:
            task = self._tasks.pop(key, None)
            if task is not None:
                task.handle._finish(error)
        actor.inflight.clear()
        actor.queue.clear()
        worker = self._workers.get(actor.worker) if actor.worker else None
        if worker is not None:
            self._send(worker.worker_id, p.encode_header(p.SHUTDOWN))
            if worker.pidfd >= 0:  # not yet forked: it is sent home when it says READY
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(worker.pidfd, signal.SIGTERM)

    def _stop_workers(self) -> None:
        for wid, worker in list(self._workers.items()):
            if not self._send(wid, p.encode_header(p.SHUTDOWN)):
                # Not connected yet, so the ROUTER cannot reach it: it holds no work.
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(worker.pidfd, signal.SIGTERM)
        for task in list(self._tasks.values()):
            task.handle._finish(RuntimeError("the cluster was shut down"))
        self._tasks.clear()
        self._lineage.fail_all("the cluster was shut down")


def _wait_fd(fd: int, timeout: float) -> bool:
    import select

    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    except (OSError, ValueError):
        return True
    return bool(ready)
