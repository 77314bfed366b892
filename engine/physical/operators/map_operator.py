"""Map operators: a task pool or an actor pool running a :class:`MapTransformer`.

Both bundle input items into tasks, stream each task's outputs into the output queue as
they arrive (only while the downstream queue has room: outputs not taken keep the worker
waiting for credits), and keep output order when ``preserve_order`` is set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import SystemException, user_code_error
from engine.physical.interfaces import PhysicalOperator, item_bytes, item_rows, wait_all
from engine.physical.resource_manager import PoolState
from engine.physical.transform import MapActor, MapTransformer, call_map_actor
from engine.runtime.interfaces import RemoteError, is_block

if TYPE_CHECKING:
    from engine.physical.executor import ExecutorState
    from engine.runtime.interfaces import ActorHandle, TaskHandle


def to_user_error(error: BaseException, op_name: str) -> BaseException:
    """Turn a remote failure into the error the user sees, naming the operator."""
    if isinstance(error, RemoteError):
        message = f"{op_name} failed: {error.type_name}: {error.message}"
        return user_code_error(error.exc_type or Exception, message, op_name,
                               error.traceback)
    return error


@dataclass
class _Running:
    handle: TaskHandle
    task_idx: int
    actor: _PoolActor | None = None
    held: list[Any] = field(default_factory=list)  # outputs kept until the task succeeds


@dataclass
class _PoolActor:
    handle: ActorHandle
    inflight: int = 0
    idle_since: float = field(default_factory=time.monotonic)


class MapOperator(PhysicalOperator):
    """Shared bundling, polling and error handling of both map operators.

    Args:
        transformer: The chain run on each bundle.
        min_rows_per_bundle: Bundle input blocks until a task gets this many rows
            (``batch_size``), so batches span blocks without tiny tasks.
        min_blocks_per_bundle: Bundle at least this many input blocks into a task (cheap
            vectorized stages, where a task's fixed cost would outweigh a block's work).
        concurrency: Most tasks (or actors) in flight, if the user capped it.
    """

    local_ok = False  # its tasks hold no user code (see LocalCluster's driver lane)

    def __init__(self, name: str, input_op: PhysicalOperator, transformer: MapTransformer, *,
                 min_rows_per_bundle: int | None = None, min_blocks_per_bundle: int = 1,
                 max_bundle_bytes: int = 128 << 20, concurrency: int | None = None,
                 max_retries: int = 3, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 memory: float = 0.0, resources: dict[str, float] | None = None) -> None:
        super().__init__(name, [input_op])
        self.transformer = transformer
        self.min_rows_per_bundle = min_rows_per_bundle
        self.min_blocks_per_bundle = max(1, min_blocks_per_bundle)
        self.max_bundle_bytes = max_bundle_bytes
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.memory = memory  # bytes each actor asks for (memory=)
        self.resources = dict(resources or {})  # custom resources (resources=)
        self._running: list[_Running] = []
        self._stopped: list[TaskHandle] = []  # cancelled by shutdown(), maybe still running
        self._next_task_idx = 0
        # Emit in input order even without preserve_order (a seeded shuffle downstream
        # needs its input in a reproducible order).
        self.keep_order = False

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_busy(self) -> int:
        return sum(1 for r in self._running if not r.handle.waiting_for_credit)

    # -- bundling ----------------------------------------------------------------------------
    def _bundle_ready(self) -> bool:
        queue = self.inqueues[0]
        if not queue:
            return False
        if self.all_inputs_done or self.queued_input_bytes >= self.max_bundle_bytes:
            return True
        if len(queue) < self.min_blocks_per_bundle:
            return False
        if not self.min_rows_per_bundle:
            return True
        return sum(item_rows(i) for i in queue) >= self.min_rows_per_bundle

    def _take_bundle(self) -> list[Any]:
        queue = self.inqueues[0]
        bundle = [self.pop_input()]
        if not is_block(bundle[0]):  # read tasks: one per task
            return bundle
        rows = item_rows(bundle[0])
        size = item_bytes(bundle[0])
        target = self.min_rows_per_bundle or 0
        while queue and (rows < target or len(bundle) < self.min_blocks_per_bundle) and \
                size + item_bytes(queue[0]) <= self.max_bundle_bytes:
            item = self.pop_input()
            bundle.append(item)
            rows += item_rows(item)
            size += item_bytes(item)
        return bundle

    # -- polling -----------------------------------------------------------------------------
    def poll(self, state: ExecutorState) -> bool:
        changed = False
        for running in list(self._running):
            head = running is self._running[0]
            ordered = state.preserve_order or self.keep_order
            if ordered and not head:
                break
            if running.handle.has_output and state.output_has_room(self):
                for item in running.handle.take():
                    if state.errors_may_be_skipped:
                        running.held.append(item)  # a failed task must leave no rows
                    else:
                        self.emit(item)
                changed = True
            if running.handle.finished:
                self._running.remove(running)
                self._on_task_done(running, state)
                changed = True
            elif ordered:
                break
        return changed

    def _on_task_done(self, running: _Running, state: ExecutorState) -> None:
        self.stats.tasks_finished += 1
        self.stats.cpu_seconds += running.handle.cpu_seconds
        if running.actor is not None:
            running.actor.inflight -= 1
            if running.actor.inflight == 0:
                running.actor.idle_since = time.monotonic()
        error = running.handle.error
        if error is None:
            for item in running.held:
                self.emit(item)
            return
        running.held.clear()
        # A system failure (lost block, full disk, dead worker) already had its retries in
        # the runtime; it is not the UDF's error and never counts against max_errored_blocks.
        if not isinstance(error, SystemException) and state.may_skip_failed_block():
            self.stats.tasks_failed_skipped += 1
            return
        state.fail(to_user_error(error, self.name))

    def dispatch(self, state: ExecutorState) -> None:
        bundle = self._take_bundle()
        running = self._launch(state, bundle)
        self._running.append(running)
        self.stats.tasks_submitted += 1

    def _launch(self, state: ExecutorState, bundle: list[Any]) -> _Running:
        raise NotImplementedError

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return wait_all([handle.wait for handle in self._stopped], timeout)

    def _task_idx(self) -> int:
        idx = self._next_task_idx
        self._next_task_idx += 1
        return idx

    def shutdown(self) -> None:
        super().shutdown()
        for running in self._running:
            running.handle.cancel()
            self._stopped.append(running.handle)
        self._running.clear()


class TaskPoolMapOperator(MapOperator):
    """Runs each bundle as a task on the shared task workers."""

    @property
    def uses_task_slots(self) -> bool:
        return True

    def can_dispatch(self, state: ExecutorState) -> bool:
        if self.cancelled or not self._bundle_ready():
            return False
        if self.concurrency is not None and self.num_running >= self.concurrency:
            return False
        return state.task_slot_free(self) and state.memory_allows(self)

    def _launch(self, state: ExecutorState, bundle: list[Any]) -> _Running:
        idx = self._task_idx()
        handle = state.cluster.submit(self.transformer, (bundle, idx), name=self.name,
                                      max_retries=self.max_retries,
                                      credits=state.task_credits, notify=state.notify,
                                      local_ok=self.local_ok)
        return _Running(handle, idx)


class ActorPoolMapOperator(MapOperator):
    """Runs bundles on a pool of actors that each built the UDF class once.

    A fixed pool (``min_size == max_size``) starts all actors up front; an autoscaling pool
    starts ``min_size`` and adds an actor whenever every actor has a full queue of calls,
    up to ``max_size`` and only while the machine has the CPUs and GPUs for one more; an
    actor idle for the resource manager's idle timeout is released (down to ``min_size``),
    and every idle actor once the input is exhausted.
    """

    def __init__(self, name: str, input_op: PhysicalOperator, transformer: MapTransformer, *,
                 min_size: int, max_size: int, max_tasks_in_flight_per_actor: int = 4,
                 initial_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(name, input_op, transformer, **kwargs)
        self.min_size = min_size
        self.max_size = max_size
        self.initial_size = initial_size or min_size
        self.max_in_flight = max_tasks_in_flight_per_actor
        self.actors: list[_PoolActor] = []
        self.stats.extra["actors_started"] = 0

    def start(self, state: ExecutorState) -> None:
        super().start(state)
        for _ in range(self.initial_size):
            self._add_actor(state)

    def _add_actor(self, state: ExecutorState) -> None:
        handle = state.cluster.create_actor(MapActor, (self.transformer,),
                                            num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                            max_restarts=self.max_retries,
                                            memory=self.memory, resources=self.resources)
        self.actors.append(_PoolActor(handle))
        self.stats.extra["actors_started"] += 1

    def _pick_actor(self) -> _PoolActor | None:
        live = [a for a in self.actors if a.handle.error is None]
        ready = [a for a in live if a.handle.ready.is_set()] or live
        candidates = [a for a in ready if a.inflight < self.max_in_flight]
        return min(candidates, key=lambda a: a.inflight) if candidates else None

    def pool_state(self) -> PoolState:
        live = [a for a in self.actors if a.handle.error is None]
        now = time.monotonic()
        return PoolState(
            self.min_size, self.max_size, len(self.actors),
            free_slots=sum(max(0, self.max_in_flight - a.inflight) for a in live),
            queued_bundles=self._bundle_ready(),
            idle_seconds=tuple(now - a.idle_since for a in live if a.inflight == 0),
            cpus_per_actor=self.num_cpus, gpus_per_actor=self.num_gpus)

    def can_dispatch(self, state: ExecutorState) -> bool:
        if self.cancelled or not self._bundle_ready():
            return False
        if not state.memory_allows(self):
            return False
        if self._pick_actor() is not None:
            return True
        if state.pool_scale(self.pool_state()) > 0:
            self._add_actor(state)
            return self._pick_actor() is not None
        state.note_waiting_on_cpus(self)
        return False

    def _release_idle(self, state: ExecutorState) -> bool:
        """Kill actors the pool no longer needs; return whether any went."""
        if self.all_inputs_done and not self.has_pending_input:
            idle = [a for a in self.actors if a.inflight == 0]
        else:
            surplus = -state.pool_scale(self.pool_state())
            idle = sorted((a for a in self.actors if a.inflight == 0),
                          key=lambda a: a.idle_since)[:max(0, surplus)]
        for actor in idle:
            actor.handle.kill()
            self.actors.remove(actor)
        return bool(idle)

    def _launch(self, state: ExecutorState, bundle: list[Any]) -> _Running:
        actor = self._pick_actor()
        assert actor is not None, "dispatch without a free actor"
        actor.inflight += 1
        idx = self._task_idx()
        handle = actor.handle.submit(call_map_actor, (bundle, idx), name=self.name,
                                     credits=state.task_credits, notify=state.notify,
                                     max_retries=self.max_retries)
        return _Running(handle, idx, actor)

    def poll(self, state: ExecutorState) -> bool:
        changed = super().poll(state)
        for actor in self.actors:
            err = actor.handle.error
            if err is not None and not self._running and self.has_pending_input and \
                    all(a.handle.error is not None for a in self.actors):
                state.fail(to_user_error(err, self.name))
        if self.actors and self._release_idle(state):
            changed = True
        return changed

    def shutdown(self) -> None:
        super().shutdown()
        for actor in self.actors:
            actor.handle.kill()
        self.actors.clear()

