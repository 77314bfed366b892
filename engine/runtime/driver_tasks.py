"""Driver tasks: the engine's own tasks on threads of the driver, for an execution the
driver itself consumes.

When the driver iterates a dataset whose every task is the engine's own code (a read of a
built-in format, column pruning, the local shuffle's permutation), a worker process adds
nothing but cost: it writes each block to shared memory (a copy), the driver maps it back
(page faults), and messages travel both ways. :class:`DriverTasks` wraps the cluster and
runs such tasks (``submit(local_ok=True)``) on threads of this process instead; their
blocks stay on the driver's heap as :class:`HeapBlockRef` and go straight to the iterator.
The work itself (Arrow's decoding, takes) runs without the GIL, so the threads use every
core, as a worker per core would.

Everything else (tasks with user code, actors, resources, spilling) goes to the wrapped
cluster. A task's credits bound how far it runs ahead of the consumer, as on a worker; its
errors come back as a worker reports them (:class:`RemoteError`, the engine's frames
trimmed). The bytes of live heap blocks count in :meth:`DriverTasks.store_usage`, so an
execution's memory budget holds as it does for stored blocks.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from engine.runtime.interfaces import (
    ActorHandle,
    BlockRef,
    FailureEvent,
    NodeResources,
    RemoteError,
    Runtime,
    StoreUsage,
    TaskHandle,
    ValueOutput,
)
from engine.runtime.output_stream import OutputStream
from engine.runtime.store_account import StoreAccount
from engine.runtime.worker import trimmed_traceback


class HeapBlockRef(BlockRef):
    """A block a driver task made, held on the driver's heap (no other process reads it).

    Pickled (handed to a worker's task after all) it is stored first, and travels as the
    stored block's location."""

    __slots__ = ("__weakref__", "_account", "_exclusive", "_stored", "_table", "_tasks",
                 "block_id", "input_files", "num_rows", "size_bytes")

    _ids = itertools.count(1)

    def __init__(self, table: pa.Table, tasks: DriverTasks, *, exclusive: bool) -> None:
        self._table: pa.Table | None = table
        self._exclusive = exclusive
        self._tasks = tasks
        self._stored: BlockRef | None = None
        self.block_id = f"heap-{next(self._ids)}"
        self.num_rows = table.num_rows
        self.size_bytes = table.nbytes
        self.input_files: tuple[str, ...] = ()
        self._account: StoreAccount | None = tasks.heap
        tasks.heap.add(self.size_bytes)

    @property
    def schema(self) -> pa.Schema | None:
        return self.get().schema

    @property
    def in_store(self) -> bool:
        return False

    @property
    def exclusive(self) -> bool:
        """Made from files by a task of the one execution whose consumer reads it (a task
        over existing blocks may have passed on a view of one)."""
        return self._exclusive

    def get(self) -> pa.Table:
        """The table itself (no copy)."""
        table = self._table
        if table is None:
            raise ValueError(f"block {self.block_id} was freed")
        return table

    def __reduce__(self) -> str | tuple[Any, ...]:
        if self._stored is None:
            self._stored = self._tasks.runtime.put(self.get())
        return self._stored.__reduce__()

    def release(self) -> None:
        """Let go of the table now (idempotent); the ref must not be read afterwards."""
        account, self._account = self._account, None
        if account is not None:
            self._table = None
            account.remove(self.size_bytes)

    def __del__(self) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"HeapBlockRef({self.block_id}, rows={self.num_rows}, bytes={self.size_bytes})"


class DriverTaskHandle(OutputStream):
    """One task on a driver thread: its outputs, completion and error."""

    def cancel(self) -> None:
        """Stop the task at its next output; outputs not yet taken are dropped."""
        self._drop_all()

    # -- the task's thread --------------------------------------------------------------
    def _offer(self, item: Any) -> bool:
        """Push ``item``, then wait while the consumer holds every credit; False once the
        task is cancelled."""
        self._push(item)
        with self._cond:
            while len(self._outputs) >= self.credits and not self._cancelled:
                self._cond.wait()
            return not self._cancelled


class DriverTasks:
    """A :class:`~engine.runtime.interfaces.Runtime` that runs ``local_ok`` tasks on
    threads of this process and passes everything else to ``runtime``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.num_cpus = runtime.num_cpus
        self.num_gpus = runtime.num_gpus
        self.heap = StoreAccount()
        self._keys = itertools.count(1)
        self._running = 0  # tasks on this process's threads now
        self._running_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), *, name: str = "",
               max_retries: int = 3, credits: int | None = None,
               notify: Callable[[], None] | None = None,
               local_ok: bool = False) -> TaskHandle:
        """Run ``fn(*args)`` on a thread of this process if ``local_ok``; else on the
        wrapped runtime."""
        if not local_ok:
            return self.runtime.submit(fn, args, name=name, max_retries=max_retries,
                                       credits=credits, notify=notify)
        handle = DriverTaskHandle(next(self._keys), name or "task", notify,
                                  max(1, credits or 2))
        self._count_running(+1)
        threading.Thread(target=self._run, args=(handle, fn, args), daemon=True,
                         name=f"engine-driver-task-{handle.key}").start()
        return handle

    def _count_running(self, change: int) -> None:
        """Tell the cluster when this process's threads start and stop running tasks (its
        zygote, if still starting, waits meanwhile: see ``LocalCluster.driver_busy``)."""
        busy = getattr(self.runtime, "driver_busy", None)
        with self._running_lock:  # held while telling: a pause never overtakes a resume
            before = self._running
            self._running += change
            if busy is not None and (before == 0) != (self._running == 0):
                busy(self._running > 0)

    def _run(self, handle: DriverTaskHandle, fn: Callable[..., Any],
             args: tuple[Any, ...]) -> None:
        try:
            self._run_task(handle, fn, args)
        finally:
            self._count_running(-1)

    def _run_task(self, handle: DriverTaskHandle, fn: Callable[..., Any],
                  args: tuple[Any, ...]) -> None:
        started = time.thread_time()
        error: BaseException | None = None
        exclusive = not any(map(_holds_blocks, args))
        try:
            resolved = [_resolve(a) for a in args]  # a lost input block: the system's error
        except BaseException as exc:
            handle._finish(exc, time.thread_time() - started)
            return
        del args
        try:
            result = fn(*resolved)
            del resolved
            if isinstance(result, Iterator):
                self._stream(handle, result, exclusive)
            elif result is not None:
                handle._push(self._output(result, exclusive))
        except BaseException as exc:  # reported as a worker reports a task's error
            error = RemoteError(type(exc), type(exc).__name__, str(exc),
                                trimmed_traceback(exc))
        handle._finish(error, time.thread_time() - started)

    def _stream(self, handle: DriverTaskHandle, items: Iterator[Any], exclusive: bool) -> None:
        try:
            for item in items:
                output = self._output(item, exclusive)
                del item  # passed on: not held while the task makes its next block
                if not handle._offer(output):
                    return
                del output
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _output(self, item: Any, exclusive: bool) -> Any:
        if isinstance(item, pa.Table):
            return HeapBlockRef(item, self, exclusive=exclusive)
        return ValueOutput(item, 0)

    # -- blocks ---------------------------------------------------------------------------
    def put(self, table: pa.Table) -> BlockRef:
        """Keep a block the driver made (a limit's slice of any block) on the heap too."""
        return HeapBlockRef(table, self, exclusive=False)

    def get(self, refs: list[BlockRef]) -> list[pa.Table]:
        return [ref.get() for ref in refs]

    def free(self, refs: list[BlockRef]) -> None:
        heap = [r for r in refs if isinstance(r, HeapBlockRef)]
        for ref in heap:
            ref.release()
        self.runtime.free([r for r in refs if not isinstance(r, HeapBlockRef)])

    def keep(self, ref: BlockRef, owner: str | None = None) -> None:
        if not isinstance(ref, HeapBlockRef):
            self.runtime.keep(ref, owner)

    def store_usage(self) -> StoreUsage:
        """The store's usage with the heap blocks' bytes added."""
        usage = self.runtime.store_usage()
        return StoreUsage(usage.used_bytes + self.heap.used_bytes, usage.budget_bytes,
                          max(usage.peak_bytes, self.heap.peak_bytes),
                          usage.spilled_bytes_total)

    def spill_to(self, target_bytes: int) -> int:
        return self.runtime.spill_to(target_bytes)

    def take_spilled_bytes(self, owner: str) -> int:
        return self.runtime.take_spilled_bytes(owner)

    # -- everything else: the wrapped runtime's ------------------------------------------
    def create_actor(self, cls: type, args: tuple[Any, ...] = (),
                     kwargs: dict[str, Any] | None = None, *, num_cpus: float = 1,
                     num_gpus: float = 0, max_restarts: int = 3,
                     env: dict[str, str] | None = None, memory: float = 0,
                     resources: dict[str, float] | None = None) -> ActorHandle:
        return self.runtime.create_actor(cls, args, kwargs, num_cpus=num_cpus,
                                         num_gpus=num_gpus, max_restarts=max_restarts,
                                         env=env, memory=memory, resources=resources)

    def cluster_resources(self) -> dict[str, float]:
        return self.runtime.cluster_resources()

    def available_resources(self) -> dict[str, float]:
        return self.runtime.available_resources()

    def nodes(self) -> list[NodeResources]:
        return self.runtime.nodes()

    def add_failure_listener(self, listener: Callable[[FailureEvent], None]) -> \
            Callable[[], None]:
        return self.runtime.add_failure_listener(listener)

    def shutdown(self) -> None:
        self.runtime.shutdown()


def _holds_blocks(arg: Any) -> bool:
    return isinstance(arg, BlockRef) or (isinstance(arg, list) and any(
        isinstance(a, BlockRef) for a in arg))


def _resolve(arg: Any) -> Any:
    """A task's argument as a worker gets it: block references (or lists of them) read."""
    if isinstance(arg, BlockRef):
        return arg.get()
    if isinstance(arg, list) and arg and isinstance(arg[0], BlockRef):
        return [a.get() for a in arg]
    return arg
