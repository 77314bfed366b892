"""The streamed outputs of one task, as every backend's task handle keeps them.

A producer (the local runtime's IO thread, or a Ray handle's reading thread) pushes outputs
and finally finishes the stream with an error or none; the consumer takes outputs and waits
for the end. Each backend adds what returning credits and cancelling mean for it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from typing import Any


class OutputStream:
    """Outputs of one task (or actor call), completion and error (see the module docstring).

    Args:
        key, name: The task's id and the name errors and ``repr`` show.
        notify: Called (on the producer's thread) whenever the stream changes.
        credits: Outputs the task may run ahead of its consumer.
    """

    def __init__(self, key: int, name: str, notify: Callable[[], None] | None,
                 credits: int) -> None:
        self.key = key
        self.name = name
        self.credits = credits
        self.done = False
        self.error: BaseException | None = None
        self.cpu_seconds = 0.0
        self._outputs: collections.deque[Any] = collections.deque()
        self._cancelled = False
        self._cond = threading.Condition()
        self._notify = notify

    # -- the producer -----------------------------------------------------------------
    def _push(self, item: Any) -> None:
        with self._cond:
            if self._cancelled:
                return  # dropped: a block ref nobody holds frees its block
            self._outputs.append(item)
            self._cond.notify_all()
        if self._notify is not None:
            self._notify()

    def _end(self, error: BaseException | None) -> bool:
        """Mark the stream done (once); return whether this call did."""
        with self._cond:
            if self.done:
                return False
            self.done = True
            self.error = error
            self._on_end()
            self._cond.notify_all()
        return True

    def _finish(self, error: BaseException | None = None, cpu_seconds: float = 0.0) -> None:
        """End the stream (once) with ``error`` or none, recording the task's CPU time."""
        if self.done:
            return
        self.cpu_seconds = cpu_seconds
        if self._end(error):
            self._notify_changed()

    def _on_end(self) -> None:
        """Backend state to drop when the stream ends (called under the lock)."""

    def _notify_changed(self) -> None:
        if self._notify is not None:
            self._notify()

    # -- the consumer -----------------------------------------------------------------
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

    def _pop(self, max_items: int | None) -> tuple[list[Any], bool]:
        """Pop available outputs (at most ``max_items``); also whether the task still runs."""
        with self._cond:
            n = len(self._outputs) if max_items is None else min(max_items, len(self._outputs))
            items = [self._outputs.popleft() for _ in range(n)]
            if items:
                self._cond.notify_all()
            return items, not self.done

    def _drop_all(self) -> list[Any] | None:
        """Cancel: drop what was not taken; ``None`` if cancelled already. The caller lets
        the dropped items go outside the lock (freeing blocks takes the store's lock)."""
        with self._cond:
            if self._cancelled:
                return None
            self._cancelled = True
            dropped = list(self._outputs)
            self._outputs.clear()
            self._cond.notify_all()
            return dropped

    def take(self, max_items: int | None = None) -> list[Any]:
        """Pop available outputs (at most ``max_items``)."""
        return self._pop(max_items)[0]

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
        return f"{type(self).__name__}({self.name}#{self.key}, {state}, " \
               f"{len(self._outputs)} outputs)"
