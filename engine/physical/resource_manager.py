"""One resource manager per cluster: CPUs, GPUs, actors and store memory for every execution.

Several executions may run at once (pipelines iterated from threads of one driver). Each
draws from the same cluster through this manager, with a fair share:

* **Task CPUs.** The CPUs actors do not hold are shared among the executions that want
  them by water-filling (an execution that needs less than an equal share leaves the rest
  to the others). Every execution may always run one task, even when actor pools hold every
  CPU: the stages feeding a pool that fills the machine must still run (Ray Data 2.60 hangs
  there); the price is one CPU oversubscribed, never a deadlock.
* **Memory.** The store's budget is one number for the whole driver. Each execution's queues
  are sized from an equal share of it, so four pipelines hold no more than one would.
* **Actor pools** grow by one actor when every actor has a full queue of calls and the
  machine has the CPUs and GPUs for another, and shrink when an actor sits idle.

The decisions are pure functions of a :class:`ClusterSnapshot`, unit-tested without
processes; :class:`ResourceManager` is the thin, thread-safe shell that takes snapshots.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass

from engine.runtime.interfaces import Runtime

_EPS = 1e-9


@dataclass(frozen=True)
class ExecutionUsage:
    """What one execution holds and wants right now.

    Attributes:
        task_cpus: CPUs of its running tasks (tasks stopped on credits hold none).
        actor_cpus, actor_gpus: Held by its actors.
        wants_cpus: It has work a task could start now.
    """

    execution_id: int
    task_cpus: float = 0.0
    actor_cpus: float = 0.0
    actor_gpus: float = 0.0
    wants_cpus: bool = False


@dataclass(frozen=True)
class ClusterSnapshot:
    total_cpus: float
    total_gpus: float
    budget_bytes: int
    used_bytes: int
    executions: tuple[ExecutionUsage, ...]

    def usage_of(self, execution_id: int) -> ExecutionUsage:
        for usage in self.executions:
            if usage.execution_id == execution_id:
                return usage
        return ExecutionUsage(execution_id)


# ---------------------------------------------------------------- pure decisions


def task_capacity(snapshot: ClusterSnapshot) -> float:
    """CPUs tasks may use: what actors leave, and never less than one."""
    actors = sum(u.actor_cpus for u in snapshot.executions)
    return max(snapshot.total_cpus - actors, 1.0)


def water_fill(capacity: float, demands: dict[int, float]) -> dict[int, float]:
    """Split ``capacity`` fairly: nobody gets more than it demands, and what one leaves
    is shared equally by the others."""
    shares = dict.fromkeys(demands, 0.0)
    pending = {k: d for k, d in demands.items() if d > _EPS}
    left = capacity
    while pending and left > _EPS:
        equal = left / len(pending)
        satisfied = {k: d for k, d in pending.items() if d <= equal + _EPS}
        if not satisfied:
            for k in pending:
                shares[k] += equal
            return shares
        for k, d in satisfied.items():
            shares[k] += d
            left -= d
            del pending[k]
    return shares


def cpu_shares(snapshot: ClusterSnapshot) -> dict[int, float]:
    """Each execution's fair share of task CPUs. An execution that wants CPUs demands all
    of them; one that does not keeps what its running tasks hold."""
    capacity = task_capacity(snapshot)
    demands = {u.execution_id: capacity if u.wants_cpus else u.task_cpus
               for u in snapshot.executions}
    return water_fill(capacity, demands)


def may_run_task(snapshot: ClusterSnapshot, execution_id: int, cpus: float) -> bool:
    """Whether an execution may start a task needing ``cpus`` now."""
    usage = snapshot.usage_of(execution_id)
    if usage.task_cpus <= _EPS:
        return True  # every execution may always run one task: progress, never deadlock
    in_use = sum(u.task_cpus for u in snapshot.executions)
    if in_use + cpus > task_capacity(snapshot) + _EPS:
        return False
    share = cpu_shares(snapshot).get(execution_id, 0.0)
    return usage.task_cpus + cpus <= max(share, 1.0) + _EPS


def memory_share(snapshot: ClusterSnapshot) -> int:
    """Bytes of the budget each running execution may hold in its queues."""
    return snapshot.budget_bytes // max(1, len(snapshot.executions))


def over_budget(snapshot: ClusterSnapshot) -> bool:
    return snapshot.used_bytes >= snapshot.budget_bytes


@dataclass(frozen=True)
class PoolState:
    """One actor pool, as the scaling decision sees it."""

    min_size: int
    max_size: int
    size: int
    free_slots: int  # calls the live actors could still take before their queues are full
    queued_bundles: bool  # input waits for an actor
    idle_seconds: tuple[float, ...]  # per live actor with no call in flight
    cpus_per_actor: float
    gpus_per_actor: float


def pool_scale(pool: PoolState, cpus_free: float, gpus_free: float,
               idle_timeout_s: float) -> int:
    """How many actors to add (positive) or release (negative): grow by one when every
    actor's queue is full and the machine has room; release actors idle past the timeout
    down to ``min_size``."""
    if pool.size < pool.min_size:
        return pool.min_size - pool.size
    if pool.queued_bundles and pool.free_slots == 0 and pool.size < pool.max_size and \
            cpus_free + _EPS >= pool.cpus_per_actor and \
            gpus_free + _EPS >= pool.gpus_per_actor:
        return 1
    if pool.queued_bundles:
        return 0
    idle = sum(1 for s in pool.idle_seconds if s >= idle_timeout_s)
    return -min(idle, pool.size - pool.min_size)


# ---------------------------------------------------------------- the shell


UsageFn = Callable[[], ExecutionUsage]


class ResourceManager:
    """Tracks the running executions of one cluster and answers their resource requests.

    Args:
        runtime: The cluster (for totals and the store's usage).
        idle_timeout_s: Seconds an actor may sit idle before its pool releases it.
    """

    def __init__(self, runtime: Runtime, idle_timeout_s: float = 10.0) -> None:
        self.runtime = runtime
        self.idle_timeout_s = idle_timeout_s
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._executions: dict[int, UsageFn] = {}

    def register(self, usage: Callable[[int], ExecutionUsage]) -> int:
        """Add a running execution; ``usage(execution_id)`` reports what it holds."""
        execution_id = next(self._ids)
        with self._lock:
            self._executions[execution_id] = lambda: usage(execution_id)
        return execution_id

    def unregister(self, execution_id: int) -> None:
        with self._lock:
            self._executions.pop(execution_id, None)

    @property
    def num_executions(self) -> int:
        return len(self._executions)

    def snapshot(self) -> ClusterSnapshot:
        with self._lock:
            reporters = list(self._executions.values())
        totals = self.runtime.cluster_resources()
        usage = self.runtime.store_usage()
        return ClusterSnapshot(totals.get("CPU", 0.0), totals.get("GPU", 0.0),
                               usage.budget_bytes, usage.used_bytes,
                               tuple(report() for report in reporters))

    def may_run_task(self, execution_id: int, cpus: float) -> bool:
        return may_run_task(self.snapshot(), execution_id, cpus)

    def memory_share(self) -> int:
        return memory_share(self.snapshot())
