"""Handles the runtime gives its callers: one per submitted task or actor call.

A :class:`TaskHandle` collects a task's streamed outputs as they arrive (on the runtime's
IO thread) and hands them to the consumer with :meth:`TaskHandle.take`, which also returns
credits to the producing worker: outputs nobody takes stop the producer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.runtime.output_stream import OutputStream

if TYPE_CHECKING:
    from engine.runtime.cluster import LocalCluster


class TaskHandle(OutputStream):
    """The driver's view of one task (or actor call): outputs, completion, error."""

    def __init__(self, key: int, name: str, cluster: LocalCluster,
                 notify: Callable[[], None] | None, credits: int = 2) -> None:
        super().__init__(key, name, notify, credits)
        self._cluster = cluster
        self.arg_refs: list[Any] = []  # keeps input blocks alive while the task runs

    # -- called by the runtime's IO thread ---------------------------------------------
    def _on_end(self) -> None:
        self.arg_refs = []

    # -- called by the consumer -----------------------------------------------------------
    def take(self, max_items: int | None = None) -> list[Any]:
        """Pop available outputs (at most ``max_items``) and return their credits."""
        items, running = self._pop(max_items)
        if items and running:
            self._cluster._grant_credits(self.key, len(items))
        return items

    def cancel(self) -> None:
        """Stop the task; outputs not yet taken are dropped (their blocks freed)."""
        dropped = self._drop_all()
        self._cluster._cancel(self.key)
        del dropped  # outside the lock: freeing blocks takes the store's lock


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
