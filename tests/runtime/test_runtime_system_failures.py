"""System failures on a LocalCluster are typed, retried and never hang: a dead zygote is
restarted, a failure of the runtime's own thread fails every waiting call with
``RuntimeFailedError``, a failed block write or a lost input block is a ``SystemException``
(retried within ``max_retries``, never the UDF's error), a failed spill loses nothing."""

from __future__ import annotations

import errno
import gc
import os
import signal
import sys

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

from engine.errors import (
    ObjectLostError,
    RuntimeFailedError,
    StoreWriteError,
    SystemException,
    UserCodeError,
)
from engine.runtime import cluster as cluster_module
from engine.runtime.interfaces import RemoteError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BIG_ROWS = 20_000  # 160 KB of int64: stored, not inline


def int_table(value: int, rows: int = BIG_ROWS) -> pa.Table:
    return pa.table({"i": pa.array(np.full(rows, value, dtype=np.int64))})


def value_of(handle):
    (out,) = handle.iter_outputs(timeout=60)
    return out.value


# ---------------------------------------------------------------- functions run on workers


class Counter:
    def __init__(self):
        self.n = 0


def bump(actor, by):
    actor.n += by
    return actor.n


def pid_of(*_):
    return os.getpid()


def add(a, b):
    return a + b


def first_value(table):
    return table["i"][0].as_py()


def stream_with_failing_write(marker, n, fail_always):
    """Yield n stored blocks; the block write fails with ENOSPC (the first attempt only,
    unless ``fail_always``)."""
    import engine.runtime.worker as worker_module

    if fail_always or not os.path.exists(marker):
        open(marker, "w").close()
        real_write = worker_module.write_block_file

        def disk_full(path, table):
            if not fail_always:  # once: the retry may run on this same worker
                worker_module.write_block_file = real_write
            with open(path + ".tmp", "wb") as f:  # a partial write, as a full disk leaves
                f.write(b"ARROW1")
            raise OSError(errno.ENOSPC, "No space left on device")

        worker_module.write_block_file = disk_full
    for i in range(n):
        yield int_table(i)


def wait_for_file(path):
    import time

    while not os.path.exists(path):
        time.sleep(0.01)
    return 1


# ---------------------------------------------------------------- the zygote


def test_killed_zygote_is_restarted_for_the_next_actor(cluster, rt):
    old = cluster.zygote_pid()
    os.kill(old, signal.SIGKILL)
    rt.wait_until(lambda: rt.process_gone(old), what="the zygote to die")
    actor = cluster.create_actor(Counter)
    assert value_of(actor.submit(bump, (2,))) == 2
    assert cluster.zygote_restarts == 1 and cluster.zygote_pid() != old
    # Task workers killed after that are replaced through the new zygote too.
    victim = cluster.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    rt.wait_until(lambda: victim not in cluster.worker_pids() and
                  len(rt.live_workers(cluster)) == cluster.num_cpus + 1,
                  what="a replacement worker")
    assert [value_of(cluster.submit(add, (i, 1))) for i in range(4)] == [1, 2, 3, 4]
    actor.kill()


def test_zygote_that_cannot_restart_fails_calls_instead_of_hanging(cluster, rt, monkeypatch):
    def no_zygote(preload=()):
        raise RuntimeError("cannot start a zygote here")

    monkeypatch.setattr(cluster_module, "Zygote", no_zygote)
    os.kill(cluster.zygote_pid(), signal.SIGKILL)
    actor = cluster.create_actor(Counter)
    call = actor.submit(bump, (1,))
    assert call.wait(60)
    assert isinstance(call.error, RuntimeFailedError)
    assert "cannot start a zygote here" in str(call.error)
    with pytest.raises(RuntimeFailedError, match="cannot start a zygote"):
        cluster.submit(add, (1, 2))


# ---------------------------------------------------------------- the IO thread fails


def test_runtime_thread_failure_fails_every_waiting_call(cluster, rt, tmp_path, monkeypatch):
    release = str(tmp_path / "release")
    running = cluster.submit(wait_for_file, (release,))
    actor = cluster.create_actor(Counter)
    assert value_of(actor.submit(bump, (1,))) == 1
    queued = [cluster.submit(add, (i, i)) for i in range(4)]  # wait behind `running`

    def broken_dispatch():
        raise ValueError("scheduler state corrupted")

    monkeypatch.setattr(cluster, "_dispatch", broken_dispatch)
    cluster._command(("credit", -1, 0))  # wakes the loop, which now fails
    for handle in [running, *queued]:
        assert handle.wait(60)
    failed = [h for h in [running, *queued] if h.error is not None]
    assert running in failed
    for handle in failed:
        assert isinstance(handle.error, RuntimeFailedError)
        assert "ValueError: scheduler state corrupted" in str(handle.error)
    assert isinstance(actor.error, RuntimeFailedError) and not actor.alive
    with pytest.raises(RuntimeFailedError, match="scheduler state corrupted"):
        cluster.submit(add, (1, 2))
    with pytest.raises(RuntimeFailedError):
        actor.submit(bump, (1,))
    open(release, "w").close()


# ---------------------------------------------------------------- block writes and lost blocks


def test_failed_block_write_is_retried_transparently(cluster, rt, tmp_path):
    handle = cluster.submit(stream_with_failing_write, (str(tmp_path / "m"), 3, False))
    refs = list(handle.iter_outputs(timeout=60))
    assert [r.get()["i"][0].as_py() for r in refs] == [0, 1, 2]
    assert cluster.tasks_retried == 1
    held = sorted(r.block_id for r in refs)
    assert rt.block_files(cluster) == held  # the failed attempt's partial file is gone
    del refs
    gc.collect()
    assert rt.block_files(cluster) == [] and cluster.store.used_bytes == 0


def test_block_write_failing_every_time_is_a_store_write_error(cluster, rt, tmp_path):
    handle = cluster.submit(stream_with_failing_write, (str(tmp_path / "m"), 3, True),
                            max_retries=2)
    assert handle.wait(60)
    assert isinstance(handle.error, StoreWriteError)
    assert not isinstance(handle.error, (UserCodeError, RemoteError))
    assert "No space left on device" in str(handle.error)
    assert "3 attempt(s)" in str(handle.error)
    assert cluster.tasks_retried == 2
    assert rt.block_files(cluster) == []
    assert value_of(cluster.submit(add, (1, 2))) == 3  # workers keep working


def test_lost_input_block_is_an_object_lost_error_naming_it(cluster, rt):
    ref = cluster.put(int_table(7))
    os.unlink(ref.path)
    handle = cluster.submit(first_value, (ref,), max_retries=1)
    assert handle.wait(60)
    assert isinstance(handle.error, ObjectLostError)
    assert isinstance(handle.error, SystemException)
    assert ref.block_id in str(handle.error)
    assert cluster.tasks_retried == 1
    with pytest.raises(ObjectLostError, match=ref.block_id):
        ref.get()  # read in the driver: the same typed error
    assert value_of(cluster.submit(first_value, (cluster.put(int_table(8)),))) == 8


def test_driver_put_on_a_full_store_is_a_store_write_error(cluster, monkeypatch):
    import engine.runtime.block_store as store_module

    def disk_full(path, table):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "write_block_file", disk_full)
    with pytest.raises(StoreWriteError, match="No space left"):
        cluster.put(int_table(1))


# ---------------------------------------------------------------- spilling


def test_failed_spill_keeps_blocks_in_shared_memory(make_cluster, rt, tmp_path):
    cluster = make_cluster(memory_budget=1 << 20)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    cluster.store.spill_dir = str(blocker / "spill")  # every spill fails: ENOTDIR
    refs = [cluster.put(int_table(i)) for i in range(12)]  # ~1.9 MB: over the budget
    for ref in refs:
        cluster.store.mark_spillable(ref.block_id)
    assert cluster.store.spill_failures >= 1
    assert not any(cluster.store.is_spilled(r.block_id) for r in refs)
    assert [r.get()["i"][0].as_py() for r in refs] == list(range(12))  # nothing lost
    assert [value_of(cluster.submit(first_value, (r,))) for r in refs[:3]] == [0, 1, 2]
    assert not os.path.exists(blocker / "spill")


def produce_blocks(n):
    for i in range(n):
        yield int_table(i)


def test_task_outputs_over_budget_spill_off_the_runtime_thread(make_cluster, rt, monkeypatch):
    cluster = make_cluster(memory_budget=1 << 20)
    threads = []
    spill = cluster.store.spill_until_under_budget

    def recording_spill():
        import threading

        threads.append(threading.current_thread().name)
        return spill()

    monkeypatch.setattr(cluster.store, "spill_until_under_budget", recording_spill)
    kept = [cluster.put(int_table(i)) for i in range(5)]  # ~800 KB: under the budget
    for ref in kept:
        cluster.store.mark_spillable(ref.block_id)
    assert threads == []
    handle = cluster.submit(produce_blocks, (4,), credits=64)  # pushes the store over
    streamed = list(handle.iter_outputs(timeout=60))
    rt.wait_until(lambda: cluster.store.used_bytes <= cluster.store.budget_bytes,
                  what="spilling to bring the store under budget")
    assert threads and set(threads) == {"engine-runtime-background"}
    assert any(cluster.store.is_spilled(r.block_id) for r in kept)
    assert [r.get()["i"][0].as_py() for r in kept] == list(range(5))
    assert [r.get()["i"][0].as_py() for r in streamed] == list(range(4))


def test_failing_spill_is_not_retried_in_a_busy_loop(make_cluster, rt, tmp_path, monkeypatch):
    cluster = make_cluster(memory_budget=1 << 20)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    cluster.store.spill_dir = str(blocker / "spill")
    passes = []
    spill = cluster.store.spill_until_under_budget

    def counting_spill():
        passes.append(1)
        return spill()

    monkeypatch.setattr(cluster.store, "spill_until_under_budget", counting_spill)
    kept = [cluster.put(int_table(i)) for i in range(5)]
    for ref in kept:
        cluster.store.mark_spillable(ref.block_id)
    streamed = list(cluster.submit(produce_blocks, (4,), credits=64).iter_outputs(timeout=60))
    settled = rt.wait_stable(lambda: len(passes))
    assert 1 <= settled <= len(streamed) + 1  # one pass per new block at most, no spinning
    assert cluster.store.spill_failures >= 1
    assert [r.get()["i"][0].as_py() for r in kept + streamed] == [0, 1, 2, 3, 4, 0, 1, 2, 3]


def test_worker_forked_by_a_zygote_that_died_before_replying_is_sent_home(cluster, rt):
    zygote = cluster._zygote
    real_fork = zygote.fork
    orphans = []

    def fork_then_lose_the_reply(request):
        orphans.append(real_fork(request))  # the worker starts under this id...
        zygote.fork = real_fork
        # ...and says READY before the driver hears how its fork went (it must get no
        # work: the actor would run there, then lose its state when the worker is sent home)
        worker = cluster._workers[request["worker_id"]]
        rt.wait_until(lambda: worker.ready_unconfirmed, what="the orphan's READY")
        raise RuntimeError("the engine's zygote exited")  # ...but the driver never hears

    zygote.fork = fork_then_lose_the_reply
    actor = cluster.create_actor(Counter)
    assert value_of(actor.submit(bump, (3,))) == 3  # started again under a new id
    assert cluster.zygote_restarts == 1 and actor.restarts == 0
    rt.wait_until(lambda: rt.process_gone(orphans[0]), what="the unwatched worker to exit")
    assert orphans[0] not in cluster.worker_pids()
    assert [value_of(cluster.submit(add, (i, 1))) for i in range(3)] == [1, 2, 3]
    actor.kill()
