"""The engine over Ray Client (``engine.init(address="ray://host:port")``): a Ray instance on
this machine serves Ray Client on loopback; pipelines, actor pools, an all-to-all operation,
writes and errors run through it with exact results."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import ray

import engine as ed
from engine.errors import UserCodeError

pytestmark = pytest.mark.ray


@pytest.fixture
def ray_client(ray_instances) -> Iterator[None]:
    port = ray_instances.client_server()
    ed.shutdown()
    ed.init(address=f"ray://127.0.0.1:{port}")
    yield
    ed.shutdown()
    assert not ray.is_initialized()  # disconnected: nothing of the client left behind


class _Scale:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"id": batch["id"] * self.factor}


def test_runs_on_ray_client(ray_client):
    from engine import session
    from engine.runtime.ray_backend.cluster import RayCluster

    cluster = session.get_cluster()
    assert isinstance(cluster, RayCluster) and cluster.client
    assert ray.util.client.ray.is_connected()
    # Ray's spilled-bytes count is asked of the cluster by a task over Ray Client
    from engine.runtime.ray_backend.spilled import _spilled_bytes_on_cluster

    assert _spilled_bytes_on_cluster(True) >= 0
    ds = (ed.range(10_000, override_num_blocks=8)
          .map_batches(lambda b: {"id": b["id"], "sq": b["id"] ** 2}, batch_size=500)
          .filter(expr=ed.col("id") % 3 == 0))
    rows = ds.take_all()
    assert sorted(r["sq"] for r in rows) == [i * i for i in range(0, 10_000, 3)]
    # an actor pool, then all-to-all: a sort and a groupby
    scaled = ed.range(2_000, override_num_blocks=6).map_batches(
        _Scale, fn_constructor_args=(2,), concurrency=2, batch_size=100)
    ordered = scaled.sort("id", descending=True).take_all()
    assert [r["id"] for r in ordered] == [2 * i for i in range(1_999, -1, -1)]
    groups = (ed.range(1_000, override_num_blocks=5)
              .with_column("key", ed.col("id") % 7).groupby("key").sum("id").take_all())
    assert {r["key"]: r["sum(id)"] for r in groups} == \
        {k: sum(range(k, 1_000, 7)) for k in range(7)}


def test_shuffle_join_and_write_on_ray_client(ray_client, tmp_path):
    left = ed.range(300, override_num_blocks=3).with_column("v", ed.col("id") * 10)
    right = ed.range(300, override_num_blocks=2).filter(expr=ed.col("id") < 100)
    joined = left.join(right, join_type="inner", num_partitions=2, on=("id",))
    assert sorted((r["id"], r["v"]) for r in joined.take_all()) == \
        [(i, 10 * i) for i in range(100)]
    shuffled = ed.range(500, override_num_blocks=4).random_shuffle(seed=3)
    assert sorted(r["id"] for r in shuffled.take_all()) == list(range(500))
    out = str(tmp_path / "out")  # one machine: the local path is shared by every node
    ed.range(250, override_num_blocks=3).write_parquet(out)
    assert ed.read_parquet(out).sum("id") == sum(range(250))


def test_user_error_over_ray_client(ray_client):
    def boom(batch):
        raise ValueError("bad row in the client test")

    with pytest.raises(UserCodeError, match="bad row in the client test"):
        ed.range(10).map_batches(boom).take_all()
    assert ed.range(10).count() == 10  # still usable afterwards


@ray.remote(num_cpus=0)
def _consume(it) -> list[int]:
    return [int(x) for batch in it.iter_batches(batch_size=64) for x in batch["id"]]


def test_streaming_split_consumed_by_ray_tasks_over_ray_client(ray_client):
    its = ed.range(1_000, override_num_blocks=8).streaming_split(2, equal=True)
    for _ in range(2):  # two epochs
        parts = ray.get([_consume.remote(it) for it in its])
        assert len(parts[0]) == len(parts[1]) == 500
        assert sorted(parts[0] + parts[1]) == list(range(1_000))
