"""Start and end of a LocalCluster: shutdown leaves no process, shared-memory directory or
spill directory behind, and a driver killed with SIGKILL takes its workers and zygote with
it while they remove its session's directories."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

cloudpickle.register_pickle_by_value(sys.modules[__name__])

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def blocked(started_file, release_file):
    open(started_file, "w").close()
    wait_for_file(release_file, timeout=120)


class Idle:
    pass


def pid_of(actor):
    return os.getpid()


# ---------------------------------------------------------------- 11. shutdown


def test_shutdown_leaves_nothing_behind(make_cluster, rt, tmp_path):
    cluster = make_cluster(memory_budget=1 << 20)
    store_dir, spill_dir = cluster.store.dir, cluster.store.spill_dir
    zygote = cluster._zygote.proc
    refs = []
    for k in range(4):  # ~0.5 MB each: some spill
        ref = cluster.put(pa.table({"i": np.arange(k, k + 60_000)}))
        cluster.store.mark_spillable(ref.block_id)
        refs.append(ref)
    assert rt.spill_files(cluster) and rt.block_files(cluster)
    actor = cluster.create_actor(Idle)
    (out,) = actor.submit(pid_of).iter_outputs(timeout=60)
    actor_pid = out.value
    started = str(tmp_path / "started")
    busy = cluster.submit(blocked, (started, str(tmp_path / "never")))
    rt.wait_until(lambda: os.path.exists(started), what="the blocking task to start")
    pids = cluster.worker_pids()
    assert actor_pid in pids and len(pids) == cluster.num_cpus + 1

    cluster.shutdown()
    assert not os.path.exists(store_dir)
    assert not os.path.exists(spill_dir)
    assert zygote.poll() is not None
    rt.wait_until(lambda: all(rt.process_gone(pid) for pid in pids), timeout=10,
                  what="every worker to exit")
    assert busy.done and busy.error is not None  # a task cut short by shutdown fails
    assert cluster.shutdown_kills == 1  # only the busy worker needed a SIGKILL
    del refs, ref  # freeing refs after shutdown is harmless
    gc.collect()
    with pytest.raises(RuntimeError, match="shut down"):
        cluster.submit(pid_of, (None,))
    cluster.shutdown()  # idempotent


def test_shutdown_right_after_start_is_prompt(make_cluster, rt):
    """Workers that have not connected yet must not be waited on (nor left running)."""
    cluster = make_cluster()
    pids = cluster.worker_pids()
    cluster.shutdown()
    rt.wait_until(lambda: all(rt.process_gone(pid) for pid in pids), timeout=10,
                  what="every worker to exit")
    assert cluster.shutdown_kills == 0  # every worker stopped when asked, none was killed


# ---------------------------------------------------------------- 10. the driver dies

DRIVER_SCRIPT = textwrap.dedent("""
    import os
    import sys
    import time
    import numpy as np
    import pyarrow as pa
    from engine.runtime.cluster import LocalCluster

    def busy(started):  # a long UDF: its worker must not outlive the driver either
        open(started, "w").close()
        time.sleep(300)

    cluster = LocalCluster(num_cpus=2, memory_budget=1 << 20)
    refs = [cluster.put(pa.table({"i": np.arange(60_000) + k})) for k in range(4)]
    for ref in refs:
        cluster.store.mark_spillable(ref.block_id)  # leave a spill directory behind too
    actor = cluster.create_actor(dict)
    actor.ready.wait(60)
    handle = cluster.submit(busy, (sys.argv[1],))
    deadline = time.monotonic() + 60
    while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
        time.sleep(0.01)
    pids = [cluster._zygote.proc.pid, *cluster.worker_pids()]
    print(cluster.store.dir, cluster.store.spill_dir, *pids, flush=True)
    time.sleep(600)
""")


@pytest.mark.slow
def test_driver_killed_takes_workers_and_zygote_with_it(rt, tmp_path):
    started = str(tmp_path / "started")
    driver = subprocess.Popen([sys.executable, "-c", DRIVER_SCRIPT, started], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        line = driver.stdout.readline()  # EOF (and a failure below) if the driver crashed
        store_dir, spill_dir, *pid_words = line.split()
        pids = [int(w) for w in pid_words]
        assert len(pids) == 1 + 2 + 1  # the zygote, two task workers, one actor
        assert os.path.isdir(store_dir) and os.path.isdir(spill_dir)
        assert os.path.exists(started)  # one worker is busy in a long task
        assert not any(rt.process_gone(pid) for pid in pids)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        driver.stdout.close()
    rt.wait_until(lambda: all(rt.process_gone(pid) for pid in pids), timeout=20,
                  what="the zygote and every worker to exit after the driver died")
    # The processes that outlived the driver removed its directories on their way out.
    rt.wait_until(lambda: not (os.path.exists(store_dir) or os.path.exists(spill_dir)),
                  timeout=20, what="the dead driver's store and spill directories to go")


def test_wait_ready_returns_once_every_task_worker_process_is_up():
    # init() itself returns while they start (the driver lane covers reads meanwhile).
    import engine as ed

    ed.shutdown()
    try:
        cluster = ed.init(num_cpus=2)
        assert cluster.wait_ready(timeout=120)
        workers = [w for w in cluster._workers.values()
                   if w.actor_id is None and not w.in_driver]
        assert len(workers) == 2 and all(w.ready for w in workers)
        assert len(cluster.worker_pids()) == 2 and os.getpid() not in cluster.worker_pids()
    finally:
        ed.shutdown()
