"""Slow work the runtime's IO thread must never do itself: forking workers and spilling.

The IO thread owns the ROUTER socket; anything that can block (a write to the zygote's pipe,
a copy to a full disk) would stall every message behind it, and anything that raises there
would take the thread down. :class:`Background` runs such jobs, in order, on one daemon
thread; a job reports back to the IO thread through the cluster's command queue.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Background:
    """One daemon thread running submitted jobs in order; a job's exception is logged and
    handed to ``on_error`` (jobs report their own expected failures themselves)."""

    def __init__(self, name: str, on_error: Callable[[BaseException], None]) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def close(self, timeout: float = 10.0) -> None:
        """Run the jobs already submitted, then stop the thread."""
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException as exc:  # reported, never silently lost
                logger.exception("a background job of the runtime failed")
                self._on_error(exc)
