"""Actors on a LocalCluster: ordered calls, one constructor run, constructor errors, restarts
after a SIGKILL (constructor re-run, in-flight calls resubmitted) within ``max_restarts``,
and resource requests that can never be met."""

from __future__ import annotations

import os
import signal
import sys

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

from engine.errors import ActorDiedError, ResourceUnavailableError
from engine.runtime.interfaces import RemoteError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BIG_ROWS = 20_000  # 160 KB of int64: stored, not inline


# ---------------------------------------------------------------- actor classes and calls


class Recorder:
    """Logs each construction (one line per constructor run) and records the calls it sees."""

    def __init__(self, log_file):
        with open(log_file, "a") as f:
            f.write(f"{os.getpid()}\n")
        self.seen = []


class Broken:
    def __init__(self):
        raise KeyError("no model weights")


def record(actor, i):
    actor.seen.append(i)
    return i


def seen(actor):
    return list(actor.seen)


def pid_of(actor):
    return os.getpid()


def stream_and_die_once(actor, marker, n, die_at):
    first = not os.path.exists(marker)
    if first:
        open(marker, "w").close()
    for i in range(n):
        if first and i == die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        yield pa.table({"i": pa.array(np.full(BIG_ROWS if i % 2 else 2, i, dtype=np.int64))})


def die(actor):
    os.kill(os.getpid(), signal.SIGKILL)


def constructions(log_file) -> list[str]:
    with open(log_file) as f:
        return f.read().splitlines()


def value_of(handle):
    (out,) = handle.iter_outputs(timeout=60)
    return out.value


# ---------------------------------------------------------------- 8. actors


def test_actor_calls_run_in_submission_order_on_one_instance(cluster, tmp_path):
    log = str(tmp_path / "constructed")
    task_workers = set(cluster.worker_pids())
    actor = cluster.create_actor(Recorder, (log,))
    handles = [actor.submit(record, (i,)) for i in range(30)]
    final = actor.submit(seen)
    assert [value_of(h) for h in handles] == list(range(30))
    assert value_of(final) == list(range(30))
    assert len(constructions(log)) == 1
    assert actor.alive and actor.restarts == 0
    assert value_of(actor.submit(pid_of)) not in task_workers  # a dedicated process
    actor.kill()


def test_actor_constructor_error_fails_every_call(cluster, rt):
    actor = cluster.create_actor(Broken)
    early = [actor.submit(record, (i,)) for i in range(3)]
    for handle in early:
        assert handle.wait(60)
        assert isinstance(handle.error, RemoteError)
        assert handle.error.type_name == "KeyError"
        assert "no model weights" in handle.error.message
        assert "__init__" in handle.error.traceback
    rt.wait_until(lambda: not actor.alive, what="the actor to be marked dead")
    late = actor.submit(record, (99,))
    assert late.wait(60) and late.error is actor.error
    with pytest.raises(RemoteError):
        list(late.iter_outputs(timeout=60))
    # Task workers are unaffected.
    assert value_of(cluster.submit(pid_of, (None,))) in cluster.worker_pids()


def test_actor_killed_mid_stream_restarts_and_resubmits_in_flight_calls(cluster, tmp_path):
    log = str(tmp_path / "constructed")
    actor = cluster.create_actor(Recorder, (log,), max_restarts=2)
    before = actor.submit(record, (0,))
    assert value_of(before) == 0
    first_pid = value_of(actor.submit(pid_of))
    stream = actor.submit(stream_and_die_once, (str(tmp_path / "marker"), 8, 5))
    after = [actor.submit(record, (i,)) for i in (1, 2, 3)]
    final = actor.submit(seen)
    values = [ref.get()["i"][0].as_py() for ref in stream.iter_outputs(timeout=60)]
    assert values == list(range(8))  # every output once, in order
    assert [value_of(h) for h in after] == [1, 2, 3]
    # The restarted instance ran the resubmitted calls in their original order.
    assert value_of(final) == [1, 2, 3]
    assert actor.restarts == 1 and actor.alive
    assert constructions(log) == [str(first_pid), constructions(log)[1]]
    assert value_of(actor.submit(pid_of)) == int(constructions(log)[1]) != first_pid
    actor.kill()


@pytest.mark.parametrize("max_restarts", [0, 1])
def test_actor_dies_for_good_beyond_max_restarts(cluster, rt, tmp_path, max_restarts):
    log = str(tmp_path / "constructed")
    actor = cluster.create_actor(Recorder, (log,), max_restarts=max_restarts)
    assert value_of(actor.submit(record, (1,))) == 1
    fatal = actor.submit(die)  # resubmitted after each restart, so it kills every instance
    queued = actor.submit(record, (2,))
    assert fatal.wait(60) and queued.wait(60)
    assert isinstance(fatal.error, ActorDiedError)
    assert isinstance(queued.error, ActorDiedError)
    assert f"max_restarts={max_restarts}" in str(fatal.error)
    assert not actor.alive and actor.restarts == max_restarts
    assert len(constructions(log)) == max_restarts + 1
    late = actor.submit(record, (3,))
    assert late.wait(60) and isinstance(late.error, ActorDiedError)
    assert value_of(cluster.submit(pid_of, (None,))) in cluster.worker_pids()


def test_killed_actor_fails_its_calls(cluster, tmp_path):
    actor = cluster.create_actor(Recorder, (str(tmp_path / "log"),))
    assert value_of(actor.submit(record, (1,))) == 1
    actor.kill()
    handle = actor.submit(record, (2,))
    assert handle.wait(60) and isinstance(handle.error, ActorDiedError)


def test_actor_asking_for_missing_gpus_fails_at_once(cluster, tmp_path):
    workers = cluster.worker_pids()
    with pytest.raises(ResourceUnavailableError, match="num_gpus"):
        cluster.create_actor(Recorder, (str(tmp_path / "log"),), num_gpus=cluster.num_gpus + 1)
    assert cluster.worker_pids() == workers  # nothing was started
    assert not (tmp_path / "log").exists()
    assert cluster.available_resources()["GPU"] == cluster.num_gpus


def cuda_visible_devices(actor):
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_gpu_actors_get_their_own_device_and_give_it_back(make_cluster, rt, tmp_path):
    cluster = make_cluster(num_gpus=1)  # counted, not touched: no GPU is needed
    first = cluster.create_actor(Recorder, (str(tmp_path / "log"),), num_gpus=1)
    assert value_of(first.submit(cuda_visible_devices)) == "0"
    assert cluster.available_resources()["GPU"] == 0
    with pytest.raises(ResourceUnavailableError):
        cluster.create_actor(Recorder, (str(tmp_path / "log"),), num_gpus=1)
    first.kill()
    rt.wait_until(lambda: cluster.available_resources()["GPU"] == 1, what="the GPU back")
    second = cluster.create_actor(Recorder, (str(tmp_path / "log"),), num_gpus=1)
    assert value_of(second.submit(cuda_visible_devices)) == "0"
