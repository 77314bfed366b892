"""The no-progress guard: pure checks with a fake clock, and one real stalled execution."""

from __future__ import annotations

import os

import pytest

import engine
from engine.errors import ExecutionTimeoutError
from engine.physical.interfaces import PhysicalOperator
from engine.physical.no_progress import NoProgressGuard


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _guard(timeout: float, op: PhysicalOperator, clock: _Clock) -> NoProgressGuard:
    return NoProgressGuard([op], timeout, lambda: [f"{op.name}: stuck"], clock)


def test_stall_raises_naming_operator_states():
    op, clock = PhysicalOperator("Map[f]", []), _Clock()
    guard = _guard(10, op, clock)
    clock.now = 9
    guard.check(waiting_on_consumer=False)
    clock.now = 10
    with pytest.raises(ExecutionTimeoutError, match=r"(?s)no progress for 10s.*Map\[f\]: stuck"):
        guard.check(waiting_on_consumer=False)


def test_progress_resets_the_clock():
    op, clock = PhysicalOperator("Map[f]", []), _Clock()
    guard = _guard(10, op, clock)
    for step in range(1, 6):
        clock.now = step * 9
        op.stats.rows_out += 1  # something moved since the last check
        guard.check(waiting_on_consumer=False)


def test_time_waiting_on_the_consumer_never_counts():
    op, clock = PhysicalOperator("Map[f]", []), _Clock()
    guard = _guard(10, op, clock)
    clock.now = 1000
    guard.check(waiting_on_consumer=True)
    clock.now = 1009
    guard.check(waiting_on_consumer=False)


def test_negative_disables_and_zero_is_refused():
    op, clock = PhysicalOperator("Map[f]", []), _Clock()
    guard = _guard(-1, op, clock)
    clock.now = 1e9
    guard.check(waiting_on_consumer=False)
    with pytest.raises(ValueError, match="execution_no_progress_timeout_s"):
        _guard(0, op, clock)


def test_default_is_rays():
    assert engine.DataContext().execution_no_progress_timeout_s == 30 * 60


def test_a_stuck_udf_fails_the_execution_with_operator_states(fresh_context, tmp_path):
    release = str(tmp_path / "release")

    def stuck(batch):
        import time

        while not os.path.exists(release):  # stuck until the test lets it go
            time.sleep(0.01)
        return batch

    fresh_context.execution_no_progress_timeout_s = 0.5
    ds = engine.range(10, override_num_blocks=1).map_batches(stuck)
    try:
        with pytest.raises(ExecutionTimeoutError) as info:
            ds.take_all()
    finally:
        open(release, "w").close()
    message = str(info.value)
    assert "execution_no_progress_timeout_s" in message
    assert "1 task(s) running" in message and "stuck" in message
    assert engine.range(5).map_batches(lambda b: b).count() == 5  # the cluster still works
