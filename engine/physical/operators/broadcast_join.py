"""BroadcastJoinOperator: a join whose one side is small joins each block of the other side
against all of it, with no exchange.

The planner picks it when one side's blocks are known before the run to total at most
``DataContext.broadcast_join_threshold_bytes`` and the join type keeps no unmatched rows of
the small side (inner, or outer/semi/anti on the big side): each big block's result is then
final on its own. The small side is gathered first (kept, spillable); big blocks wait in
their queue meanwhile, then stream through join tasks, several at a time. Output blocks
follow the big side's blocks (not ``num_partitions``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine.physical.exchange.lookup_join import SmallSide, small_side
from engine.physical.exchange.tasks import JoinReduce
from engine.physical.interfaces import PhysicalOperator, item_bytes, wait_all
from engine.physical.operators.map_operator import to_user_error
from engine.runtime.interfaces import BlockRef

if TYPE_CHECKING:
    from engine.physical.executor import ExecutorState
    from engine.runtime.interfaces import TaskHandle

# Join types whose result for one block of the big side needs nothing but that block and
# the whole small side.
BROADCASTABLE = {"right": ("inner", "left_outer", "left_semi", "left_anti"),
                 "left": ("inner", "right_outer", "right_semi", "right_anti")}


class BroadcastJoinTask:
    """Join a bundle of big-side blocks with every small-side block: one output block per
    big block by key lookup where the small side's keys are unique (see
    ``exchange.lookup_join``), else Arrow's hash join of the bundle."""

    def __init__(self, join: JoinReduce, small_is_right: bool) -> None:
        self.join = join
        self.small_is_right = small_is_right

    def __call__(self, big: list[pa.Table], small: list[pa.Table],
                 token: str = "") -> Iterator[pa.Table]:
        lookup = self._lookup(big, small, token)
        if lookup is None:
            yield from (self.join(big, small, 0) if self.small_is_right
                        else self.join(small, big, 0))
            return
        real = [t for t in big if t.num_rows] or big[:1]  # all empty: keep the schema
        for table in real:
            yield lookup.join(table)

    def _lookup(self, big: list[pa.Table], small: list[pa.Table],
                token: str) -> SmallSide | None:
        """The prepared small side when every big block can be joined by lookup."""
        real = [t for t in small if t.num_columns or t.num_rows]
        if not token or not real or not big or any(not t.num_columns for t in big):
            return None
        schema = big[0].schema
        if any(not t.schema.equals(schema) for t in big):
            return None
        j = self.join
        small_on, big_on = (j.right_on, j.left_on) if self.small_is_right else \
            (j.left_on, j.right_on)
        side = small_side(token, real, schema, self.small_is_right, j.join_type, small_on,
                          big_on, (j.left_suffix, j.right_suffix))
        return side if side.applies and side.big_schema.equals(schema) else None


class BroadcastJoinOperator(PhysicalOperator):
    """Inputs are ``[left, right]``; ``small`` (0 or 1) is the broadcast side."""

    def __init__(self, name: str, inputs: list[PhysicalOperator], task: BroadcastJoinTask, *,
                 small: int, max_retries: int = 3, max_bundle_bytes: int = 128 << 20) -> None:
        super().__init__(name, inputs)
        self.task = task
        self.small = small
        self.big = 1 - small
        self.max_retries = max_retries
        self.max_bundle_bytes = max_bundle_bytes
        self._small_refs: list[BlockRef] = []
        self._token = ""
        self._running: list[TaskHandle] = []
        self._stopped: list[TaskHandle] = []
        self.stats.extra["broadcast side"] = "right" if small else "left"
        self.stats.extra["broadcast bytes"] = 0

    @property
    def uses_task_slots(self) -> bool:
        return True

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_busy(self) -> int:
        return sum(1 for h in self._running if not h.waiting_for_credit)

    @property
    def has_pending_input(self) -> bool:
        return bool(self.inqueues[self.big]) or bool(self.inqueues[self.small])

    def poll(self, state: ExecutorState) -> bool:
        changed = False
        queue = self.inqueues[self.small]
        while queue:
            item = self.pop_input(self.small)
            if isinstance(item, BlockRef):
                state.keep(item, self)
                self._small_refs.append(item)
                self.stats.extra["broadcast bytes"] += item_bytes(item)
            changed = True
        for handle in list(self._running):
            if handle.has_output and state.output_has_room(self):
                for item in handle.take():
                    self.emit(item)
                changed = True
            if handle.finished:
                self._running.remove(handle)
                self.stats.tasks_finished += 1
                self.stats.cpu_seconds += handle.cpu_seconds
                if handle.error is not None:
                    state.fail(to_user_error(handle.error, self.name))
                changed = True
        return changed

    def can_dispatch(self, state: ExecutorState) -> bool:
        if self.cancelled or not self.inputs_done[self.small] or self.inqueues[self.small]:
            return False
        if not self.inqueues[self.big]:
            return False
        return state.task_slot_free(self) and state.memory_allows(self)

    def dispatch(self, state: ExecutorState) -> None:
        queue = self.inqueues[self.big]
        bundle: list[Any] = []
        size = 0
        while queue and (not bundle or size + item_bytes(queue[0]) <= self.max_bundle_bytes):
            item = self.pop_input(self.big)
            if isinstance(item, BlockRef):
                bundle.append(item)
                size += item_bytes(item)
        if not bundle:
            return
        if not self._token:  # names this run's small side in the workers' caches
            self._token = uuid.uuid4().hex
        handle = state.cluster.submit(self.task, (bundle, list(self._small_refs), self._token),
                                      name=f"{self.name}.broadcast",
                                      max_retries=self.max_retries,
                                      credits=state.task_credits, notify=state.notify)
        self._running.append(handle)
        self.stats.tasks_submitted += 1

    def completed(self) -> bool:
        return self.cancelled or (self.all_inputs_done and not self.has_pending_input
                                  and not self._running)

    def shutdown(self) -> None:
        super().shutdown()
        for handle in self._running:
            handle.cancel()
            self._stopped.append(handle)
        self._running.clear()
        self._small_refs = []

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return wait_all([h.wait for h in self._stopped], timeout)

    def describe(self) -> str:
        side = "right" if self.small else "left"
        return f"broadcast the {side} side -> hash join per block"
