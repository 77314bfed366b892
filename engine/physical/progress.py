"""Progress bars: one per operator while an execution runs on a terminal, none otherwise.

Uses tqdm (a dependency for exactly this). Bars count output rows against the operator's
expected rows when known; they close when the execution ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from engine.physical.interfaces import PhysicalOperator

_REFRESH_SECONDS = 0.25


class ProgressBars:
    """Bars for ``ops``; :meth:`update` is cheap and rate-limited."""

    def __init__(self, ops: list[PhysicalOperator], enabled: bool) -> None:
        self._bars: list[tuple[PhysicalOperator, Any]] = []
        self._last = 0.0
        if not enabled or not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        shown = [op for op in ops if op.inputs]
        for position, op in enumerate(shown):
            bar = tqdm(total=None, desc=op.name[:60], unit=" rows", position=position,
                       leave=False, dynamic_ncols=True, file=sys.stderr)
            self._bars.append((op, bar))

    def update(self, force: bool = False) -> None:
        if not self._bars:
            return
        now = time.monotonic()
        if not force and now - self._last < _REFRESH_SECONDS:
            return
        self._last = now
        for op, bar in self._bars:
            bar.n = op.stats.rows_out
            bar.set_postfix_str(f"{op.num_running} running, {op.stats.tasks_finished} done",
                                refresh=False)
            bar.refresh()

    def close(self) -> None:
        self.update(force=True)
        for _, bar in self._bars:
            bar.close()
        self._bars = []
