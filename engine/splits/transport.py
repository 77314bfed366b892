"""How a ``streaming_split`` consumer in another process reaches the coordinator.

The process that called ``streaming_split`` serves its :class:`SplitCoordinator` on a Unix
socket inside the session's private (0700) block-store directory; peers authenticate with
a random key (HMAC challenge of :mod:`multiprocessing.connection`) that travels only inside
the pickled ``DataIterator`` (or the memory a ``fork`` child inherits). Only block
*locations* cross the socket: the consumer maps each block read-only from the shared store
by path (inline blocks carry their bytes), exactly like a worker does.

Protocol, one connection per pass over the iterator (a thread serves each connection):
``("begin", consumer_index, pid)`` -> ``("epoch", number)``; then ``("next",)`` ->
``("block", location)``, ``("end", None)`` or ``("error", exception)``; a consumer that
stops before its end says ``("close",)`` and is done with the epoch, like a thread that
closed its iterator. The consumer maps a block before it asks for the next one, so the
server keeps only the last block it lent alive. A connection that drops in the middle of a
pass without ``close`` is a consumer process that died: the epoch fails for the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import socket
import threading
import uuid
import weakref
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import (
    Client,
    Connection,
    Listener,
    answer_challenge,
    deliver_challenge,
)
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from engine.splits.streaming import SplitCoordinator

logger = logging.getLogger(__name__)


class SplitServer:
    """Accepts consumer connections for one coordinator, which it does not keep alive."""

    def __init__(self, coordinator: SplitCoordinator, directory: str) -> None:
        self.address = os.path.join(directory, f"split-{uuid.uuid4().hex[:12]}.sock")
        self.authkey = os.urandom(32)
        # The handshake runs in each connection's thread: a peer that stalls in it must not
        # keep the others from connecting.
        self._listener = Listener(self.address, family="AF_UNIX", backlog=64)
        self._coordinator = weakref.ref(coordinator)
        self._stopped = threading.Event()
        self._pid = os.getpid()
        threading.Thread(target=self._accept_loop, name="engine-split-server",
                         daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn = self._listener.accept()
            except OSError as exc:  # the listener closed, or the process ran out of files
                if self._stopped.is_set():
                    return
                logger.warning("streaming_split: accepting a consumer failed: %s", exc)
                self._stopped.wait(0.1)
                continue
            coordinator = self._coordinator()
            if coordinator is None or self._stopped.is_set():
                conn.close()
                return
            threading.Thread(target=_authenticate_and_serve, args=(coordinator, conn,
                                                                   self.authkey),
                             daemon=True, name="engine-split-consumer").start()
            del coordinator  # only connection threads keep the coordinator alive

    def stop(self) -> None:
        """Stop accepting (idempotent): wake the blocked ``accept`` and remove the socket."""
        if self._stopped.is_set() or os.getpid() != self._pid:
            return  # a fork child that drops its copy must not remove the parent's socket
        self._stopped.set()
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as wake:
            wake.connect(self.address)
        with contextlib.suppress(Exception):
            self._listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.address)


def start_server(coordinator: SplitCoordinator) -> None:
    """Serve ``coordinator`` to other processes until it is garbage-collected."""
    from engine import session
    from engine.runtime.cluster import LocalCluster

    cluster = session.get_cluster()
    if not isinstance(cluster, LocalCluster):  # Ray: consumers reach it through an actor
        from engine.runtime.ray_backend.cluster import RayCluster
        from engine.splits.transport_ray import start_ray_server

        assert isinstance(cluster, RayCluster), f"no split transport for {cluster!r}"
        start_ray_server(coordinator, cluster)
        return
    server = SplitServer(coordinator, cluster.store.dir)
    coordinator.server = server
    weakref.finalize(coordinator, server.stop)


def _authenticate_and_serve(coordinator: SplitCoordinator, conn: Connection,
                            authkey: bytes) -> None:
    """Check the peer knows the key (both ways, as ``Listener(authkey=...)`` would), then
    serve it; a peer that does not is dropped."""
    try:
        deliver_challenge(conn, authkey)
        answer_challenge(conn, authkey)
    except (AuthenticationError, EOFError, OSError):
        conn.close()
        return
    _serve(coordinator, conn)


def _serve(coordinator: SplitCoordinator, conn: Connection) -> None:
    """Serve one pass of one remote consumer."""
    index: int | None = None
    number: int | None = None
    finished = False
    lent: Any = None  # the block the consumer is mapping; freed when it asks for the next
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "begin":
                index = int(message[1])
                pid = int(message[2]) if len(message) > 2 else None
                try:
                    number = coordinator.begin(index, pid)
                except BaseException as exc:
                    finished = True
                    _send_error(conn, exc)
                    continue
                conn.send(("epoch", number))
            elif message[0] == "next" and index is not None and number is not None:
                try:
                    lent = coordinator.next_block(index, number)
                except BaseException as exc:
                    finished = True
                    _send_error(conn, exc)
                    continue
                if lent is None:
                    finished = True
                    conn.send(("end", None))
                else:
                    conn.send(("block", lent.location))
            elif message[0] == "close":
                if index is not None and number is not None and not finished:
                    finished = True
                    coordinator.finish(index, number)
                return
            else:
                _send_error(conn, RuntimeError(f"streaming_split: unexpected request "
                                               f"{message[0]!r}"))
    except (EOFError, OSError):
        pass  # the consumer went away mid-reply
    finally:
        if index is not None and number is not None and not finished:
            coordinator.lost(index, number)  # gone without a goodbye: the process died
        del lent
        with contextlib.suppress(OSError):
            conn.close()


def _send_error(conn: Connection, exc: BaseException) -> None:
    try:
        pickle.dumps(exc)
    except Exception:
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    conn.send(("error", exc))


class _MappedBlock:
    """A block a remote consumer has already mapped (what ``BlockRef.get`` returns)."""

    __slots__ = ("num_rows", "table")

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.num_rows = table.num_rows

    def get(self) -> pa.Table:
        return self.table


def remote_block_refs(address: str, authkey: bytes, index: int) -> Iterator[_MappedBlock]:
    """One pass of consumer ``index``, asked of the coordinator at ``address``."""
    from engine.runtime.block_store import read_location
    from engine.splits.transport_ray import PREFIX, relay_block_refs

    if address.startswith(PREFIX):
        yield from relay_block_refs(address, authkey, index)  # type: ignore[misc]
        return
    try:
        conn = Client(address, family="AF_UNIX", authkey=authkey)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise RuntimeError("streaming_split: the coordinator is gone (the process that "
                           "called streaming_split dropped its iterators or shut the "
                           "engine down)") from exc
    over = False  # the server ended the pass (end of share or error)
    try:
        kind, payload = _ask(conn, ("begin", index, os.getpid()))
        if kind == "error":
            over = True
            raise payload
        while True:
            kind, payload = _ask(conn, ("next",))
            if kind == "end":
                over = True
                return
            if kind == "error":
                over = True
                raise payload
            # Map the block now: the server frees it once we ask for the next one, and a
            # mapping outlives the file's removal.
            yield _MappedBlock(read_location(payload))
    finally:
        if not over:  # stopped early: say so, or the server takes us for dead
            with contextlib.suppress(OSError, EOFError):
                conn.send(("close",))
        conn.close()


def _ask(conn: Connection, request: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        conn.send(request)
        reply: tuple[str, Any] = conn.recv()
    except (EOFError, OSError) as exc:
        raise RuntimeError("streaming_split: lost the connection to the coordinator (the "
                           "process that called streaming_split exited?)") from exc
    return reply
