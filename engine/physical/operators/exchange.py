"""ExchangeOperator: the map and reduce stages of sort, groupby, join, shuffle, repartition
and zip, as tasks on the workers.

Map stage: each input bundle becomes a task that cuts it into ``P`` partitions (by hash,
sorted range or at random, see ``exchange.tasks``), one store block per partition. Those
blocks are marked spillable as soon as they arrive: they must be kept until the reduce,
so past the memory budget they go to disk instead of stalling the pipeline. The map stage
streams (a bundle is partitioned as soon as it arrives) except where the partitioning
needs all input first: a sort samples every block for its range boundaries, and
repartition/zip cut by global row positions. A streaming map stage may run the task-pool
maps before it in the same task (``fused``, see ``exchange.fused``): their inputs (read
tasks or blocks) arrive here, and their outputs never reach the store; a map stage after
the exchange may run in its reduce tasks (``post``) the same way.

Reduce stage: once every map task finished, one task per partition merges its pieces (in
input order, which keeps sorts stable) and streams its output blocks. Partitions are
emitted in partition order, so a sort's output is globally ordered; a partition's pieces
are freed as soon as its reduce task finished. The driver only ever holds references and
small samples; no rows pass through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.physical.exchange.fused import FusedExchangeMap, FusedExchangeReduce
from engine.physical.interfaces import PhysicalOperator, item_bytes
from engine.physical.operators.map_operator import to_user_error
from engine.runtime.interfaces import BlockRef, ValueOutput

if TYPE_CHECKING:
    from engine.physical.exchange.plans import ExchangePlan
    from engine.physical.executor import ExecutorState
    from engine.physical.transform import MapTransformer
    from engine.runtime.interfaces import TaskHandle


@dataclass
class _MapTask:
    handle: TaskHandle
    side: int
    seq: int
    outputs: list[Any] = field(default_factory=list)


@dataclass
class _ReduceTask:
    handle: TaskHandle
    index: int
    outputs: list[Any] = field(default_factory=list)


class ExchangeOperator(PhysicalOperator):
    """Runs an :class:`~engine.physical.exchange.plans.ExchangePlan` as map and reduce
    tasks (see the module docstring)."""

    def __init__(self, name: str, inputs: list[PhysicalOperator], plan: ExchangePlan, *,
                 max_retries: int = 3, max_bundle_bytes: int = 128 << 20,
                 fused: list[MapTransformer | None] | None = None) -> None:
        super().__init__(name, inputs)
        self.plan = plan
        self.max_retries = max_retries
        self.max_bundle_bytes = max_bundle_bytes
        # Per side, the transform of a map stage fused into the map tasks (its inputs, read
        # tasks or blocks, arrive here instead of its outputs).
        self.fused: list[MapTransformer | None] = fused or [None for _ in inputs]
        self._map_fns: dict[int, Any] = {}  # one object per side: pickled once
        self.post: MapTransformer | None = None  # a map stage run in the reduce tasks
        self._reduce_fn: Any = None
        self.num_partitions: int | None = None if plan.gather_first else plan.start([], [])
        self._waiting: list[list[tuple[int, BlockRef]]] = [[] for _ in inputs]
        self._seq = 0
        self._maps: list[_MapTask] = []
        # partition -> side -> [(seq, ref)]
        self._parts: list[list[list[tuple[int, Any]]]] = []
        self._reduce_queue: list[tuple[int, list[list[Any]], Any]] = []
        self._reduces: list[_ReduceTask] = []
        self._results: dict[int, list[Any]] = {}
        self._next_emit = 0
        self._reduce_started = False
        self._done = False
        self._stopped: list[TaskHandle] = []
        for key in ("map tasks", "reduce tasks", "partitions", "bytes shuffled"):
            self.stats.extra[key] = 0

    def fuse_after(self, transformer: MapTransformer, name: str) -> None:
        """Run a map stage that follows this exchange inside its reduce tasks."""
        self.post = transformer
        self.name = self.stats.name = f"{self.name}->{name}"

    # -- counts ----------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self._maps) + len(self._reduces)

    @property
    def num_busy(self) -> int:
        handles = [t.handle for t in self._maps] + [t.handle for t in self._reduces]
        return sum(1 for h in handles if not h.waiting_for_credit)

    @property
    def uses_task_slots(self) -> bool:
        return True

    @property
    def has_pending_input(self) -> bool:
        """Input taken off the queue but not yet in a task counts too: the executor gives
        CPUs to executions with pending work (without this, one task at a time ran)."""
        return super().has_pending_input or self._map_ready() or bool(self._reduce_queue)

    def completed(self) -> bool:
        return self.cancelled or self._done

    # -- polling ---------------------------------------------------------------------------
    def poll(self, state: ExecutorState) -> bool:
        changed = self._absorb_inputs(state)
        changed |= self._poll_maps(state)
        if not self._reduce_started and self._map_stage_over():
            self._start_reduce(state)
            changed = True
        changed |= self._poll_reduces(state)
        while self._next_emit in self._results:
            for item in self._results.pop(self._next_emit):
                self.emit(item)
            self._next_emit += 1
            changed = True
        if self._reduce_started and not self._done and self.num_partitions is not None and \
                self._next_emit >= self.num_partitions:
            self._done = True
            self.finish_stats()
            changed = True
        return changed

    def _absorb_inputs(self, state: ExecutorState) -> bool:
        changed = False
        for side, queue in enumerate(self.inqueues):
            while queue:
                item = self.pop_input(side)
                changed = True
                if isinstance(item, ValueOutput):
                    continue
                if isinstance(item, BlockRef):
                    state.keep(item, self)
                    try:
                        self.plan.observe(side, item)
                    except (ValueError, TypeError) as exc:  # a user error: a missing key
                        state.fail(exc)
                else:  # a read task: only a fused map stage takes those
                    assert self.fused[side] is not None, f"{self.name} got {item!r}"
                self._waiting[side].append((self._seq, item))
                self._seq += 1
        if self.num_partitions is None and self.all_inputs_done:
            counts = [len(w) for w in self._waiting]
            rows = [sum(r.num_rows for _, r in w) for w in self._waiting]
            try:
                self.num_partitions = self.plan.start(counts, rows)
            except (ValueError, TypeError) as exc:  # e.g. zip of unequal row counts
                state.fail(exc)
            changed = True
        if self.num_partitions is not None and not self._parts:
            self._parts = [[[] for _ in self.inputs] for _ in range(self.num_partitions)]
        return changed

    def _map_stage_over(self) -> bool:
        if not self.all_inputs_done or self.num_partitions is None:
            return False
        return not self.plan.has_map_stage or (not any(self._waiting) and not self._maps)

    def _poll_maps(self, state: ExecutorState) -> bool:
        changed = False
        for task in list(self._maps):
            if task.handle.has_output:
                for item in task.handle.take():
                    state.keep(item, self)
                    task.outputs.append(item)
                changed = True
            if task.handle.finished:
                self._maps.remove(task)
                self._on_map_done(task, state)
                changed = True
        return changed

    def _on_map_done(self, task: _MapTask, state: ExecutorState) -> None:
        self.stats.tasks_finished += 1
        self.stats.cpu_seconds += task.handle.cpu_seconds
        if task.handle.error is not None:
            state.fail(to_user_error(task.handle.error, self.name))
        assert len(task.outputs) == self.num_partitions, \
            f"a map task of {self.name} gave {len(task.outputs)} partitions, not " \
            f"{self.num_partitions}"
        for index, ref in enumerate(task.outputs):
            self._parts[index][task.side].append((task.seq, ref))
            self.stats.extra["bytes shuffled"] += item_bytes(ref)

    def _start_reduce(self, state: ExecutorState) -> None:
        self._reduce_started = True
        assert self.num_partitions is not None, "partitions are known before the reduce"
        self.stats.extra["partitions"] = self.num_partitions
        if self.plan.has_map_stage:
            for index in range(self.num_partitions):
                sides = [[ref for _, ref in sorted(pieces, key=lambda p: p[0])]
                         for pieces in self._parts[index]]
                self._reduce_queue.append((index, sides, self.plan.reduce_extra(index)))
        else:
            refs = [[ref for _, ref in w] for w in self._waiting]
            self._reduce_queue = [(i, sides, extra) for i, (sides, extra)
                                  in enumerate(self.plan.direct_partitions(refs))]
            self._waiting = [[] for _ in self.inputs]
        self._parts = []
        self._reduce_queue.reverse()  # popped from the end: partition 0 first

    def _poll_reduces(self, state: ExecutorState) -> bool:
        changed = False
        for task in list(self._reduces):
            if task.handle.has_output:
                for item in task.handle.take():
                    state.keep(item, self)
                    task.outputs.append(item)
                changed = True
            if task.handle.finished:
                self._reduces.remove(task)
                self.stats.tasks_finished += 1
                self.stats.cpu_seconds += task.handle.cpu_seconds
                if task.handle.error is not None:
                    state.fail(to_user_error(task.handle.error, self.name))
                self._results[task.index] = task.outputs
                changed = True
        return changed

    # -- dispatching -----------------------------------------------------------------------
    def _map_ready(self) -> bool:
        if not self.plan.has_map_stage or self.num_partitions is None:
            return False
        return any(self._waiting)

    def can_dispatch(self, state: ExecutorState) -> bool:
        if self.cancelled:
            return False
        if not self._map_ready() and not self._reduce_queue:
            return False
        return state.task_slot_free(self) and state.memory_allows(self)

    def dispatch(self, state: ExecutorState) -> None:
        if self._map_ready():
            self._dispatch_map(state)
        else:
            self._dispatch_reduce(state)

    def _map_fn(self, side: int) -> Any:
        fn = self._map_fns.get(side)
        if fn is None:
            fn = self.plan.map_fn(side)
            pre = self.fused[side]
            if pre is not None:
                fn = FusedExchangeMap(pre, fn)
            self._map_fns[side] = fn
        return fn

    def _dispatch_map(self, state: ExecutorState) -> None:
        side = next(i for i, w in enumerate(self._waiting) if w)
        waiting = self._waiting[side]
        bundle = [waiting.pop(0)]
        size = item_bytes(bundle[0][1])
        limit = self.max_bundle_bytes
        if self.all_inputs_done:  # all known: about two map tasks a CPU
            queued = sum(item_bytes(r) for _, r in waiting) + size
            limit = min(limit, max(1, queued // max(1, 2 * state.cluster.num_cpus)))
        # A fused stage reads one read task a task; a seeded plan fused over blocks takes one
        # block a task, so its random draws never depend on how blocks were bundled.
        single = self.fused[side] is not None and \
            (not isinstance(bundle[0][1], BlockRef) or self.plan.seeded)
        while not single and waiting and size + item_bytes(waiting[0][1]) <= limit and \
                (self.all_inputs_done or len(waiting) > 1) and \
                isinstance(waiting[0][1], BlockRef):
            size += item_bytes(waiting[0][1])
            bundle.append(waiting.pop(0))
        assert self.num_partitions is not None, "partitions are known before maps start"
        handle = state.cluster.submit(self._map_fn(side),
                                      ([r for _, r in bundle], [s for s, _ in bundle]),
                                      name=f"{self.name}.map", max_retries=self.max_retries,
                                      credits=self.num_partitions + 1, notify=state.notify)
        self._maps.append(_MapTask(handle, side, bundle[0][0]))
        self.stats.tasks_submitted += 1
        self.stats.extra["map tasks"] += 1

    def _dispatch_reduce(self, state: ExecutorState) -> None:
        index, sides, extra = self._reduce_queue.pop()
        if self._reduce_fn is None:
            self._reduce_fn = self.plan.reduce_fn()
            if self.post is not None:
                self._reduce_fn = FusedExchangeReduce(self._reduce_fn, self.post)
        handle = state.cluster.submit(self._reduce_fn, (*sides, index, extra),
                                      name=f"{self.name}.reduce",
                                      max_retries=self.max_retries,
                                      credits=state.task_credits, notify=state.notify)
        self._reduces.append(_ReduceTask(handle, index))
        self.stats.tasks_submitted += 1
        self.stats.extra["reduce tasks"] += 1

    # -- stopping --------------------------------------------------------------------------
    def shutdown(self) -> None:
        super().shutdown()
        for handle in [t.handle for t in self._maps] + [t.handle for t in self._reduces]:
            handle.cancel()
            self._stopped.append(handle)
        self._maps.clear()
        self._reduces.clear()
        self._parts = []
        self._waiting = [[] for _ in self.inputs]
        self._reduce_queue = []
        self._results = {}

    def wait_stopped(self, timeout: float | None = None) -> bool:
        from engine.physical.interfaces import wait_all

        return wait_all([h.wait for h in self._stopped], timeout)

    def describe(self) -> str:
        fused = " (map side fused with the maps before it)" if any(self.fused) else ""
        if self.post is not None:
            fused += " (reduce side fused with the maps after it)"
        return f"{self.plan.describe()} partitions={self.num_partitions or 'at run time'}" \
            f"{fused}"

