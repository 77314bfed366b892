"""The chaos suite: long pipelines (map tasks, an actor pool, materialize then iterate) while
workers, actors and the zygote are SIGKILLed and block files deleted, across seeds. Every
result is exact or a typed ``SystemException``; nothing hangs (pytest-timeout guards each
test). Kills come from the UDFs themselves at batches a seeded plan picks (deterministic),
and from a seeded monkey thread that kills random engine processes while the pipeline runs
(whatever their timing, both outcomes above are allowed, so no test depends on it)."""

from __future__ import annotations

import os
import random
import re
import signal
import sys
import threading

import cloudpickle
import numpy as np
import psutil
import pytest

import engine as ed
from engine.errors import ObjectLostError, SystemException

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120),
              pytest.mark.usefixtures("module_cluster")]

SEEDS = [11, 23, 37]
N = 120_000
BATCH = 5_000  # 24 batches: ids [k * BATCH, (k + 1) * BATCH)
MONKEY_KILLS = 2


# ---------------------------------------------------------------- faults the UDFs cause


def _kill_zygote_from_worker() -> None:
    """SIGKILL the zygote (this worker's parent), never anything else."""
    parent = os.getppid()
    try:
        cmdline = " ".join(psutil.Process(parent).cmdline())
    except psutil.Error:
        return
    if "engine.runtime.zygote" in cmdline:
        os.kill(parent, signal.SIGKILL)


def _maybe_fault(batch, plan: dict[int, str], marker_dir: str) -> None:
    """Act out the plan's fault for this batch, once (a marker file records it)."""
    ids = batch["id"]
    if not len(ids):
        return
    k = int(ids[0]) // BATCH
    action = plan.get(k)
    if action is None:
        return
    marker = os.path.join(marker_dir, f"{action}-{k}")
    if os.path.exists(marker):
        return
    open(marker, "w").close()
    if action == "zygote":
        _kill_zygote_from_worker()
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def _task_udf(batch, plan, marker_dir):
    _maybe_fault(batch, plan, marker_dir)
    return {"id": batch["id"], "sq": batch["id"] * batch["id"]}


class ChaosActor:
    def __init__(self, plan, marker_dir):
        self.plan = plan
        self.marker_dir = marker_dir

    def __call__(self, batch):
        _maybe_fault(batch, self.plan, self.marker_dir)
        return {"id": batch["id"], "twice": batch["id"] * 2}


def _fault_plan(rng: random.Random, n: int) -> dict[int, str]:
    batches = rng.sample(range(N // BATCH), n)
    return {k: rng.choice(["self", "self", "zygote"]) for k in batches}


# ---------------------------------------------------------------- faults from outside


class Monkey:
    """Kills up to ``kills`` random engine processes (workers, actors, the zygote) at seeded
    random moments while a pipeline runs."""

    def __init__(self, rng: random.Random, kills: int) -> None:
        self.rng = rng
        self.kills = kills
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Monkey:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        cluster = ed.init()
        while len(self.killed) < self.kills:
            if self._stop.wait(self.rng.uniform(0.05, 0.4)):
                return
            victims = [*cluster.worker_pids(), cluster.zygote_pid()]
            pid = self.rng.choice(victims)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.killed.append(pid)


def _exact_or_typed(run, check) -> str:
    """Run a pipeline: its result must be exact, or its error a typed SystemException."""
    try:
        result = run()
    except SystemException as exc:
        assert str(exc), "a typed error says what failed"
        return type(exc).__name__
    check(result)
    return "exact"


# ---------------------------------------------------------------- the suite


@pytest.mark.parametrize("seed", SEEDS)
def test_task_and_actor_pipeline_under_kills(tmp_path, seed):
    rng = random.Random(seed)
    plan = _fault_plan(rng, 4)
    marker_dir = str(tmp_path)
    ds = (ed.range(N, override_num_blocks=12)
          .map_batches(_task_udf, fn_kwargs={"plan": plan, "marker_dir": marker_dir},
                       batch_size=BATCH)
          .map_batches(ChaosActor, fn_constructor_args=(plan, marker_dir), concurrency=2,
                       batch_size=BATCH))

    def check(mat):
        ids = np.sort(np.concatenate([b["id"] for b in mat.iter_batches(batch_size=None)]))
        assert np.array_equal(ids, np.arange(N))  # each row exactly once
        assert mat.sum("twice") == N * (N - 1)

    with Monkey(rng, MONKEY_KILLS):
        outcome = _exact_or_typed(ds.materialize, check)
    assert outcome in ("exact", "WorkerCrashedError", "ActorDiedError")
    # The engine recovers for the next pipeline, whatever happened.
    assert ed.range(1000).map_batches(lambda b: {"id": b["id"] + 1}).sum("id") == 500500


@pytest.mark.parametrize("seed", SEEDS)
def test_streaming_map_pipeline_under_kills(tmp_path, seed):
    rng = random.Random(seed + 1)
    plan = _fault_plan(rng, 3)
    ds = (ed.range(N, override_num_blocks=24)
          .map_batches(_task_udf, fn_kwargs={"plan": plan, "marker_dir": str(tmp_path)},
                       batch_size=BATCH)
          .filter(expr=ed.col("id") % 2 == 0))

    def run():
        return np.concatenate([b["sq"] for b in ds.iter_batches(batch_size=4096)])

    def check(sq):
        evens = np.arange(0, N, 2)
        assert np.array_equal(np.sort(sq), evens * evens)

    with Monkey(rng, MONKEY_KILLS):
        outcome = _exact_or_typed(run, check)
    assert outcome in ("exact", "WorkerCrashedError")


@pytest.mark.parametrize("seed", SEEDS)
def test_materialized_blocks_deleted_then_iterated(tmp_path, seed):
    rng = random.Random(seed + 2)
    mat = (ed.range(N, override_num_blocks=12)
           .map_batches(_task_udf, fn_kwargs={"plan": _fault_plan(rng, 2),
                                              "marker_dir": str(tmp_path)}, batch_size=BATCH)
           .materialize())
    stored = [r for r in mat._refs if r.in_store]
    victims = rng.sample(stored, rng.randint(0, 2))
    for ref in victims:
        os.unlink(ref.path)
    downstream = mat.map_batches(lambda b: {"id": b["id"], "neg": -b["id"]})
    names = "|".join(r.block_id for r in victims) or "none"

    def exact_or_lost(run, check):  # rebuilt from lineage, or lost for good, named
        try:
            assert check(run())
        except ObjectLostError as exc:
            assert victims and re.search(names, str(exc)), exc

    exact_or_lost(lambda: downstream.sum("neg"), lambda s: s == -N * (N - 1) // 2)
    for ref in victims:  # the downstream run may have rebuilt them: lose them again
        if os.path.exists(ref.path):
            os.unlink(ref.path)
    exact_or_lost(lambda: np.concatenate([b["id"] for b in mat.iter_batches()]),
                  lambda ids: np.array_equal(np.sort(ids), np.arange(N)))
