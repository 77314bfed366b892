"""StoreAccount: the bytes of blocks a driver's live references hold, and their peak.

For blocks no shared store counts for the driver: those in Ray's object store (shared with
other jobs) and those a driver task keeps on the driver's heap."""

from __future__ import annotations

import threading


class StoreAccount:
    """Bytes of blocks held by live references of this driver, and their peak."""

    def __init__(self, budget_bytes: int = 0) -> None:
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self.peak_bytes = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.used_bytes += n
            self.peak_bytes = max(self.peak_bytes, self.used_bytes)

    def remove(self, n: int) -> None:
        with self._lock:
            self.used_bytes -= n
