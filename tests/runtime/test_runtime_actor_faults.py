"""Actor faults: a constructor that keeps failing is rebuilt within ``max_restarts`` and then
fails with its own error; a constructor that succeeds on a retry serves calls; calls
cancelled while queued on an actor never run; killed actors' in-flight streams are counted
once."""

from __future__ import annotations

import os
import sys

import cloudpickle
import pytest

from engine.runtime.interfaces import RemoteError

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def log_line(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


def lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


class AlwaysBroken:
    def __init__(self, log):
        log_line(log)
        raise KeyError("no model weights")


class BrokenUntil:
    """Fails its first ``failures`` constructions (counted in ``log``)."""

    def __init__(self, log, failures):
        log_line(log)
        if len(lines(log)) <= failures:
            raise ConnectionError("model server not up yet")
        self.seen = []


class Recorder:
    def __init__(self):
        self.seen = []


def record(actor, i):
    actor.seen.append(i)
    return i


def seen(actor):
    return list(actor.seen)


def stream_two(actor):
    yield from range(2)


def value_of(handle):
    (out,) = handle.iter_outputs(timeout=60)
    return out.value


@pytest.mark.parametrize("max_restarts", [0, 2])
def test_constructor_failing_every_time_ends_with_its_own_error(cluster, rt, tmp_path,
                                                                max_restarts):
    log = str(tmp_path / "constructed")
    actor = cluster.create_actor(AlwaysBroken, (log,), max_restarts=max_restarts)
    call = actor.submit(record, (1,))
    assert call.wait(60)
    assert isinstance(call.error, RemoteError)
    assert call.error.type_name == "KeyError" and "no model weights" in call.error.message
    assert "AlwaysBroken" in call.error.traceback or "__init__" in call.error.traceback
    assert actor.error is call.error and not actor.alive
    assert len(lines(log)) == max_restarts + 1  # constructed once plus once per restart
    assert actor.restarts == max_restarts
    late = actor.submit(record, (2,))
    assert late.wait(60) and late.error is actor.error
    # Every process of the actor goes away.
    pids = [int(p) for p in lines(log)]
    rt.wait_until(lambda: all(rt.process_gone(p) for p in pids), what="the actor's processes")
    assert cluster.state_sizes()["actors"] == 0


def test_constructor_that_succeeds_on_a_restart_serves_calls(cluster, tmp_path):
    log = str(tmp_path / "constructed")
    actor = cluster.create_actor(BrokenUntil, (log, 2), max_restarts=3)
    calls = [actor.submit(record, (i,)) for i in range(5)]
    assert [value_of(c) for c in calls] == list(range(5))
    assert value_of(actor.submit(seen)) == list(range(5))
    assert len(lines(log)) == 3 and actor.restarts == 2 and actor.alive
    actor.kill()


def test_cancelled_calls_queued_on_an_actor_never_run(cluster, rt):
    actor = cluster.create_actor(Recorder)
    # The stream stops after its first output until it is taken (credits=1): every call
    # below is on the actor's queue meanwhile, and its cancel reaches the actor before the
    # credit that lets the stream (and then the queue) go on.
    stream = actor.submit(stream_two, credits=1)
    keep = actor.submit(record, (1,))
    dropped = [actor.submit(record, (i,)) for i in (2, 3)]
    keep_too = actor.submit(record, (4,))
    rt.wait_until(lambda: stream.has_output, what="the stream's first output")
    for handle in dropped:
        handle.cancel()
    assert [o.value for o in stream.iter_outputs(timeout=60)] == [0, 1]
    assert value_of(keep) == 1 and value_of(keep_too) == 4
    assert value_of(actor.submit(seen)) == [1, 4]
    for handle in dropped:
        assert handle.wait(60) and handle.error is None and not handle.has_output
    actor.kill()
