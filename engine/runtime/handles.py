"""Handles the runtime gives its callers: one per submitted task or actor call.

A :class:`TaskHandle` collects a task's streamed outputs as they arrive (on the runtime's
IO thread) and hands them to the consumer with :meth:`TaskHandle.take`, which also returns
credits to the producing worker: outputs nobody takes stop the producer.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.runtime.cluster import LocalCluster


class TaskHandle:
    """The driver's view of one task (or actor call): outputs, completion, error."""

    def __init__(self, key: int, name: str, cluster: LocalCluster,
                 notify: Callable[[], None] | None, credits: int = 2) -> None:
        self.key = key
        self.name = name
        self.credits = credits
        self.done = False
        self.error: BaseException | None = None
        self.cpu_seconds = 0.0
        self._outputs: collections.deque[Any] = collections.deque()
        self._cancelled = False
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._cluster = cluster
        self._notify = notify
        self.arg_refs: list[Any] = []  # keeps input blocks alive while the task runs

    # -- called by the runtime's IO thread ---------------------------------------------
    def _push(self, item: Any) -> None:
        with self._cond:
            if self._cancelled:
                return  # dropped: a BlockRef nobody holds frees its block
            self._outputs.append(item)
            self._cond.notify_all()
        if self._notify is not None:
            self._notify()

    def _finish(self, error: BaseException | None = None, cpu_seconds: float = 0.0) -> None:
        with self._cond:
            if self.done:
                return
            self.done = True
            self.error = error
            self.cpu_seconds = cpu_seconds
            self.arg_refs = []
            self._cond.notify_all()
        if self._notify is not None:
            self._notify()

    # -- called by the consumer -----------------------------------------------------------
    @property
    def has_output(self) -> bool:
        return bool(self._outputs)

    @property
    def waiting_for_credit(self) -> bool:
        """Running but stopped: every output its credits allow waits to be taken."""
        return not self.done and len(self._outputs) >= self.credits

    @property
    def finished(self) -> bool:
        """Done and every output taken."""
        return self.done and not self._outputs

    def take(self, max_items: int | None = None) -> list[Any]:
        """Pop available outputs (at most ``max_items``) and return their credits."""
        with self._lock:
            n = len(self._outputs) if max_items is None else min(max_items, len(self._outputs))
            items = [self._outputs.popleft() for _ in range(n)]
            running = not self.done
        if items and running:
            self._cluster._grant_credits(self.key, len(items))
        return items

    def cancel(self) -> None:
        """Stop the task; outputs not yet taken are dropped (their blocks freed)."""
        with self._lock:
            self._cancelled = True
            dropped = list(self._outputs)
            self._outputs.clear()
        self._cluster._cancel(self.key)
        del dropped  # outside the lock: freeing blocks takes the store's lock

    def iter_outputs(self, timeout: float | None = None) -> Iterator[Any]:
        """Yield outputs as they arrive until the task ends; raise its error, if any."""
        while True:
            with self._cond:
                while not self._outputs and not self.done:
                    if not self._cond.wait(timeout):
                        raise TimeoutError(f"task {self.name} produced nothing in {timeout}s")
                if not self._outputs and self.done:
                    if self.error is not None:
                        raise self.error
                    return
            yield from self.take(1)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the task is done; return whether it is."""
        with self._cond:
            return self._cond.wait_for(lambda: self.done, timeout)

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"TaskHandle({self.name}#{self.key}, {state}, {len(self._outputs)} outputs)"


class ActorHandle:
    """The driver's view of one actor: submit ordered calls, kill it."""

    def __init__(self, actor_id: str, cluster: LocalCluster) -> None:
        self.actor_id = actor_id
        self._cluster = cluster
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.restarts = 0

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), *, name: str = "",
               credits: int | None = None, notify: Callable[[], None] | None = None,
               max_retries: int = 3) -> TaskHandle:
        """Run ``fn(instance, *args)`` on the actor after every earlier call."""
        return self._cluster._submit(fn, args, name=name or "actor-call", credits=credits,
                                     notify=notify, max_retries=max_retries,
                                     actor_id=self.actor_id, actor=self)

    @property
    def alive(self) -> bool:
        return self.error is None and self._cluster._actor_alive(self.actor_id)

    def kill(self) -> None:
        """Stop the actor process; calls still queued fail."""
        self._cluster._kill_actor(self.actor_id)
