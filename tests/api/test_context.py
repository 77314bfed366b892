"""DataContext and per-operator options: the knobs users reach for, and that they act.

``DataContext.get_current()`` (one per process, Ray Data's defaults), block sizes
(``target_max_block_size``/``target_min_block_size``), the memory budget,
``max_errored_blocks``, ``execution_options.preserve_order`` and ``resource_limits``,
``enable_progress_bars``; ``map_batches(num_cpus=, memory=, max_retries=)`` and
``ActorPoolStrategy`` as ``compute=``. Each is checked by its effect: block row counts,
rows dropped, how many tasks ran at once (seen by the tasks themselves through marker
files, never measured in time), constructor calls counted in a file.

These tests start workers. None depends on timing: a task waits for a second concurrent
task only to force the situation under test, and the assertions that a limit holds do not
depend on how long anything took.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import engine as ed
from engine import session
from engine.context import DataContext, ExecutionOptions, ExecutionResources
from engine.errors import ResourceUnavailableError, WorkerCrashedError

MiB = 1 << 20


def block_rows(ds: ed.Dataset) -> list[int]:
    return [r.num_rows for r in ds.materialize().to_arrow_refs()]


# ====================================================================== the context itself


def test_get_current_is_one_context_per_process() -> None:
    ctx = DataContext.get_current()
    assert DataContext.get_current() is ctx
    seen: list[DataContext] = []
    thread = threading.Thread(target=lambda: seen.append(DataContext.get_current()))
    thread.start()
    thread.join()
    assert seen == [ctx] and seen[0] is ctx  # as Ray Data: threads share it
    assert ed.DataContext is DataContext


def test_defaults_match_ray_data() -> None:
    ctx = DataContext()
    assert ctx.target_max_block_size == 128 * MiB
    assert ctx.target_min_block_size == 1 * MiB
    assert ctx.max_errored_blocks == 0
    assert ctx.enable_progress_bars is True
    assert ctx.execution_options.preserve_order is False
    limits = ctx.execution_options.resource_limits
    assert (limits.cpu, limits.gpu, limits.object_store_memory) == (None, None, None)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert ctx.memory_budget == int(ram * 0.3)  # Ray's object store default: 30% of RAM


def test_copy_is_independent_and_config_round_trips(fresh_context: DataContext) -> None:
    copy = fresh_context.copy()
    copy.execution_options.preserve_order = True
    copy.target_max_block_size = 1
    assert fresh_context.execution_options.preserve_order is False
    assert fresh_context.target_max_block_size == 128 * MiB
    fresh_context.set_config("my.option", {"k": 1})
    assert fresh_context.get_config("my.option") == {"k": 1}
    assert fresh_context.get_config("missing", 7) == 7
    options = ExecutionOptions(preserve_order=True,
                               resource_limits=ExecutionResources(cpu=1))
    assert options.resource_limits.cpu == 1 and options.preserve_order


# ====================================================================== block sizes


def widen(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"id": batch["id"], "x": batch["id"].astype(np.float64)}


def test_target_max_block_size_splits_big_outputs(fresh_context: DataContext) -> None:
    fresh_context.target_max_block_size = 16 * 1024  # 1024 rows of two 8-byte columns
    ds = ed.range(10_000, override_num_blocks=1).map_batches(widen)
    rows = block_rows(ds)
    assert sum(rows) == 10_000 and len(rows) >= 10
    assert max(rows) * 16 <= 16 * 1024
    assert ds.sum("x") == float(sum(range(10_000)))


def test_target_min_block_size_coalesces_small_batches(fresh_context: DataContext) -> None:
    ds = ed.range(1000, override_num_blocks=1).map_batches(lambda b: b, batch_size=10)
    assert block_rows(ds) == [1000]  # 100 batches of 80 bytes, coalesced up to 1 MiB
    fresh_context.target_min_block_size = 1
    assert block_rows(ds) == [10] * 100


def test_object_store_memory_limit_caps_the_execution_budget(
        fresh_context: DataContext) -> None:
    fresh_context.execution_options.resource_limits.object_store_memory = 48 * MiB
    ds = ed.range(100).map_batches(lambda b: b)
    assert ds.count() == 100
    assert ds._last_executor is not None and ds._last_executor.budget == 48 * MiB


# ====================================================================== max_errored_blocks


def fail_on(batch: dict[str, np.ndarray], bad: tuple[int, ...]) -> dict[str, np.ndarray]:
    if int(batch["id"][0]) // 10 in bad:
        raise ValueError(f"block {int(batch['id'][0]) // 10} is bad")
    return batch


def with_failures(*bad: int) -> ed.Dataset:
    return ed.range(50, override_num_blocks=5).map_batches(fail_on, fn_kwargs={"bad": bad})


def test_max_errored_blocks_zero_fails_the_run(fresh_context: DataContext) -> None:
    with pytest.raises(ValueError, match="block 2 is bad"):
        with_failures(2).take_all()


def test_max_errored_blocks_drops_up_to_that_many_blocks(fresh_context: DataContext) -> None:
    fresh_context.max_errored_blocks = 1
    ds = with_failures(2)
    assert sorted(r["id"] for r in ds.take_all()) == [i for i in range(50) if i // 10 != 2]
    assert "max_errored_blocks" in ds.stats()
    with pytest.raises(ValueError, match="is bad"):
        with_failures(1, 3).take_all()  # two bad blocks, one allowed
    fresh_context.max_errored_blocks = -1  # unlimited
    assert sorted(r["id"] for r in with_failures(0, 1, 4).take_all()) == list(range(20, 40))


# ====================================================================== preserve_order


def slow_first(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if batch["id"][0] == 0:
        time.sleep(0.2)  # forces the first block to finish last
    return batch


def test_preserve_order_gives_input_order_through_union(fresh_context: DataContext) -> None:
    fresh_context.execution_options.preserve_order = True
    left = ed.range(40, override_num_blocks=4).map_batches(slow_first)
    right = ed.range(20, override_num_blocks=2).map_batches(lambda b: {"id": b["id"] + 100})
    expected = list(range(40)) + list(range(100, 120))
    for _ in range(2):
        assert [r["id"] for r in left.union(right).take_all()] == expected


# ====================================================================== resources


def probe(batch: dict[str, np.ndarray], folder: str, wait_s: float) -> dict[str, np.ndarray]:
    """Record how many probe tasks this task saw running at once (1 or 2): it waits up to
    ``wait_s`` for a second one to show up."""
    me = os.path.join(folder, f"running-{uuid.uuid4().hex}")
    open(me, "w").close()
    seen = 1
    deadline = time.monotonic() + wait_s
    while seen < 2 and time.monotonic() < deadline:
        seen = sum(1 for n in os.listdir(folder) if n.startswith("running-"))
        time.sleep(0.01)
    with open(os.path.join(folder, "seen"), "a") as f:
        f.write(f"{seen}\n")
    os.unlink(me)
    return batch


def most_at_once(tmp_path: Path, wait_s: float, **map_args: Any) -> int:
    ed.range(2, override_num_blocks=2).map_batches(
        probe, fn_kwargs={"folder": str(tmp_path), "wait_s": wait_s}, **map_args).materialize()
    return max(int(x) for x in (tmp_path / "seen").read_text().split())


@pytest.fixture
def two_cpus() -> None:
    if session.get_cluster().num_cpus < 2:
        pytest.skip("needs a cluster of at least 2 CPUs")


def test_tasks_run_side_by_side_by_default(two_cpus: None, tmp_path: Path) -> None:
    assert most_at_once(tmp_path, wait_s=60) == 2  # returns as soon as both meet


def test_num_cpus_holds_that_many_cpus(two_cpus: None, tmp_path: Path) -> None:
    cpus = session.get_cluster().num_cpus
    assert most_at_once(tmp_path, wait_s=0.5, num_cpus=cpus) == 1


def test_resource_limits_cpu_caps_running_tasks(two_cpus: None, tmp_path: Path,
                                                fresh_context: DataContext) -> None:
    fresh_context.execution_options.resource_limits.cpu = 1
    assert most_at_once(tmp_path, wait_s=0.5) == 1
    with pytest.raises(ResourceUnavailableError, match=r"num_cpus=2.*resource_limits.cpu=1"):
        ed.range(2).map_batches(lambda b: b, num_cpus=2).take_all()


def test_resource_limits_gpu_refuses_a_bigger_request(fresh_context: DataContext) -> None:
    fresh_context.execution_options.resource_limits.gpu = 0
    with pytest.raises(ResourceUnavailableError, match=r"num_gpus=1.0.*resource_limits.gpu=0"):
        ed.range(2).map_batches(lambda b: b, num_gpus=1, batch_size=2).take_all()


def test_memory_caps_running_tasks(two_cpus: None, tmp_path: Path) -> None:
    store = session.get_cluster().store
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    room = ram - store.budget_bytes  # what tasks may ask for
    assert most_at_once(tmp_path, wait_s=0.5, memory=int(room * 0.6)) == 1


def test_a_memory_request_that_can_never_fit_fails_at_once() -> None:
    # Ray Data waits forever for such a task; this engine refuses when the plan is built.
    with pytest.raises(ResourceUnavailableError, match=r"memory=\d+ bytes"):
        ed.range(2).map_batches(lambda b: b, memory=1 << 60).take_all()


@pytest.mark.parametrize("call", ["map", "flat_map", "filter"])
def test_row_udfs_take_num_gpus_and_memory_like_map_batches(call: str, two_cpus: None,
                                                            tmp_path: Path) -> None:
    fn = {"map": lambda r: r, "flat_map": lambda r: [r], "filter": lambda r: True}[call]
    with pytest.raises(ResourceUnavailableError, match=r"num_gpus=1.0"):
        getattr(ed.range(2), call)(fn, num_gpus=1).take_all()  # no GPU here: refused at once
    with pytest.raises(ResourceUnavailableError, match=r"memory=\d+ bytes"):
        getattr(ed.range(2), call)(fn, memory=1 << 60).take_all()
    with pytest.raises(TypeError, match="memory must be a number"):
        getattr(ed.range(2), call)(fn, memory="1GB")
    assert sorted(r["id"] for r in getattr(ed.range(4), call)(fn, memory=1000).take_all()) == \
        [0, 1, 2, 3]


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"num_cpus": -1}, ValueError, "num_cpus must be non-negative; got -1"),
    ({"num_gpus": -0.5}, ValueError, "num_gpus must be non-negative"),
    ({"memory": "1GB"}, TypeError, "memory must be a number; got str"),
    ({"max_retries": -2}, ValueError, "max_retries must be an int >= -1"),
    ({"max_retries": 1.5}, ValueError, "max_retries must be an int >= -1"),
])
def test_map_batches_rejects_bad_resource_arguments(kwargs: dict[str, Any], error: type,
                                                    message: str) -> None:
    with pytest.raises(error, match=message):
        ed.range(2).map_batches(lambda b: b, **kwargs)


# ====================================================================== max_retries


def die_once(batch: dict[str, np.ndarray], marker: str) -> dict[str, np.ndarray]:
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the worker process dies: a system failure
    return batch


def test_max_retries_retries_a_task_whose_worker_died(tmp_path: Path) -> None:
    for retries in (1, -1):  # -1: retry forever, as in Ray Data
        marker = str(tmp_path / f"died-{retries}")
        ds = ed.range(5, override_num_blocks=1).map_batches(
            die_once, fn_kwargs={"marker": marker}, max_retries=retries)
        assert [r["id"] for r in ds.take_all()] == [0, 1, 2, 3, 4]
    with pytest.raises(WorkerCrashedError, match="max_retries=0"):
        ed.range(5, override_num_blocks=1).map_batches(
            die_once, fn_kwargs={"marker": str(tmp_path / "died-0")}, max_retries=0).take_all()


def raise_and_count(batch: dict[str, np.ndarray], log: str) -> dict[str, np.ndarray]:
    with open(log, "a") as f:
        f.write("attempt\n")
    raise KeyError("application error")


def test_application_errors_are_not_retried(tmp_path: Path) -> None:
    log = tmp_path / "attempts"
    with pytest.raises(KeyError, match="application error"):
        ed.range(5, override_num_blocks=1).map_batches(
            raise_and_count, fn_kwargs={"log": str(log)}, max_retries=3).take_all()
    assert log.read_text().split() == ["attempt"]  # as Ray Data: only system failures retry


# ====================================================================== ActorPoolStrategy


class Tagger:
    """Counts its constructions in a file and tags rows with its process id."""

    def __init__(self, log: str) -> None:
        with open(log, "a") as f:
            f.write("init\n")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"id": batch["id"] * 10, "pid": np.full(len(batch["id"]), os.getpid())}


def test_actor_pool_strategy_builds_each_actor_once(tmp_path: Path) -> None:
    log = tmp_path / "inits"
    ds = ed.range(200, override_num_blocks=20).map_batches(
        Tagger, compute=ed.ActorPoolStrategy(size=2), fn_constructor_args=(str(log),),
        batch_size=10)
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == [i * 10 for i in range(200)]
    assert log.read_text().split() == ["init", "init"]  # a fixed pool of two actors
    assert len({r["pid"] for r in rows}) <= 2


def test_autoscaling_actor_pool_gives_the_same_rows(tmp_path: Path) -> None:
    ds = ed.range(100, override_num_blocks=10).map_batches(
        Tagger, compute=ed.ActorPoolStrategy(min_size=1, max_size=2),
        fn_constructor_kwargs={"log": str(tmp_path / "inits")})
    assert sorted(r["id"] for r in ds.take_all()) == [i * 10 for i in range(100)]
    assert 1 <= len((tmp_path / "inits").read_text().split()) <= 2


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"size": 0}, ValueError, "size must be at least 1, got 0"),
    ({"min_size": 0}, ValueError, "min_size must be at least 1, got 0"),  # Ray refuses too
    ({"min_size": 3, "max_size": 2}, ValueError, "max_size=2 < min_size=3"),
    ({"size": 2, "min_size": 1}, ValueError, "either size or min_size/max_size"),
    ({"size": "2"}, TypeError, "size must be an int; got str"),
    ({"max_tasks_in_flight_per_actor": 0}, ValueError, "max_tasks_in_flight_per_actor"),
])
def test_actor_pool_strategy_errors(kwargs: dict[str, Any], error: type,
                                    message: str) -> None:
    with pytest.raises(error, match=message):
        ed.ActorPoolStrategy(**kwargs)


def test_compute_strategy_must_fit_the_udf() -> None:
    with pytest.raises(ValueError, match="plain function cannot run on an actor pool"):
        ed.range(3).map_batches(lambda b: b, compute=ed.ActorPoolStrategy(size=1))
    with pytest.raises(ValueError, match="needs an actor pool"):
        ed.range(3).map_batches(Tagger, compute=ed.TaskPoolStrategy())
    with pytest.raises(ValueError, match="compute must be"):
        ed.range(3).map_batches(Tagger, compute="gpus")


# ====================================================================== progress bars


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("enabled", [True, False])
def test_enable_progress_bars(enabled: bool, fresh_context: DataContext,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_context.enable_progress_bars = enabled
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert ed.range(100, override_num_blocks=2).map_batches(lambda b: b).count() == 100
    monkeypatch.undo()
    assert ("MapBatches" in terminal.getvalue()) is enabled
