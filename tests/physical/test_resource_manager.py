"""The resource manager's decisions, as pure functions of a snapshot (no processes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.physical.resource_manager import (
    ClusterSnapshot,
    ExecutionUsage,
    PoolState,
    cpu_shares,
    may_run_task,
    memory_share,
    pool_scale,
    task_capacity,
    water_fill,
)


def snap(*usages: ExecutionUsage, cpus: float = 4, gpus: float = 0,
         budget: int = 1000, used: int = 0) -> ClusterSnapshot:
    return ClusterSnapshot(cpus, gpus, budget, used, usages)


def test_water_fill_gives_what_one_leaves_to_the_others():
    assert water_fill(4, {1: 1, 2: 4, 3: 4}) == {1: 1, 2: 1.5, 3: 1.5}
    assert water_fill(4, {1: 0, 2: 4}) == {1: 0, 2: 4}
    assert water_fill(4, {}) == {}


@settings(deadline=None, max_examples=200)
@given(st.floats(0, 64), st.dictionaries(st.integers(0, 9), st.floats(0, 64), max_size=6))
def test_water_fill_is_fair_and_within_capacity(capacity, demands):
    shares = water_fill(capacity, demands)
    assert sum(shares.values()) <= capacity + 1e-6
    for k, share in shares.items():
        assert share <= demands[k] + 1e-6
    unsatisfied = [shares[k] for k in demands if shares[k] < demands[k] - 1e-6]
    if unsatisfied:  # nobody short of its demand gets less than anyone else
        assert min(unsatisfied) >= max(shares.values()) - 1e-6


def test_two_busy_executions_split_the_cpus():
    a = ExecutionUsage(1, task_cpus=2, wants_cpus=True)
    b = ExecutionUsage(2, task_cpus=1, wants_cpus=True)
    s = snap(a, b, cpus=4)
    assert cpu_shares(s) == {1: 2, 2: 2}
    assert not may_run_task(s, 1, 1)  # at its share
    assert may_run_task(s, 2, 1)  # below its share


def test_an_idle_execution_leaves_its_share_to_the_busy_one():
    a = ExecutionUsage(1, task_cpus=3, wants_cpus=True)
    b = ExecutionUsage(2, task_cpus=0, wants_cpus=False)
    assert may_run_task(snap(a, b, cpus=4), 1, 1)
    assert not may_run_task(snap(ExecutionUsage(1, task_cpus=4, wants_cpus=True), b), 1, 1)


def test_every_execution_may_always_run_one_task():
    """Even when others hold every CPU: progress, never starvation."""
    hog = ExecutionUsage(1, task_cpus=4, wants_cpus=True)
    assert may_run_task(snap(hog, ExecutionUsage(2, wants_cpus=True), cpus=4), 2, 1)


def test_actors_hold_their_cpus_but_never_starve_the_stages_feeding_them():
    pool = ExecutionUsage(1, task_cpus=0, actor_cpus=4, wants_cpus=True)
    s = snap(pool, cpus=4)
    assert task_capacity(s) == 1
    assert may_run_task(s, 1, 1)  # the read feeding the pool still runs
    running = ExecutionUsage(1, task_cpus=1, actor_cpus=4, wants_cpus=True)
    assert not may_run_task(snap(running, cpus=4), 1, 1)  # but only one task
    half = ExecutionUsage(1, task_cpus=1, actor_cpus=2, wants_cpus=True)
    assert may_run_task(snap(half, cpus=4), 1, 1)
    assert not may_run_task(snap(ExecutionUsage(1, task_cpus=2, actor_cpus=2,
                                                wants_cpus=True), cpus=4), 1, 1)


def test_memory_is_shared_equally():
    s = snap(ExecutionUsage(1), ExecutionUsage(2), ExecutionUsage(3), ExecutionUsage(4),
             budget=1000)
    assert memory_share(s) == 250
    assert memory_share(snap(budget=1000)) == 1000


def pool(**kw) -> PoolState:
    base = dict(min_size=1, max_size=3, size=1, free_slots=0, queued_bundles=True,
                idle_seconds=(), cpus_per_actor=1.0, gpus_per_actor=0.0)
    base.update(kw)
    return PoolState(**base)


def test_pool_grows_when_every_actor_is_full_and_the_machine_has_room():
    assert pool_scale(pool(), cpus_free=1, gpus_free=0, idle_timeout_s=10) == 1
    assert pool_scale(pool(free_slots=1), cpus_free=1, gpus_free=0, idle_timeout_s=10) == 0
    assert pool_scale(pool(size=3), cpus_free=4, gpus_free=0, idle_timeout_s=10) == 0


def test_pool_never_grows_past_the_machine():
    assert pool_scale(pool(), cpus_free=0.5, gpus_free=0, idle_timeout_s=10) == 0
    gpu_pool = pool(gpus_per_actor=1.0)  # concurrency=(1, 3) with one GPU, held by actor 1
    assert pool_scale(gpu_pool, cpus_free=4, gpus_free=0, idle_timeout_s=10) == 0
    assert pool_scale(gpu_pool, cpus_free=4, gpus_free=1, idle_timeout_s=10) == 1


def test_pool_shrinks_idle_actors_down_to_min_size():
    idle = pool(size=3, free_slots=12, queued_bundles=False, idle_seconds=(30, 30, 1))
    assert pool_scale(idle, cpus_free=0, gpus_free=0, idle_timeout_s=10) == -2
    one_left = pool(size=3, min_size=2, free_slots=12, queued_bundles=False,
                    idle_seconds=(30, 30, 30))
    assert pool_scale(one_left, cpus_free=0, gpus_free=0, idle_timeout_s=10) == -1
    busy = pool(size=3, free_slots=2, queued_bundles=True, idle_seconds=(30,))
    assert pool_scale(busy, cpus_free=0, gpus_free=0, idle_timeout_s=10) == 0


def test_pool_below_min_size_is_topped_up():
    assert pool_scale(pool(min_size=2, size=0), 0, 0, 10) == 2


@pytest.mark.parametrize("n", [1, 2, 5])
def test_shares_sum_to_capacity_when_all_want(n):
    s = snap(*[ExecutionUsage(i, wants_cpus=True) for i in range(n)], cpus=8)
    assert sum(cpu_shares(s).values()) == pytest.approx(8)
