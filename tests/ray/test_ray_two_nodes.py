"""A two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head node and a
worker node, one CPU each): pipelines use both nodes and give exact results; a worker node
removed mid-pipeline gives the exact result through retries or a typed error, never a hang.

The engine connects with ``engine.init(address=cluster.address)``, as a driver on a real
cluster would (the ``engine`` package reaches the workers through ``runtime_env``).
"""

from __future__ import annotations

import numpy as np
import pytest
import ray

import engine as ed
from engine.errors import SystemException

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]


@pytest.fixture
def two_nodes(ray_instances):
    cluster = ray_instances.two_nodes()
    ed.shutdown()
    ed.init(address=cluster.address)
    yield cluster
    ed.shutdown()


def _tag_node(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import ray as ray_in_task

    node = ray_in_task.get_runtime_context().get_node_id()
    return {"id": batch["id"], "node": np.array([node] * len(batch["id"]))}


def _shipped_engine(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Where on this worker's import path Ray unpacked the job's copy of the package."""
    import os
    import sys

    found = [p for p in sys.path if "runtime_resources" in p
             and os.path.exists(os.path.join(p, "engine", "runtime", "interfaces.py"))]
    return {"path": np.array([found[0] if found else ""] * len(batch["id"]))}


def test_tasks_run_on_both_nodes(two_nodes):
    rows = ed.range(2000, override_num_blocks=16).map_batches(_tag_node).take_all()
    assert sorted(r["id"] for r in rows) == list(range(2000))
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert {r["node"] for r in rows} == alive and len(alive) == 2


def test_the_engine_package_travels_with_the_job(two_nodes):
    """engine.init(address=...) adds the driver's engine package to runtime_env's
    py_modules: Ray unpacks it on each node and puts it on the workers' import path, so a
    cluster without engine installed runs it too. (Here the workers find the editable
    install first: the driver's environment is theirs.)"""
    paths = {r["path"] for r in ed.range(100, override_num_blocks=4)
             .map_batches(_shipped_engine).take_all()}
    assert paths and "" not in paths, paths


class _Tagger:
    def __init__(self) -> None:
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"id": batch["id"] * 2, "node": np.array([self.node] * len(batch["id"]))}


def test_actor_pool_and_all_to_all_across_nodes(two_nodes):
    ds = (ed.range(1000, override_num_blocks=10)
          .map_batches(_Tagger, concurrency=2, num_cpus=1)
          .random_shuffle(seed=3)
          .repartition(5))
    mat = ds.materialize()
    rows = mat.take_all()
    assert sorted(r["id"] for r in rows) == [2 * i for i in range(1000)]
    assert len({r["node"] for r in rows}) == 2  # one actor per node: each holds its CPU
    assert mat.num_blocks() == 5
    assert mat.sum("id") == 2 * 499500


@ray.remote(num_cpus=0)
def _consume(it) -> tuple[int, int, str]:
    rows = total = 0
    for batch in it.iter_batches(batch_size=None):
        rows += len(batch["id"])
        total += int(batch["id"].sum())
    return rows, total, ray.get_runtime_context().get_node_id()


def test_streaming_split_consumed_on_two_nodes(two_nodes):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    its = ed.range(1000, override_num_blocks=10).map_batches(lambda b: b) \
        .streaming_split(2, equal=True)
    results = ray.get([
        _consume.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
        .remote(it) for it, node in zip(its, nodes, strict=True)])
    assert [r[0] for r in results] == [500, 500]
    assert sum(r[1] for r in results) == 499500  # equal=True drops no row of 1000
    assert {r[2] for r in results} == set(nodes)


def test_write_and_read_on_shared_storage(two_nodes, tmp_path):
    """Both nodes run on this machine, so tmp_path is shared: the write lands whole."""
    out = str(tmp_path / "out")
    ed.range(600, override_num_blocks=6).map_batches(_tag_node).write_parquet(out)
    back = ed.read_parquet(out)
    rows = back.take_all()
    assert sorted(r["id"] for r in rows) == list(range(600))
    assert len({r["node"] for r in rows}) == 2  # written from both nodes


def test_local_path_missing_on_nodes_is_a_clear_error(two_nodes, tmp_path):
    from engine.io.filesystem import resolve_filesystem
    from engine.shared_storage import check_shared_read

    _, handle = resolve_filesystem([str(tmp_path)], None)
    with pytest.raises(ValueError, match="2 of the cluster's 2 nodes cannot see it"):
        check_shared_read(handle, str(tmp_path / "only-on-the-driver.parquet"))


def test_worker_node_removed_mid_pipeline(two_nodes, ray_instances, tmp_path):
    """The worker node goes away while a task runs on it: the result is exact (Ray retries
    the task on the head node) or the error is the engine's typed system error; no hang."""
    import threading

    gate = tmp_path / "started"
    head_id = ray.get_runtime_context().get_node_id()

    def stuck_on_worker(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import threading as task_threading

        if ray.get_runtime_context().get_node_id() != head_id:
            gate.write_text("a task runs on the worker node")
            task_threading.Event().wait()  # until its node is removed
        return batch

    ds = ed.range(400, override_num_blocks=8).map_batches(stuck_on_worker)
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["rows"] = sorted(r["id"] for r in ds.take_all())
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ray_instances.remove_worker_node_once(gate.exists)
    thread.join(timeout=180)
    assert not thread.is_alive(), "the pipeline hung after its worker node was removed"
    if "error" in result:
        assert isinstance(result["error"], SystemException), repr(result["error"])
    else:
        assert result["rows"] == list(range(400))
