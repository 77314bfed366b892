"""Task handles over Ray Client, which cannot stream generator returns.

A task runs as a dynamic generator (see :func:`.remote.run_task_listed`): its blocks become
objects as it produces them, owned by the caller (the Ray Client server's driver), so Ray
frees each one with its last reference and rebuilds a lost one from lineage, as for a
streamed block. The driver learns of them all when the task ends: the list it yields last
holds every record, in order.

Backpressure is per task here, not per output: a task runs to its end whatever its credits
(its outputs are bounded by its input bundle), and the executor, which counts every block
it holds against the store's budget as soon as the task ends, starts no new task while that
budget is spent. That keeps the budget honest; what Ray Client loses is only the overlap of
a task's first outputs with the rest of its work.
"""

from __future__ import annotations

from typing import Any

from engine.runtime.ray_backend.handles import RayTaskHandle

_POLL_S = 0.5  # how often the reading thread looks up from a running task for a cancel


class RayClientTaskHandle(RayTaskHandle):
    """A :class:`RayTaskHandle` whose outputs all arrive when the task ends."""

    def _read_records(self) -> BaseException | None:
        """Wait for the task's end (or a cancel), then push all its outputs at once."""
        import ray

        ref = self._gen
        while not self._cancelled:
            ready, _ = ray.wait([ref], timeout=_POLL_S)
            if ready:
                break
        else:
            return None
        refs = list(ray.get(ref))  # the generator's objects, in yield order
        records: list[Any] = ray.get(refs[-1])
        blocks = iter(refs[:-1])
        for record in records:
            error = self._take_record(record, next(blocks) if record[0] == "block" else None)
            if error is not None:
                return error
        return None
