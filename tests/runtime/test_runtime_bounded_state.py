"""The runtime's bookkeeping stays bounded: finished and dead actors are dropped, each
worker's function cache is an LRU the driver mirrors (and a miss is healed, not fatal),
and tasks leave no entries behind however their messages race."""

from __future__ import annotations

import os
import signal
import sys

import cloudpickle

from engine.runtime import protocol

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Holder:
    def __init__(self, payload):
        self.payload = payload


def size_of(actor):
    return len(actor.payload)


def make_adder(k):
    def adder(x):
        return x + k

    return adder


def make_stream(k):
    def stream(n):
        yield from (k + i for i in range(n))

    return stream


def value_of(handle):
    (out,) = handle.iter_outputs(timeout=60)
    return out.value


def test_finished_and_dead_actors_are_dropped(cluster, rt):
    payload = b"x" * 100_000  # pickled with the class: must not stay in the driver
    for i in range(12):
        actor = cluster.create_actor(Holder, (payload,), max_restarts=0)
        assert value_of(actor.submit(size_of)) == len(payload)
        if i % 2:
            actor.kill()
        else:  # dies by itself: SIGKILL, no restarts left
            os.kill(value_of(actor.submit(lambda a: os.getpid())), signal.SIGKILL)
        rt.wait_until(lambda a=actor: not a.alive, what="the actor to be dead")
    rt.wait_until(lambda: cluster.state_sizes()["actors"] == 0, what="actors to be pruned")
    rt.wait_until(lambda: cluster.state_sizes()["workers"] == cluster.num_cpus,
                  what="actor processes to be gone")
    assert cluster.available_resources()["CPU"] == cluster.num_cpus


def test_function_cache_is_bounded_and_evicted_functions_are_sent_again(cluster):
    n = protocol.FN_CACHE_SIZE * cluster.num_cpus + 20
    fns = [make_adder(k) for k in range(n)]
    assert [value_of(cluster.submit(f, (1,))) for f in fns] == [k + 1 for k in range(n)]
    assert cluster.state_sizes()["worker_fns"] <= protocol.FN_CACHE_SIZE * cluster.num_cpus
    # The first functions were evicted everywhere: they run again (re-sent), correctly.
    assert [value_of(cluster.submit(f, (10,))) for f in fns[:5]] == [10, 11, 12, 13, 14]
    assert cluster.tasks_retried == 0


def test_worker_cache_miss_is_healed_not_a_failure(cluster, monkeypatch):
    # The driver believes each worker holds far more functions than it does: the worker
    # reports the miss and the driver sends the function again.
    monkeypatch.setattr(protocol, "FN_CACHE_SIZE", 10_000)
    n = 64 * cluster.num_cpus + 20
    fns = [make_adder(k) for k in range(n)]
    assert [value_of(cluster.submit(f, (1,))) for f in fns] == [k + 1 for k in range(n)]
    assert [value_of(cluster.submit(f, (2,))) for f in fns[:8]] == [k + 2 for k in range(8)]
    assert cluster.tasks_retried == 0


def test_cancelled_and_finished_tasks_leave_no_state(cluster, rt):
    for i in range(60):
        handle = cluster.submit(make_stream(i), (50,), credits=1)
        if i % 3 == 0:
            handle.cancel()  # while it waits for credits
        elif i % 3 == 1:
            first = handle.take()  # take some, then cancel with credits in flight
            handle.cancel()
            del first
        else:
            assert [o.value for o in handle.iter_outputs(timeout=60)] == list(range(i, i + 50))
        assert handle.wait(60)
    rt.wait_until(lambda: cluster.state_sizes()["tasks"] == 0, what="tasks to be forgotten")
    sizes = cluster.state_sizes()
    assert sizes["queued"] == 0 and sizes["commands"] == 0
