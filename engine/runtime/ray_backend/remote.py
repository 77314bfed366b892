"""What runs inside Ray's workers: the task wrapper and the actor that hosts a user object.

A task is ``fn(*args)`` (for an actor, ``fn(instance, *args)``) as on a local worker:
:class:`~.refs.BlockArg` arguments (top level, or lists of them) become zero-copy tables
first. Each output is yielded as a small record, and a block's record is followed by the
block itself, so the driver knows rows, bytes and schema from the record and never fetches
the block to learn them (records, in yield order)::

    ("block", num_rows, size_bytes, schema_bytes)   then the pa.Table
    ("value", pickled_value)
    ("error", pickled_type, type_name, message, traceback)   a UDF raised: the last record
    ("done", cpu_seconds)                                    the last record otherwise

A UDF's exception is caught here and yielded, so the driver builds the same typed error as
on the local backend and Ray does not retry it (retries are for system failures).

Over Ray Client, which cannot stream generator returns, a task runs as a *dynamic* generator
instead (:func:`run_task_listed`): it yields each block as its own object (owned by the
caller, as a streamed one is) and, last, the list of every record in order, a block's record
standing for the next block object (see :mod:`.handles_client`).
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pyarrow as pa

from engine.runtime.ray_backend.refs import BlockArg
from engine.runtime.worker import configure_threads, trimmed_traceback


class CodeCache:
    """Functions a worker process has unpickled, by digest: each is shipped once (as an
    object in the store) and loaded once per process, not once per task."""

    def __init__(self) -> None:
        self._fns: dict[bytes, Any] = {}
        self._lock = threading.Lock()
        self.configured = False

    def load(self, digest: bytes, box: list[Any]) -> Any:
        with self._lock:
            fn = self._fns.get(digest)
        if fn is None:
            import ray

            if not self.configured:  # first task of this process: size pyarrow's pools
                self.configured = True
                configure_threads(max(1, int(ray.get_runtime_context()
                                             .get_assigned_resources().get("CPU", 1))))
            fn = cloudpickle.loads(ray.get(box[0]))  # boxed: Ray must not resolve it for us
            with self._lock:
                if len(self._fns) > 256:
                    self._fns.clear()
                self._fns[digest] = fn
        return fn


_CODE = CodeCache()  # one per worker process: the cache's owner is the process itself


def _resolve(args: tuple[Any, ...]) -> list[Any]:
    """Replace block arguments by tables, fetching every block of the task at once."""
    import ray

    wanted: list[Any] = []
    for arg in args:
        if isinstance(arg, BlockArg):
            wanted.append(arg.object_ref)
        elif isinstance(arg, list) and arg and isinstance(arg[0], BlockArg):
            wanted.extend(a.object_ref for a in arg)
    tables = iter(ray.get(wanted)) if wanted else iter(())
    out: list[Any] = []
    for arg in args:
        if isinstance(arg, BlockArg):
            out.append(next(tables))
        elif isinstance(arg, list) and arg and isinstance(arg[0], BlockArg):
            out.append([next(tables) for _ in arg])
        else:
            out.append(arg)
    return out


def stream(fn: Any, args: tuple[Any, ...], bound: tuple[Any, ...] = ()) -> Iterator[Any]:
    """Run ``fn`` and yield its outputs as records (see the module docstring)."""
    cpu0 = time.process_time()
    try:
        resolved = _resolve(args)
        result = fn(*bound, *resolved)
        items = result if isinstance(result, Iterator) else \
            iter(() if result is None else (result,))
        for item in items:
            if isinstance(item, pa.Table):
                yield ("block", item.num_rows, item.nbytes,
                       item.schema.serialize().to_pybytes())
                yield item
            else:
                yield ("value", cloudpickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        yield _error_record(exc)
        return
    yield ("done", time.process_time() - cpu0)


def _error_record(exc: BaseException) -> tuple[Any, ...]:
    try:
        type_bytes = cloudpickle.dumps(type(exc))
    except Exception:
        type_bytes = b""
    return ("error", type_bytes, type(exc).__name__, str(exc), trimmed_traceback(exc))


def run_task(digest: bytes, box: list[Any], args: tuple[Any, ...]) -> Iterator[Any]:
    """The body of every task (wrapped by ``ray.remote`` in the driver)."""
    try:
        fn = _CODE.load(digest, box)
    except Exception as exc:
        yield _error_record(exc)
        return
    yield from stream(fn, args)


def listed(records: Iterator[Any]) -> Iterator[Any]:
    """``records`` as a dynamic generator yields them: blocks first, one object each, then
    the list of the records (a block's own record stands in for it)."""
    summary: list[Any] = []
    for record in records:
        if isinstance(record, pa.Table):
            yield record
        else:
            summary.append(record)
    yield summary


def run_task_listed(digest: bytes, box: list[Any], args: tuple[Any, ...]) -> Iterator[Any]:
    """:func:`run_task` for Ray Client (``num_returns="dynamic"``)."""
    yield from listed(run_task(digest, box, args))


class ActorHost:
    """A Ray actor holding one user object built from ``cls(*args, **kwargs)``."""

    def __init__(self, code: bytes) -> None:
        import ray

        configure_threads(max(1, int(ray.get_runtime_context()
                                     .get_assigned_resources().get("CPU", 1))))
        self.instance: Any = None
        self.init_error: tuple[Any, ...] | None = None
        try:  # a constructor that raises is a user error, not a reason to restart
            cls, args, kwargs = cloudpickle.loads(code)
            self.instance = cls(*args, **kwargs)
        except Exception as exc:
            self.init_error = _error_record(exc)

    def call(self, digest: bytes, box: list[Any], args: tuple[Any, ...]) -> Iterator[Any]:
        if self.init_error is not None:  # every call fails as the constructor did
            yield self.init_error
            return
        try:
            fn = _CODE.load(digest, box)
        except Exception as exc:
            yield _error_record(exc)
            return
        yield from stream(fn, args, (self.instance,))

    def call_listed(self, digest: bytes, box: list[Any], args: tuple[Any, ...]) -> Iterator[Any]:
        """:meth:`call` for Ray Client (``num_returns="dynamic"``)."""
        yield from listed(self.call(digest, box, args))

    def ready(self) -> tuple[Any, ...] | None:
        """``None`` once the object is built, or the constructor's error record."""
        return self.init_error
