"""A worker process: runs tasks (or hosts one actor) sent by the driver over ZeroMQ.

A task is ``fn(*args)``; for an actor, ``fn(instance, *args)``. Block references among the
arguments (top level, or lists of them) arrive as :class:`BlockLocation` and are replaced by
zero-copy tables before the call. If the call returns an iterator, each item is sent as it
is produced (tables go to the shared store or inline, anything else is pickled): a task
streams its output. The driver grants credits; a task that used them all waits, so a slow
consumer backpressures the producer.

The worker's first message (READY) carries the session's secret, which it got from the
driver through the zygote's private pipe: the driver unpickles nothing from a peer before
that. The worker holds its session's lock (see ``engine.runtime.session_dirs``) and exits
when the driver process exits, removing the session's directories if it is the last
process of the session to go.

Failures of the system rather than of the UDF (an input block whose file is gone, a block
write that fails: disk full) are reported as ``SYSTEM_ERROR``, never as the UDF's ``ERROR``,
so the driver retries them and never blames (or skips past) user code. Control messages
for tasks this worker no longer knows are dropped, and the function cache is a bounded LRU:
nothing here grows with the number of tasks run.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import select
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any, NoReturn

import cloudpickle
import pyarrow as pa
import zmq

from engine.runtime import protocol as p
from engine.runtime.block_store import (
    BlockLocation,
    direct_spill_path,
    read_location,
    serialize_table,
    write_block_file,
)
from engine.runtime.session_dirs import hold_session, try_remove_session

_ENGINE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# How long a worker whose driver died keeps trying to remove the session's directories
# while other processes of the session still hold them.
_CLEANUP_PATIENCE_S = 5.0


class _Cancelled(Exception):
    pass


class _DriverGone(Exception):
    pass


class _LaneStopped(_DriverGone):
    """The driver lane was told to stop through its pipe (its cluster is shutting down)."""


class _SystemFailure(Exception):
    """The engine's own work on this worker failed (not the UDF): reported as SYSTEM_ERROR."""

    def __init__(self, name: str, message: str, block_id: str = "") -> None:
        super().__init__(message)
        self.name = name
        self.block_id = block_id  # the lost block, for SYS_OBJECT_LOST


def trimmed_traceback(exc: BaseException) -> str:
    """Format ``exc``'s traceback without the engine's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_ENGINE_ROOT)]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def _read_input(loc: BlockLocation) -> Any:
    try:
        return read_location(loc)
    except FileNotFoundError as exc:
        raise _SystemFailure(p.SYS_OBJECT_LOST, f"block {loc.block_id} is lost: its file is "
                             f"in neither the store nor the spill directory",
                             loc.block_id) from exc


def _resolve(arg: Any) -> Any:
    if isinstance(arg, BlockLocation):
        return _read_input(arg)
    if isinstance(arg, list) and arg and isinstance(arg[0], BlockLocation):
        return [_read_input(a) for a in arg]
    return arg


class Worker:
    """The worker's event loop (one per process)."""

    def __init__(self, worker_id: str, address: str, driver_pid: int, store_dir: str,
                 spill_dir: str, inline_max: int, secret: bytes,
                 budget_bytes: int = 1 << 62, stop_fd: int | None = None) -> None:
        self.worker_id = worker_id
        # A thread of the driver (see engine.runtime.driver_lane): stops when ``stop_fd``
        # polls readable.
        self.stop_fd = stop_fd
        self.in_driver = stop_fd is not None
        self.budget_bytes = budget_bytes
        self.store_dir = store_dir
        self.spill_dir = spill_dir
        self.inline_max = inline_max
        self.secret = secret
        self.driver_fd = os.pidfd_open(driver_pid)
        self.lock_fd = hold_session(store_dir)  # OSError: the session is over already
        self._leaving = threading.Lock()
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, worker_id.encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        # The loop below notices the driver's death only between tasks: a long UDF would
        # outlive it. This thread ends the process whatever the main thread is doing.
        if not self.in_driver:
            threading.Thread(target=self._watch_driver, daemon=True,
                             name="engine-driver-watch").start()
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self.poller.register(self.driver_fd, zmq.POLLIN)
        if stop_fd is not None:
            self.poller.register(stop_fd, zmq.POLLIN)
        self.fns: collections.OrderedDict[bytes, Any] = collections.OrderedDict()  # LRU
        self.pending: collections.deque[list[zmq.Frame]] = collections.deque()
        self.pending_keys: set[int] = set()  # tasks received but not started
        self.current: int | None = None  # the task running now
        self.credits: dict[int, int] = {}
        self.cancelled: set[int] = set()
        self.block_counter = 0
        self.instance: Any = None
        self.is_actor = False

    # -- receiving ----------------------------------------------------------------------
    def _recv(self, timeout_ms: int | None) -> list[zmq.Frame] | None:
        events = dict(self.poller.poll(timeout_ms))
        if self.stop_fd is not None and self.stop_fd in events:
            raise _LaneStopped()
        if self.driver_fd in events:
            raise _DriverGone()
        if self.sock in events:
            return self.sock.recv_multipart(copy=False)  # type: ignore[no-any-return]
        return None

    def _absorb_control(self, frames: list[zmq.Frame]) -> bool:
        """Apply a CREDIT/CANCEL message at once; return False for anything else.

        A control message for a task that already ended here is dropped: kept, it would
        sit in ``credits``/``cancelled`` forever."""
        header = p.decode_header(frames[0].buffer)
        if header[0] in (p.CREDIT, p.CANCEL):
            key = header[1]
            if key != self.current and key not in self.pending_keys:
                return True
            if header[0] == p.CREDIT:
                self.credits[key] = self.credits.get(key, 0) + header[2]
            else:
                self.cancelled.add(key)
            return True
        if header[0] == p.TASK:
            self.pending_keys.add(header[1])
        return False

    def _drain_control(self, timeout_ms: int | None = 0) -> None:
        while True:
            frames = self._recv(timeout_ms)
            if frames is None:
                return
            if not self._absorb_control(frames):
                self.pending.append(frames)
            timeout_ms = 0

    def _watch_driver(self) -> None:
        select.select([self.driver_fd], [], [])  # a pidfd polls readable when it exits
        self._leave_after_driver()

    def _leave_after_driver(self) -> NoReturn:
        """The driver died: remove the session's directories if this is the last process
        of the session, and exit at once (whichever thread sees it first)."""
        self._leaving.acquire()  # the other thread, arriving second, waits for the exit
        # A zygote killed moments before the driver may still hold the lock while every
        # worker tries once; so each retries until the session is gone (briefly: workers
        # exit within moments of the driver).
        deadline = time.monotonic() + _CLEANUP_PATIENCE_S
        while not try_remove_session(self.lock_fd, self.store_dir, self.spill_dir) and \
                os.path.exists(self.store_dir) and time.monotonic() < deadline:
            time.sleep(0.02)
        os._exit(0)

    def run(self) -> None:
        self.sock.send_multipart([self.secret, p.encode_header(p.READY, os.getpid())])
        try:
            while True:
                frames = self.pending.popleft() if self.pending else self._recv(None)
                if frames is None:
                    continue
                header = p.decode_header(frames[0].buffer)
                kind = header[0]
                if kind == p.TASK:
                    self.pending_keys.discard(header[1])
                    self._run_task(header, frames)
                elif kind == p.ACTOR_INIT:
                    self._init_actor(frames)
                elif kind == p.SHUTDOWN:
                    return
                else:
                    self._absorb_control(frames)
        except _LaneStopped:
            pass
        except _DriverGone:
            self._leave_after_driver()
        finally:
            self.sock.close(0)
            self.ctx.term()
            if self.in_driver:  # the process goes on: give back what a process exit would
                os.close(self.lock_fd)
                os.close(self.driver_fd)

    # -- actors ---------------------------------------------------------------------------
    def _init_actor(self, frames: list[zmq.Frame]) -> None:
        self.is_actor = True
        try:
            cls, args, kwargs = cloudpickle.loads(frames[1].buffer)
            self.instance = cls(*args, **kwargs)
        except BaseException as exc:
            self._send_error(-1, 0, exc)
            return
        self.sock.send_multipart([p.encode_header(p.ACTOR_READY)])

    # -- tasks ----------------------------------------------------------------------------
    def _function(self, digest: bytes, fn_frame: zmq.Frame) -> Any:
        """The task's function: from the frame (then cached) or from the LRU cache."""
        fn = self.fns.get(digest)
        if fn is not None:
            self.fns.move_to_end(digest)
            return fn
        if not fn_frame.buffer.nbytes:  # the driver mirrors this cache: a miss is re-sent
            raise _SystemFailure(p.SYS_FN_MISSING, "the worker's function cache lost the task's "
                                 "function")
        fn = cloudpickle.loads(fn_frame.buffer)
        self.fns[digest] = fn
        while len(self.fns) > p.FN_CACHE_SIZE:
            self.fns.popitem(last=False)
        return fn

    def _run_task(self, header: tuple[Any, ...], frames: list[zmq.Frame]) -> None:
        _, key, attempt, digest, credits = header
        self.current = key
        self.credits[key] = self.credits.get(key, 0) + credits
        cpu0 = time.process_time()
        try:
            self._drain_control(0)  # a CANCEL sent after this call was queued comes first
            fn = self._function(digest, frames[1])  # even if cancelled: the driver mirrors
            if key in self.cancelled:               # this cache and counts it as sent
                raise _Cancelled()
            args = [_resolve(a) for a in pickle.loads(frames[2].buffer)]
            result = fn(self.instance, *args) if self.is_actor else fn(*args)
            if isinstance(result, Iterator):
                self._stream(key, attempt, result)
            elif result is not None:
                self._emit(key, attempt, 0, result)
        except _Cancelled:
            pass
        except _DriverGone:
            raise
        except _SystemFailure as exc:
            self._end_task(key)
            self.sock.send_multipart([p.encode_header(p.SYSTEM_ERROR, key, attempt, exc.name,
                                                      str(exc), exc.block_id)])
            return
        except BaseException as exc:
            self._end_task(key)
            self._send_error(key, attempt, exc)
            return
        self._end_task(key)
        self.sock.send_multipart([p.encode_header(p.DONE, key, attempt,
                                                  time.process_time() - cpu0)])

    def _end_task(self, key: int) -> None:
        self.current = None
        self.credits.pop(key, None)
        self.cancelled.discard(key)

    def _stream(self, key: int, attempt: int, items: Iterator[Any]) -> None:
        index = 0
        try:
            for item in items:
                self._emit(key, attempt, index, item)
                del item  # written: not held while the task makes its next block
                index += 1
                self.credits[key] -= 1
                self._drain_control(0)
                while self.credits[key] <= 0 and key not in self.cancelled:
                    self._drain_control(None)
                if key in self.cancelled:
                    raise _Cancelled()
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _emit(self, key: int, attempt: int, index: int, item: Any) -> None:
        if isinstance(item, pa.Table):
            schema = item.schema.serialize().to_pybytes()
            if item.nbytes <= self.inline_max:
                payload = serialize_table(item)
                header = p.encode_header(p.OUTPUT, key, attempt, index, p.KIND_INLINE, "",
                                         item.num_rows, item.nbytes)
                self.sock.send_multipart([header, schema, payload], copy=False)
                return
            self.block_counter += 1
            block_id = f"{self.worker_id}-{os.getpid()}-{self.block_counter}"
            path = direct_spill_path(self.store_dir, self.spill_dir, block_id, item.nbytes,
                                     self.budget_bytes)
            try:
                size = write_block_file(path, item)
            except OSError as exc:  # disk full, I/O error: the store's failure, not the UDF's
                with contextlib.suppress(OSError):
                    os.unlink(path + ".tmp")
                raise _SystemFailure(p.SYS_STORE_WRITE, f"writing block {block_id} to the "
                                     f"store failed: {type(exc).__name__}: {exc}") from exc
            header = p.encode_header(p.OUTPUT, key, attempt, index, p.KIND_STORED, block_id,
                                     item.num_rows, size)
            self.sock.send_multipart([header, schema, b""])
            return
        payload = cloudpickle.dumps(item)
        header = p.encode_header(p.OUTPUT, key, attempt, index, p.KIND_VALUE, "", 0,
                                 len(payload))
        self.sock.send_multipart([header, b"", payload], copy=False)

    def _send_error(self, key: int, attempt: int, exc: BaseException) -> None:
        try:
            type_bytes = cloudpickle.dumps(type(exc))
        except Exception:
            type_bytes = b""
        header = p.encode_header(p.ERROR, key, attempt, type(exc).__name__, str(exc),
                                 trimmed_traceback(exc))
        self.sock.send_multipart([header, type_bytes])


def configure_threads(cpu_share: int) -> None:
    """Size pyarrow's pools to this worker's CPU share (N workers on N cores)."""
    pa.set_cpu_count(max(1, cpu_share))
    pa.set_io_thread_count(max(4, cpu_share))
    with contextlib.suppress(NotImplementedError, pa.ArrowNotImplementedError):
        pa.jemalloc_set_decay_ms(0)


def worker_main(worker_id: str, address: str, driver_pid: int, store_dir: str,
                spill_dir: str, inline_max: int, secret: str, cpu_share: int = 1,
                budget_bytes: int = 1 << 62) -> None:
    """Entry point of a forked worker: serve until the driver says stop or dies.

    ``secret`` (hex) authenticates this worker to the driver in its first message.
    """
    configure_threads(cpu_share)
    try:
        worker = Worker(worker_id, address, driver_pid, store_dir, spill_dir, inline_max,
                        bytes.fromhex(secret), budget_bytes)
    except OSError:  # the driver (or its session) was gone before we started
        os._exit(0)
    worker.run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
