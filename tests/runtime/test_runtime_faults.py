"""Fault injection on task workers: a worker SIGKILLed mid-task is replaced and its task
retried without duplicating or losing outputs; without retries the task fails with
``WorkerCrashedError``."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

from engine.errors import WorkerCrashedError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BIG_ROWS = 20_000  # 160 KB of int64: stored, not inline


def int_table(value: int, rows: int) -> pa.Table:
    return pa.table({"i": pa.array(np.full(rows, value, dtype=np.int64))})


# ---------------------------------------------------------------- functions run on workers


def stream_then_die_once(marker, n, die_at):
    """Yield n blocks (stored and inline alternately); on the first attempt only, SIGKILL
    this worker before block ``die_at``."""
    first = not os.path.exists(marker)
    if first:
        open(marker, "w").close()
    for i in range(n):
        if first and i == die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        yield int_table(i, BIG_ROWS if i % 2 == 0 else 3)


def stream_with_crash_in_write(marker, n, partial):
    """Yield n stored blocks; on the first attempt, the worker dies while writing block 0
    (``partial``) or right after writing it, before reporting it to the driver."""
    import engine.runtime.worker as worker_module

    if not os.path.exists(marker):
        open(marker, "w").close()
        real_write = worker_module.write_block_file

        def write_then_die(path, table):
            if partial:
                with open(path + ".tmp", "wb") as f:
                    f.write(b"ARROW1\0\0half a block")
            else:
                real_write(path, table)
            os.kill(os.getpid(), signal.SIGKILL)

        worker_module.write_block_file = write_then_die
    for i in range(n):
        yield int_table(i, BIG_ROWS)


def wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def report_pid_then_wait(pid_file, release_file):
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(pid_file + ".tmp", pid_file)  # the test never reads a half-written pid
    wait_for_file(release_file)
    return os.getpid()


def add(a, b):
    return a + b


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------- 6. workers killed


@pytest.mark.parametrize("die_at", [1, 5])
def test_stream_killed_mid_task_delivers_every_output_once(cluster, rt, tmp_path, die_at):
    n = 8
    handle = cluster.submit(stream_then_die_once, (str(tmp_path / "marker"), n, die_at),
                            max_retries=3)
    values = [ref.get()["i"][0].as_py() for ref in handle.iter_outputs(timeout=60)]
    assert values == list(range(n))
    assert handle.error is None
    assert cluster.tasks_retried == 1
    rt.wait_until(lambda: len(rt.live_workers(cluster)) == cluster.num_cpus,
                  what="a replacement worker")
    # Blocks the dead attempt wrote but the driver never accepted are not left behind.
    gc.collect()
    rt.wait_until(lambda: rt.block_files(cluster) == [], what="orphaned blocks to go")
    assert cluster.store.used_bytes == 0


@pytest.mark.parametrize("partial", [False, True], ids=["after_write", "during_write"])
def test_blocks_of_a_worker_that_died_before_reporting_them_are_removed(cluster, rt, tmp_path,
                                                                       partial):
    handle = cluster.submit(stream_with_crash_in_write, (str(tmp_path / "m"), 3, partial))
    refs = list(handle.iter_outputs(timeout=60))
    assert [r.get()["i"][0].as_py() for r in refs] == [0, 1, 2]
    assert cluster.tasks_retried == 1
    # Only the blocks the driver holds references to are in the store.
    held = sorted(r.block_id for r in refs)
    rt.wait_until(lambda: rt.block_files(cluster) == held,
                  what="the dead attempt's block file to be removed")
    del refs
    gc.collect()
    assert rt.block_files(cluster) == [] and cluster.store.used_bytes == 0


def test_killed_worker_task_is_retried_on_a_replacement(cluster, rt, tmp_path):
    pid_file, release = str(tmp_path / "pid"), str(tmp_path / "release")
    original_workers = set(cluster.worker_pids())
    handle = cluster.submit(report_pid_then_wait, (pid_file, release), max_retries=3)
    first_pid = rt.wait_until(lambda: read_pid(pid_file), what="the task to start")
    assert first_pid in original_workers
    os.kill(first_pid, signal.SIGKILL)
    second_pid = rt.wait_until(lambda: (read_pid(pid_file) or first_pid) != first_pid
                               and read_pid(pid_file), what="the retried attempt to start")
    assert not handle.done
    open(release, "w").close()
    (out,) = handle.iter_outputs(timeout=60)
    assert out.value == second_pid != first_pid
    assert cluster.tasks_retried == 1
    rt.wait_until(lambda: len(rt.live_workers(cluster)) == cluster.num_cpus,
                  what="num_cpus live workers")
    assert first_pid not in cluster.worker_pids()
    # The replacement takes work like any worker.
    handles = [cluster.submit(add, (i, i)) for i in range(4)]
    assert [next(h.iter_outputs(timeout=60)).value for h in handles] == [0, 2, 4, 6]


def test_killed_worker_without_retries_fails_the_task(cluster, rt, tmp_path):
    pid_file, release = str(tmp_path / "pid"), str(tmp_path / "release")
    handle = cluster.submit(report_pid_then_wait, (pid_file, release), max_retries=0)
    pid = rt.wait_until(lambda: read_pid(pid_file), what="the task to start")
    os.kill(pid, signal.SIGKILL)
    assert handle.wait(60)
    assert isinstance(handle.error, WorkerCrashedError)
    assert f"pid {pid}" in str(handle.error)
    with pytest.raises(WorkerCrashedError):
        list(handle.iter_outputs(timeout=60))
    assert cluster.tasks_retried == 0
    rt.wait_until(lambda: len(rt.live_workers(cluster)) == cluster.num_cpus,
                  what="num_cpus live workers")
    assert next(cluster.submit(add, (1, 2)).iter_outputs(timeout=60)).value == 3
