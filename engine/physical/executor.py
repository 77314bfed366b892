"""The streaming executor: one driver thread that moves items through bounded queues.

Each step it (1) collects finished work from every operator, (2) moves outputs to the next
operator's input queue or to the consumer, (3) marks inputs done, and (4) starts new work,
most-downstream operator first (finishing work frees memory). Queues are bounded in bytes;
an operator whose downstream queue is full stops taking its tasks' outputs, which stops
their workers (credits), so a slow consumer backpressures the whole pipeline. Task slots
are one per CPU and a task stopped on credits does not hold one: an upstream stage blocked
on a full queue can never keep the stages below it from running.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from engine.context import DataContext
from engine.errors import ExecutionTimeoutError
from engine.physical.failure_log import log_failure
from engine.physical.interfaces import PhysicalOperator, item_bytes, wait_all
from engine.physical.no_progress import NoProgressGuard, check_timeout
from engine.physical.progress import ProgressBars
from engine.physical.resource_manager import ExecutionUsage, PoolState, ResourceManager, pool_scale
from engine.runtime.interfaces import Runtime, is_block

logger = logging.getLogger(__name__)

_DONE = object()


class ExecutorState:
    """What operators may ask of the executor while it runs them."""

    def __init__(self, executor: StreamingExecutor) -> None:
        self._ex = executor
        self.cluster = executor.cluster
        self.preserve_order = executor.ctx.execution_options.preserve_order
        self.task_credits = executor.ctx.task_output_credits
        self.errors_skipped = 0
        # With max_errored_blocks set, a task's outputs wait for its success.
        self.errors_may_be_skipped = executor.ctx.max_errored_blocks != 0

    def notify(self) -> None:
        self._ex.wake.set()

    def output_has_room(self, op: PhysicalOperator) -> bool:
        return self._ex.downstream_bytes(op) < self._ex.queue_cap

    def task_slot_free(self, op: PhysicalOperator) -> bool:
        free = self._ex.task_slot_free(op)
        if not free:
            self._ex.blocked[id(op)] = "cpu"
        return free

    def pool_scale(self, pool: PoolState) -> int:
        """Actors to add to (or release from) a pool; growing needs free CPUs and GPUs."""
        free = self.cluster.available_resources()
        return pool_scale(pool, free.get("CPU", 0.0), free.get("GPU", 0.0),
                          self._ex.resources.idle_timeout_s)

    def note_waiting_on_cpus(self, op: PhysicalOperator) -> None:
        """Record that ``op`` has work but no CPU (a full actor pool that cannot grow)."""
        self._ex.blocked[id(op)] = "cpu"

    def memory_allows(self, op: PhysicalOperator) -> bool:
        allows = self._ex.memory_allows(op)
        if not allows:
            self._ex.blocked[id(op)] = "memory"
        return allows

    def may_skip_failed_block(self) -> bool:
        limit = self._ex.ctx.max_errored_blocks
        if limit == 0 or (limit > 0 and self.errors_skipped >= limit):
            return False
        self.errors_skipped += 1
        return True

    def fail(self, error: BaseException) -> None:
        raise _ExecutionFailed(error)

    def stop_upstream(self, op: PhysicalOperator) -> None:
        self._ex.stop_upstream(op)

    def keep(self, item: Any, op: PhysicalOperator | None = None) -> None:
        """Mark a block that must outlive the stream as spillable; its spilled bytes count
        for ``op``."""
        if is_block(item):
            self.cluster.keep(item, None if op is None else self._ex.owner_of(op))
            self._ex.spill_over_budget()


class _ExecutionFailed(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class StreamingExecutor:
    """Runs a physical DAG (operators in topological order, the last one is the output)."""

    def __init__(self, cluster: Runtime, ctx: DataContext, ops: list[PhysicalOperator], *,
                 resources: ResourceManager | None = None, keep_outputs: bool = False) -> None:
        self.cluster = cluster
        # Shared by every execution of the cluster when the session hands it over.
        self.resources = resources or ResourceManager(cluster)
        self.keep_outputs = keep_outputs  # materialize(): outputs are kept, so spillable
        self.execution_id = 0
        self.blocked: dict[int, str] = {}  # id(op) -> "cpu" | "memory", this step
        self._blocked_since = 0.0
        self.ctx = ctx
        self.ops = ops
        self.output_op = ops[-1]
        self.downstream: dict[int, tuple[PhysicalOperator, int] | None] = {id(ops[-1]): None}
        for op in ops:
            for index, up in enumerate(op.inputs):
                self.downstream[id(up)] = (op, index)
        limits = ctx.execution_options.resource_limits
        self.cpu_limit = float(cluster.num_cpus if limits.cpu is None
                               else min(limits.cpu, cluster.num_cpus))
        limit = limits.object_store_memory
        usage = cluster.store_usage()
        self.budget = int(min(limit or ctx.memory_budget, usage.budget_bytes))
        self.wake = threading.Event()
        self.output: queue.Queue[Any] = queue.Queue()
        self.output_bytes = 0
        self._output_lock = threading.Lock()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.state = ExecutorState(self)
        self.peak_store_bytes = 0
        self.spilled_at_start = usage.spilled_bytes_total
        self.started_at = 0.0
        self.finished_at: float | None = None
        self._thread: threading.Thread | None = None
        self._progress: ProgressBars | None = None
        check_timeout(ctx.execution_no_progress_timeout_s)

    # ------------------------------------------------------------------ queries for ops
    @property
    def queue_cap(self) -> int:
        """Bytes each queue of this execution may hold: its fair share of the budget (the
        executions running at once share one budget), split over its queues."""
        share = self.budget // max(1, self.resources.num_executions)
        return max(share // (2 * (len(self.ops) + 1)), 1 << 20)

    def owner_of(self, op: PhysicalOperator) -> str:
        return f"{self.execution_id}:{self.ops.index(op)}"

    def usage(self, execution_id: int) -> ExecutionUsage:
        """What this execution holds and wants (for the shared resource manager)."""
        task_cpus = actor_cpus = actor_gpus = 0.0
        wants = False
        for op in self.ops:
            if op.uses_task_slots:
                task_cpus += op.num_busy * getattr(op, "num_cpus", 1.0)
                wants = wants or (op.has_pending_input and not op.cancelled)
            actors = getattr(op, "actors", None)
            if actors:
                actor_cpus += len(actors) * getattr(op, "num_cpus", 1.0)
                actor_gpus += len(actors) * getattr(op, "num_gpus", 0.0)
        return ExecutionUsage(execution_id, task_cpus, actor_cpus, actor_gpus, wants)

    def downstream_bytes(self, op: PhysicalOperator) -> int:
        target = self.downstream.get(id(op))
        if target is None:
            return self.output_bytes
        down, index = target
        return down.inqueue_bytes[index]

    def task_slot_free(self, op: PhysicalOperator) -> bool:
        """One task per CPU, not counting tasks stopped on credits: they hold a worker but
        no CPU, and the runtime starts an extra worker when all of them wait. So an upstream
        stage blocked on a full queue never keeps its downstream stages from running, however
        many stages there are.

        A task holds ``num_cpus`` of the CPUs (``resource_limits.cpu`` caps them), so
        ``num_cpus=2`` tasks on 2 CPUs run one at a time; one task always may run."""
        pools = [o for o in self.ops if o.uses_task_slots]
        busy = sum(o.num_busy for o in pools)
        if busy == 0:
            return True
        if busy >= self.cpu_limit:  # already capped by the cluster's CPUs
            return False
        if sum(o.num_running for o in pools) >= 2 * self.cpu_limit:
            return False  # as many stopped on credits as running: they hold workers
        busy_cpus = sum(o.num_busy * getattr(o, "num_cpus", 1.0) for o in pools)
        cpus = getattr(op, "num_cpus", 1.0)
        if busy_cpus + cpus > self.cpu_limit:
            return False
        # The other executions of this cluster, and actors, share the same CPUs.
        return self.resources.may_run_task(self.execution_id, cpus)

    def memory_allows(self, op: PhysicalOperator) -> bool:
        if not self.state.output_has_room(op):
            return False
        if all(o.num_running == 0 for o in self.ops):
            return True  # always make progress
        used = self.cluster.store_usage().used_bytes
        if used < self.budget:
            return True
        return op.queued_input_bytes > 0 and bool(op.inputs)  # consuming input frees memory

    def describe_operators(self) -> list[str]:
        """One line per operator: what it holds and what it waits on."""
        lines = []
        for op in self.ops:
            if op.completed():
                lines.append(f"{op.name}: done")
                continue
            parts = []
            if op.has_pending_input:
                parts.append(f"{sum(len(q) for q in op.inqueues)} input(s) queued")
            blocked = op.num_running - op.num_busy
            if op.num_running:
                parts.append(f"{op.num_running} task(s) running" +
                             (f", {blocked} waiting for their outputs to be taken"
                              if blocked else ""))
            if op.has_pending_input:
                if not self.memory_allows(op):
                    usage = self.cluster.store_usage()
                    parts.append(f"waiting on memory (store {usage.used_bytes} of "
                                 f"{self.budget} bytes, or its output queue is full)")
                elif op.uses_task_slots and not self.task_slot_free(op):
                    parts.append(f"waiting on CPUs ({self.cpu_limit:g} in use)")
            elif not op.all_inputs_done:
                parts.append("waiting on its inputs")
            lines.append(f"{op.name}: " + ("; ".join(parts) or "idle"))
        return lines

    def stop_upstream(self, op: PhysicalOperator) -> None:
        for up in op.inputs:
            up.shutdown()
            self.stop_upstream(up)

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="engine-executor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._progress = ProgressBars(self.ops, self.ctx.enable_progress_bars)
        guard = NoProgressGuard(self.ops, self.ctx.execution_no_progress_timeout_s,
                                self.describe_operators)
        self.execution_id = self.resources.register(self.usage)
        self._blocked_since = time.perf_counter()
        try:
            for op in self.ops:
                op.start(self.state)
            while not self._stop.is_set():
                self.wake.clear()
                progressed = self._step()
                self._progress.update()
                if self.output_op.completed() and not self.output_op.outqueue:
                    break
                guard.check(waiting_on_consumer=self.output_bytes >= self.queue_cap)
                if not progressed:
                    self.wake.wait(0.05)
        except _ExecutionFailed as failed:
            self.error = failed.error
        except ExecutionTimeoutError as exc:
            self.error = exc
        except BaseException as exc:  # a bug: surface it rather than hang the consumer
            logger.exception("the streaming executor failed")
            self.error = exc
        finally:
            self.resources.unregister(self.execution_id)
            for op in self.ops:
                if not op.completed() or self.error is not None or self._stop.is_set():
                    op.shutdown()
                op.finish_stats()
                op.stats.spilled_bytes += self.cluster.take_spilled_bytes(self.owner_of(op))
            self._progress.close()
            self.finished_at = time.perf_counter()
            self.output.put(_DONE)

    def _step(self) -> bool:
        progressed = False
        for op in self.ops:
            if op.poll(self.state):
                progressed = True
        for op in self.ops:
            target = self.downstream.get(id(op))
            while op.outqueue:
                if target is None:
                    if self.output_bytes >= self.queue_cap:
                        break
                    item = op.outqueue.popleft()
                    if self.keep_outputs:  # kept by the consumer: may spill from now on
                        self.state.keep(item, op)
                    with self._output_lock:
                        self.output_bytes += item_bytes(item)
                    self.output.put(item)
                else:
                    target[0].add_input(op.outqueue.popleft(), target[1])
                progressed = True
            if target is not None and op.completed() and not op.outqueue:
                down, index = target
                if not down.inputs_done[index]:
                    down.mark_input_done(index)
                    progressed = True
        self._account_waits()
        for op in reversed(self.ops):
            while op.can_dispatch(self.state):
                op.dispatch(self.state)
                progressed = True
        self.peak_store_bytes = max(self.peak_store_bytes, self.cluster.store_usage().used_bytes)
        return progressed

    def spill_over_budget(self) -> None:
        """Kept blocks past this execution's budget (smaller than the store's when
        ``DataContext.memory_budget`` or ``resource_limits`` says so) go to disk now."""
        if self.budget < self.cluster.store_usage().budget_bytes and \
                self.cluster.store_usage().used_bytes > self.budget:
            self.cluster.spill_to(self.budget)

    def _account_waits(self) -> None:
        """Charge the time since the last step to the operators that could not start work
        then for want of CPUs or memory (``stats()`` shows both)."""
        now = time.perf_counter()
        elapsed, self._blocked_since = now - self._blocked_since, now
        for op in self.ops:
            reason = self.blocked.get(id(op))
            if reason == "cpu":
                op.stats.cpu_wait_seconds += elapsed
            elif reason == "memory":
                op.stats.memory_wait_seconds += elapsed
        self.blocked.clear()

    def consumed(self, item: Any) -> None:
        with self._output_lock:
            self.output_bytes -= item_bytes(item)
        self.wake.set()

    def iter_output(self) -> Iterator[Any]:
        """Yield output items as they are produced; raise the execution's error."""
        if self._thread is None:
            self.start()
        try:
            while True:
                item = self.output.get()
                if item is _DONE:
                    break
                self.consumed(item)
                yield item
            if self.error is not None:
                log_failure(self.error, self.ctx)
                raise self.error
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the executor thread and cancel outstanding work (idempotent)."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        while True:  # drop refs nobody will consume so their blocks are freed
            try:
                self.output.get_nowait()
            except queue.Empty:
                break

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until every task cancelled when the execution stopped has ended in its
        worker; return whether all have (a write task keeps writing until then)."""
        return wait_all([op.wait_stopped for op in self.ops], timeout)

    # ------------------------------------------------------------------ stats
    def summary(self) -> dict[str, Any]:
        end = self.finished_at or time.perf_counter()
        return {
            "wall_seconds": end - self.started_at,
            "peak_store_bytes": self.peak_store_bytes,
            "spilled_bytes": self.cluster.store_usage().spilled_bytes_total - self.spilled_at_start,
            "errored_blocks": self.state.errors_skipped,
            "operators": [op.stats for op in self.ops],
        }
