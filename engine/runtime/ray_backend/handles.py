"""Handles of Ray tasks and actors, as the physical layer sees them (the runtime contract).

Each task handle has a driver thread that reads the task's stream of records (see
:mod:`.remote`) only while the handle holds fewer outputs than its credits. Ray's generator
backpressure (a bound on objects produced but not yet read by the caller) then stops the
producer: outputs nobody takes stop the task, as on the local backend.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cloudpickle

from engine.errors import ActorDiedError, SystemException
from engine.runtime.interfaces import RemoteError, ValueOutput
from engine.runtime.output_stream import OutputStream
from engine.runtime.ray_backend.errors import from_ray_error
from engine.runtime.ray_backend.refs import RayBlockRef

if TYPE_CHECKING:
    from engine.runtime.ray_backend.cluster import RayCluster

_POLL_S = 0.5  # how often a reading thread looks up from a stalled stream for a cancel


def remote_error(record: tuple[Any, ...]) -> RemoteError:
    """The ``RemoteError`` of an ``("error", ...)`` record."""
    _, type_bytes, type_name, message, tb = record
    try:
        exc_type = cloudpickle.loads(type_bytes) if type_bytes else None
    except Exception:  # the type does not load here: its name still tells
        exc_type = None
    return RemoteError(exc_type, type_name, message, tb)


class RayTaskHandle(OutputStream):
    """The driver's view of one Ray task (or actor call): outputs, completion, error."""

    def __init__(self, key: int, name: str, generator: Any, cluster: RayCluster,
                 notify: Callable[[], None] | None, credits: int,
                 on_done: Callable[[], None] | None = None,
                 actor_error: Callable[[], BaseException | None] | None = None) -> None:
        super().__init__(key, name, notify, credits)
        self._gen = generator
        self._cluster = cluster
        self._on_done = on_done
        self._actor_error = actor_error  # an actor call fails as its actor did
        self._thread = threading.Thread(target=self._read, name=f"engine-ray-{name}",
                                        daemon=True)
        self._thread.start()

    # -- the reading thread --------------------------------------------------------------
    def _next_ref(self) -> Any:
        """The stream's next object ref (``None`` at its end or once cancelled)."""
        while True:
            if self._cancelled:
                return None
            try:
                ref = self._gen._next_sync(timeout_s=_POLL_S)
            except StopIteration:
                return None
            if not ref.is_nil():
                return ref

    def _read(self) -> None:
        """Take the task's outputs until it ends, then finish with its error (if any)."""
        import ray

        try:
            error = self._read_records()
        except ray.exceptions.TaskCancelledError:
            error = None
        except Exception as exc:
            error = self._ray_failure(exc)
        self._finish(error)

    def _read_records(self) -> BaseException | None:
        """Push the task's outputs as they stream in, within the credits; return the error
        its error record carries (None when it has none)."""
        import ray

        while True:
            with self._cond:
                while len(self._outputs) >= self.credits and not self._cancelled:
                    self._cond.wait()
            ref = self._next_ref()
            if ref is None:
                return None
            record = ray.get(ref)
            if record[0] == "block":
                block = self._next_ref()
                if block is None:
                    return None
                self._take_record(record, block)
            else:
                error = self._take_record(record, None)
                if error is not None:
                    return error

    def _take_record(self, record: tuple[Any, ...], block: Any) -> BaseException | None:
        """Push the output of one record (``block``: the block object of a block record);
        return the task's error when it is an error record."""
        kind = record[0]
        if kind == "block":
            self._push(RayBlockRef(block, record[1], record[2], schema_bytes=record[3],
                                   account=self._cluster.account))
        elif kind == "value":
            self._push(ValueOutput(cloudpickle.loads(record[1]), len(record[1])))
        elif kind == "error":
            return remote_error(record)
        elif kind == "done":
            self.cpu_seconds = record[1]
        return None

    def _ray_failure(self, exc: BaseException) -> BaseException | None:
        """The task's error for an exception Ray raised while reading it."""
        owner = self._actor_error() if self._actor_error is not None else None
        return None if self._cancelled else \
            owner if isinstance(owner, RemoteError) else \
            from_ray_error(exc, f"task {self.name}")

    def _on_end(self) -> None:
        self._gen = None

    def _finish(self, error: BaseException | None = None, cpu_seconds: float = 0.0) -> None:
        self.cpu_seconds = cpu_seconds or self.cpu_seconds
        if not self._end(error):
            return
        if isinstance(error, SystemException):
            self._cluster.report_failure(error, f"task {self.name}")
        if self._on_done is not None:
            self._on_done()
        if self._notify is not None:
            self._notify()

    # -- the consumer --------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the task (``ray.cancel``); outputs not yet taken are dropped."""
        import ray

        gen = self._gen
        dropped = self._drop_all()
        if dropped is None:
            return
        if gen is not None and ray.is_initialized():
            with contextlib.suppress(Exception):
                ray.cancel(gen)
        del dropped
        # The task is stopped for the engine now; Ray ends it in the background.
        self._finish(None)


class RayActorHandle:
    """The driver's view of one Ray actor hosting a user object."""

    def __init__(self, actor_id: str, actor: Any, cluster: RayCluster, num_cpus: float,
                 max_task_retries: int) -> None:
        self.actor_id = actor_id
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.restarts = 0
        self.num_cpus = num_cpus
        self._actor = actor
        self._cluster = cluster
        self._max_task_retries = max_task_retries
        threading.Thread(target=self._await_ready, name=f"engine-ray-{actor_id}",
                         daemon=True).start()

    def _await_ready(self) -> None:
        import ray

        try:
            if not ray.is_initialized():  # shut down already: a call would start a new Ray
                raise ActorDiedError(f"actor {self.actor_id}: Ray is shut down")
            record = ray.get(self._actor.ready.remote())
            if record is not None:  # the constructor raised: the actor is of no use
                self._fail(remote_error(record))
        except Exception as exc:
            self._fail(from_ray_error(exc, f"starting actor {self.actor_id}"))
        self.ready.set()

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.kill()

    @property
    def alive(self) -> bool:
        return self.error is None and self._actor is not None

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), *, name: str = "",
               credits: int | None = None, notify: Callable[[], None] | None = None,
               max_retries: int = 3) -> RayTaskHandle:
        """Run ``fn(instance, *args)`` on the actor after every earlier call."""
        if self._actor is None:
            raise self.error or ActorDiedError(f"actor {self.actor_id} was killed")
        return self._cluster.submit_actor_call(self._actor, fn, args, name=name or "actor-call",
                                               credits=credits, notify=notify,
                                               actor_error=lambda: self.error)

    def kill(self) -> None:
        """Stop the actor; calls still queued fail."""
        import ray

        actor, self._actor = self._actor, None
        if actor is None:
            return
        if self.error is None:
            self.error = ActorDiedError(f"actor {self.actor_id} was killed")
        self._cluster.forget_actor(self)
        if ray.is_initialized():
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
