"""``streaming_split`` consumers in other processes on a Ray cluster (any node).

On the Ray backend no path crosses the wire: a small async Ray actor, the *relay*, stands
between remote consumers and the coordinator in the driver. A consumer (a Ray task or
actor, a trainer rank, on any node) sends each request to the relay and awaits the reply;
a driver thread long-polls the relay for requests and serves each connection with the same
:func:`engine.splits.transport._serve` loop as the local socket server. Replies carry
``ObjectRef`` s (inside :class:`~engine.runtime.ray_backend.refs.BlockArg`): Ray tracks
the consumer as a borrower, and the consumer reads the block from its own node's object
store. Requests carry the relay's random key: only holders of the pickled ``DataIterator``
are served.

The address a ``DataIterator`` carries is ``"ray-relay:<namespace>/<actor name>"``.

A consumer that dies in the middle of a pass sends no goodbye, and no connection drops to
tell (as a Unix socket does on one machine): the consumer names its Ray worker and node when
it begins, and the relay watches them in Ray's GCS while the pass is open. A dead one ends
its connection as a dropped socket would: the coordinator fails the epoch for the others
with ``SplitConsumerDiedError`` rather than wait for a share that never comes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import logging
import os
import queue
import threading
import uuid
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.runtime.ray_backend.cluster import RayCluster
    from engine.splits.streaming import SplitCoordinator

logger = logging.getLogger(__name__)

PREFIX = "ray-relay:"
_POLL_S = 1.0
_WATCH_S = 1.0  # how often the relay looks for dead consumers


def consumer_gone(worker_id: str, node_id: str) -> bool:
    """Whether Ray's GCS knows the worker (or its node) as dead; an unknown one is alive."""
    import ray
    from ray._private import state
    from ray.core.generated import gcs_pb2

    if any(n["NodeID"] == node_id and not n["Alive"] for n in ray.nodes()):
        return True
    info = state.state._connect_and_get_accessor().get_worker_info(
        ray.WorkerID.from_hex(worker_id))
    table = gcs_pb2.WorkerTableData  # type: ignore[attr-defined]  # generated, untyped
    return info is not None and not table.FromString(info).is_alive


class SplitRelay:
    """The Ray actor that passes requests in and replies out (one per coordinator), and
    watches the consumers with an open pass (see the module docstring)."""

    def __init__(self, authkey: bytes) -> None:
        self._authkey = authkey
        # A deque and an event, not an asyncio.Queue: pull() gives up waiting after a
        # timeout, and wait_for(queue.get()) can drop the item that arrives just then
        # (Python < 3.12); a cancelled event.wait() loses nothing.
        self._incoming: collections.deque[tuple[str, Any]] = collections.deque()
        self._arrived = asyncio.Event()
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._watched: dict[str, tuple[str, str]] = {}  # conn id -> (worker id, node id)
        self._watcher: asyncio.Task[None] | None = None

    async def request(self, authkey: bytes, conn_id: str, message: Any,
                      consumer: tuple[str, str] | None = None) -> Any:
        if not hmac.compare_digest(authkey, self._authkey):
            return ("error", PermissionError("streaming_split: wrong key for this coordinator"))
        if consumer is not None:
            self._watched[conn_id] = consumer
            if self._watcher is None:  # kept: the loop holds only a weak reference
                self._watcher = asyncio.get_running_loop().create_task(self._watch())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if message[0] != "close":
            self._waiting[conn_id] = future
        else:
            self._watched.pop(conn_id, None)
        self._put(conn_id, message)
        if message[0] == "close":
            return None
        return await future

    async def _watch(self) -> None:
        """Every ``_WATCH_S``, end the connections of consumers Ray knows are dead."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_WATCH_S)
            for conn_id, (worker_id, node_id) in list(self._watched.items()):
                try:
                    gone = await loop.run_in_executor(None, consumer_gone, worker_id, node_id)
                except Exception:  # the GCS did not answer: ask again next round
                    continue
                if gone and self._watched.pop(conn_id, None) is not None:
                    self._put(conn_id, ("died",))
                    # nobody waits for this reply, unless Ray was wrong: then an error,
                    # never a consumer waiting forever
                    future = self._waiting.pop(conn_id, None)
                    if future is not None and not future.done():
                        future.set_result(("error", RuntimeError(
                            "streaming_split: this consumer was reported dead")))

    def _put(self, conn_id: str, message: Any) -> None:
        self._incoming.append((conn_id, message))
        self._arrived.set()

    async def pull(self, timeout_s: float) -> list[tuple[str, Any]]:
        """The requests waiting (at most ``timeout_s`` for the first)."""
        if not self._incoming:
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
            except asyncio.TimeoutError:
                return []
        self._arrived.clear()
        items = list(self._incoming)
        self._incoming.clear()
        return items

    async def reply(self, conn_id: str, reply: Any) -> None:
        future = self._waiting.pop(conn_id, None)
        if future is not None and not future.done():
            future.set_result(reply)


class _RelayConnection:
    """One consumer's pass, shaped like a ``multiprocessing`` connection for ``_serve``."""

    def __init__(self, relay: Any, conn_id: str) -> None:
        self._relay = relay
        self._conn_id = conn_id
        self.inbox: queue.Queue[Any] = queue.Queue()

    def recv(self) -> Any:
        message = self.inbox.get()
        if message is None or message[0] == "died":
            # the relay's watch found the consumer dead (or the server stops): the pass
            # ends without a goodbye, as a dropped socket ends one
            raise EOFError("the consumer is gone")
        return message  # "close" included: _serve tells a goodbye from a death

    def send(self, reply: Any) -> None:
        import ray

        if not ray.is_initialized():  # shut down: a call now would start a new Ray
            raise OSError("Ray is shut down")
        self._relay.reply.remote(self._conn_id, reply)

    def close(self) -> None:
        pass


class RayRelayServer:
    """The driver's side: the relay actor and the thread that serves its requests."""

    def __init__(self, coordinator: SplitCoordinator, cluster: RayCluster) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.authkey = os.urandom(32)
        name = f"engine-split-{uuid.uuid4().hex}"
        namespace = ray.get_runtime_context().namespace
        here = ray.get_runtime_context().get_node_id()
        self._relay: Any = ray.remote(SplitRelay).options(
            name=name, namespace=namespace, num_cpus=0, max_concurrency=1000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True),
        ).remote(self.authkey)
        self.address = f"{PREFIX}{namespace}/{name}"
        self._coordinator = weakref.ref(coordinator)
        self._connections: dict[str, _RelayConnection] = {}
        self._stopped = threading.Event()
        cluster.add_shutdown_hook(self.stop)
        threading.Thread(target=self._pump, name="engine-split-relay", daemon=True).start()

    def _pump(self) -> None:
        import ray

        from engine.splits.transport import _serve

        # Each check of ray.is_initialized() matters: an actor call after Ray's shutdown
        # would start a new local Ray instance (Ray's auto-init).
        while not self._stopped.is_set() and ray.is_initialized():
            try:
                requests = ray.get(self._relay.pull.remote(_POLL_S))
            except Exception as exc:  # the relay or Ray is gone: nothing left to serve
                if not self._stopped.is_set():
                    logger.warning("streaming_split: the relay actor failed: %s", exc)
                return
            for conn_id, message in requests:
                conn = self._connections.get(conn_id)
                if conn is None:
                    coordinator = self._coordinator()
                    if coordinator is None:
                        return
                    conn = self._connections[conn_id] = _RelayConnection(self._relay, conn_id)
                    threading.Thread(target=self._serve_one, args=(_serve, coordinator, conn,
                                                                   conn_id),
                                     name="engine-split-consumer", daemon=True).start()
                    del coordinator
                conn.inbox.put(message)

    def _serve_one(self, serve: Any, coordinator: Any, conn: _RelayConnection,
                   conn_id: str) -> None:
        try:
            serve(coordinator, conn)
        finally:
            self._connections.pop(conn_id, None)

    def stop(self) -> None:
        import ray

        if self._stopped.is_set():
            return
        self._stopped.set()
        for conn in list(self._connections.values()):
            conn.inbox.put(None)
        with contextlib.suppress(Exception):
            if ray.is_initialized():
                ray.kill(self._relay)


def start_ray_server(coordinator: SplitCoordinator, cluster: RayCluster) -> None:
    """Serve ``coordinator`` through a relay actor until it is garbage-collected or the
    engine shuts down."""
    server = RayRelayServer(coordinator, cluster)
    coordinator.server = server  # type: ignore[assignment]
    weakref.finalize(coordinator, server.stop)


class _FetchedBlock:
    """A block a remote consumer fetched from its node's object store."""

    __slots__ = ("num_rows", "table")

    def __init__(self, table: Any) -> None:
        self.table = table
        self.num_rows = table.num_rows

    def get(self) -> Any:
        return self.table


def relay_block_refs(address: str, authkey: bytes, index: int) -> Iterator[_FetchedBlock]:
    """One pass of consumer ``index`` through the relay named by ``address``."""
    import ray

    if not ray.is_initialized():
        ray.init(address="auto")  # a process on a cluster node that is not a Ray worker
    namespace, _, name = address[len(PREFIX):].partition("/")
    try:
        relay = ray.get_actor(name, namespace=namespace)
    except ValueError as exc:
        raise RuntimeError("streaming_split: the coordinator is gone (the process that "
                           "called streaming_split dropped its iterators or shut the "
                           "engine down)") from exc
    conn_id = uuid.uuid4().hex
    context = ray.get_runtime_context()
    me = (context.get_worker_id(), context.get_node_id())  # for the relay's watch

    def ask(message: tuple[Any, ...], consumer: tuple[str, str] | None = None) \
            -> tuple[str, Any]:
        try:
            reply: Any = ray.get(relay.request.remote(authkey, conn_id, message, consumer))
        except ray.exceptions.RayError as exc:
            raise RuntimeError("streaming_split: lost the coordinator's relay (the process "
                               "that called streaming_split exited?)") from exc
        return reply

    try:
        kind, payload = ask(("begin", index), me)
        if kind == "error":
            raise payload
        while True:
            kind, payload = ask(("next",))
            if kind == "end":
                return
            if kind == "error":
                raise payload
            yield _FetchedBlock(ray.get(payload.object_ref))
    finally:
        with contextlib.suppress(Exception):
            relay.request.remote(authkey, conn_id, ("close",))
