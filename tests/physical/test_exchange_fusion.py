"""The map side of an exchange fused with the maps before it: one task reads, maps and
partitions, and the results stay exact."""

from __future__ import annotations

import sys

import cloudpickle
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine as ed
from engine.errors import UserCodeError
from engine.physical.operators.exchange import ExchangeOperator

cloudpickle.register_pickle_by_value(sys.modules[__name__])

FILES = 4
ROWS = 500  # per file


pytestmark = pytest.mark.usefixtures("module_cluster")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("fusion")
    for i in range(FILES):
        ids = np.arange(i * ROWS, (i + 1) * ROWS)
        pq.write_table(pa.table({"id": ids, "g": ids % 7, "x": ids * 0.5}),
                       root / f"part-{i}.parquet")
    return str(root)


def _double(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"id": batch["id"] * 2, "g": batch["g"], "x": batch["x"]}


def _ops(ds: ed.Dataset) -> list[str]:
    """The physical operators of the last execution, as ``Type[name]``."""
    assert ds._last_executor is not None
    return [f"{type(op).__name__}[{op.name}]" for op in ds._last_executor.ops]


def _exchange(ds: ed.Dataset) -> ExchangeOperator:
    assert ds._last_executor is not None
    found = [op for op in ds._last_executor.ops if isinstance(op, ExchangeOperator)]
    assert len(found) == 1
    return found[0]


def test_shuffle_runs_read_map_and_partitioning_in_one_task(data_dir):
    ds = ed.read_parquet(data_dir, override_num_blocks=FILES).map_batches(_double) \
        .random_shuffle()
    ids = sorted(r["id"] for r in ds.take_all())
    assert ids == [2 * i for i in range(FILES * ROWS)]
    # No map operator of its own: the read tasks go straight to the exchange, whose map
    # tasks (one per read task) run the read, the UDF and the partitioning.
    assert _ops(ds) == ["InputDataOperator[Input[ReadParquet]]",
                        "ExchangeOperator[ReadParquet->MapBatches(_double)->RandomShuffle]"]
    op = _exchange(ds)
    assert op.stats.extra["map tasks"] == FILES  # one per read task
    assert "fused" in op.describe()
    assert "ReadParquet->MapBatches(_double)->RandomShuffle" in ds.stats()


def test_fused_seeded_shuffle_is_repeatable_and_differs_by_seed(data_dir):
    def run(seed: int) -> list[int]:
        ds = ed.read_parquet(data_dir).map_batches(_double).random_shuffle(seed=seed)
        return [r["id"] for r in ds.take_all()]

    first = run(3)
    assert first == run(3)
    assert first != run(4)
    assert sorted(first) == [2 * i for i in range(FILES * ROWS)]


def test_fused_seeded_shuffle_over_blocks_is_repeatable():
    source = ed.range(1000, override_num_blocks=7).materialize()

    def run() -> list[int]:
        return [r["id"] for r in source.map_batches(_plus_one).random_shuffle(seed=9)
                .take_all()]

    first = run()
    assert first == run() and sorted(first) == list(range(1, 1001))


def _plus_one(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"id": batch["id"] + 1}


def test_fused_groupby_sort_repartition_and_join_are_exact(data_dir):
    ids = np.arange(FILES * ROWS) * 2
    base = ed.read_parquet(data_dir).map_batches(_double)
    groups = base.groupby("g").sum("id").take_all()
    expected = {g: int(ids[(ids // 2) % 7 == g].sum()) for g in range(7)}
    assert {r["g"]: r["sum(id)"] for r in groups} == expected
    ordered = [r["id"] for r in base.sort("id", descending=True).take_all()]
    assert ordered == sorted(ids.tolist(), reverse=True)
    parts = base.repartition(3, shuffle=True).materialize()
    assert parts.num_blocks() == 3 and sorted(r["id"] for r in parts.take_all()) == \
        ids.tolist()
    keyed = base.repartition(5, keys=["g"]).materialize()
    for block in keyed.iter_batches(batch_size=None, batch_format="pyarrow"):
        assert len(set(block.column("g").to_pylist())) <= 7
    assert sorted(r["id"] for r in keyed.take_all()) == ids.tolist()
    right = ed.read_parquet(data_dir).map_batches(_double).select_columns(["id", "x"])
    joined = base.join(right, "inner", num_partitions=3, on=("id",),
                       left_suffix="_l", right_suffix="_r").take_all()
    assert sorted(r["id"] for r in joined) == ids.tolist()
    assert all(r["x_l"] == r["x_r"] for r in joined)


def test_fused_udf_error_names_the_udf(data_dir):
    def broken(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise KeyError("no such thing")

    ds = ed.read_parquet(data_dir).map_batches(broken).random_shuffle()
    with pytest.raises(UserCodeError, match="broken") as info:
        ds.take_all()
    assert isinstance(info.value, KeyError)


def test_no_fusion_where_a_stage_of_its_own_is_needed(data_dir):
    ctx = ed.DataContext.get_current()
    ds = ed.read_parquet(data_dir).map_batches(_double, concurrency=1).random_shuffle()
    assert sorted(r["id"] for r in ds.take_all())[:3] == [0, 2, 4]
    assert len(_ops(ds)) == 3  # a concurrency cap keeps the map stage
    ds = ed.read_parquet(data_dir).map_batches(_double, max_retries=0).random_shuffle()
    assert len(ds.take_all()) == FILES * ROWS
    assert len(_ops(ds)) == 3  # so do retries of its own
    ctx.disabled_rules = frozenset({"FuseMaps"})
    try:
        ds = ed.read_parquet(data_dir).map_batches(_double).random_shuffle()
        assert len(ds.take_all()) == FILES * ROWS
        assert _ops(ds)[-2:] == ["TaskPoolMapOperator[MapBatches(_double)]",
                                 "ExchangeOperator[RandomShuffle]"]
    finally:
        ctx.disabled_rules = frozenset()


def test_maps_after_an_exchange_run_in_its_reduce_tasks(data_dir, tmp_path):
    ds = ed.range(1000, override_num_blocks=5).sort("id", descending=True) \
        .map_batches(_plus_one)
    assert [r["id"] for r in ds.take_all()] == list(range(1000, 0, -1))
    assert _ops(ds)[-1] == "ExchangeOperator[Sort(id desc)->MapBatches(_plus_one)]"
    assert "reduce side fused" in _exchange(ds).describe()
    # sort -> write_parquet: each reduce task writes its sorted partition
    source = ed.read_parquet(data_dir).map_batches(_double)
    source.sort("x").write_parquet(str(tmp_path))
    files = sorted(tmp_path.glob("*.parquet"))
    assert files
    written = pa.concat_tables([pq.read_table(f) for f in files])
    assert sorted(written.column("id").to_pylist()) == [2 * i for i in range(FILES * ROWS)]
    for f in files:  # each reduce task wrote one sorted range
        xs = pq.read_table(f).column("x").to_numpy()
        assert (np.diff(xs) >= 0).all()
    groups = ed.read_parquet(data_dir).groupby("g").count().map_batches(_count_twice)
    assert {r["g"]: r["twice"] for r in groups.take_all()} == \
        {g: 2 * int((np.arange(FILES * ROWS) % 7 == g).sum()) for g in range(7)}
    assert _ops(groups)[-1].endswith("->MapBatches(_count_twice)]")


def _count_twice(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"g": batch["g"], "twice": batch["count()"] * 2}


def test_a_batch_size_keeps_the_map_after_an_exchange_apart():
    ds = ed.range(100, override_num_blocks=3).random_shuffle().map_batches(
        _plus_one, batch_size=7)
    assert sorted(r["id"] for r in ds.take_all()) == list(range(1, 101))
    assert _ops(ds)[-1] == "TaskPoolMapOperator[MapBatches(_plus_one)]"
