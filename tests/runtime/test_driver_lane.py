"""The driver lane: while the worker processes start, tasks that hold no user code
(``submit(local_ok=True)``) run on a thread of the driver; nothing else does, and the lane
is sent home once every worker is up. The zygote here forks only when the test lets it, so
"the workers are still starting" is a state the test holds, not a race it hopes to win."""

from __future__ import annotations

import os
import sys
import threading

import cloudpickle
import numpy as np
import pyarrow as pa

from engine.runtime.zygote import Zygote

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _GatedZygote(Zygote):
    """A real zygote whose forks wait until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def fork(self, request):
        self.gate.wait(120)
        return super().fork(request)


def _pid_table(rows: int) -> pa.Table:
    return pa.table({"pid": np.full(rows, os.getpid(), dtype=np.int64)})


def _pid_value() -> int:
    return os.getpid()


def _lanes() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "engine-driver-lane"]


def test_engine_tasks_run_in_the_driver_while_the_workers_start(make_cluster):
    zygote = _GatedZygote()
    cluster = make_cluster(num_cpus=2, zygote=zygote, ready=False)
    try:
        user_task = cluster.submit(_pid_value)  # may hold user code: waits for a worker
        engine_task = cluster.submit(_pid_table, (50_000,), local_ok=True)
        (ref,) = engine_task.iter_outputs(timeout=60)
        # A stored block like any worker's, made by this process.
        assert ref.in_store and set(ref.get().column("pid").to_pylist()) == {os.getpid()}
        assert not user_task.done and cluster.worker_pids() == []
    finally:
        zygote.gate.set()
    (out,) = user_task.iter_outputs(timeout=60)
    assert out.value != os.getpid() and out.value in cluster.worker_pids()


def test_the_lane_goes_home_once_the_workers_are_up(cluster, rt):
    rt.wait_until(lambda: cluster.state_sizes()["workers"] == 2, timeout=60,
                  what="the driver lane to leave")
    rt.wait_until(lambda: not _lanes(), timeout=60, what="the lane's thread to end")
    outs = [h.iter_outputs(timeout=60) for h in
            [cluster.submit(_pid_value, local_ok=True) for _ in range(4)]]
    assert {out.value for (out,) in outs} <= set(cluster.worker_pids())


def test_a_cluster_shut_down_while_starting_leaves_no_lane(make_cluster):
    zygote = _GatedZygote()
    cluster = make_cluster(num_cpus=2, zygote=zygote, ready=False)
    zygote.gate.set()
    cluster.shutdown()
    assert not _lanes()


def test_no_lane_when_disabled(make_cluster):
    zygote = _GatedZygote()
    cluster = make_cluster(num_cpus=1, zygote=zygote, driver_lane=False, ready=False)
    try:
        task = cluster.submit(_pid_value, local_ok=True)
        assert not _lanes() and not task.done
    finally:
        zygote.gate.set()
    (out,) = task.iter_outputs(timeout=60)
    assert out.value in cluster.worker_pids()
