"""A representative part of the public API, run on both backends: the embedded local cluster
and a Ray instance (``engine.init(address="auto")``). Same calls, same results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import engine as ed
from engine.errors import UserCodeError

pytestmark = pytest.mark.ray


def test_map_batches_tasks(backend):
    ds = ed.range(1000, override_num_blocks=8).map_batches(
        lambda b: {"id": b["id"], "sq": b["id"] ** 2}, batch_size=100)
    rows = ds.take_all()
    assert sorted(r["sq"] for r in rows) == [i * i for i in range(1000)]


class _AddOffset:
    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"id": batch["id"] + self.offset}


def test_actor_pool_map(backend):
    ds = ed.range(200, override_num_blocks=4).map_batches(
        _AddOffset, fn_constructor_args=(10,), concurrency=2, batch_size=50)
    assert sorted(r["id"] for r in ds.take_all()) == list(range(10, 210))


def test_filter_expressions_and_columns(backend):
    ds = (ed.range(100, override_num_blocks=4)
          .with_column("double", ed.col("id") * 2)
          .filter(expr=ed.col("double") >= 150)
          .select_columns(["double"]))
    assert sorted(r["double"] for r in ds.take_all()) == list(range(150, 200, 2))


def test_aggregates(backend):
    ds = ed.range(1000, override_num_blocks=10)
    assert ds.sum("id") == 499500
    assert ds.min("id") == 0 and ds.max("id") == 999
    assert ds.mean("id") == pytest.approx(499.5)
    assert ds.std("id") == pytest.approx(np.std(np.arange(1000), ddof=1))


def test_materialize_and_iter_batches(backend):
    mat = ed.range(500, override_num_blocks=5).map(lambda r: {"id": r["id"] + 1}).materialize()
    assert mat.count() == 500 and mat.num_blocks() >= 1
    batches = list(mat.iter_batches(batch_size=64, batch_format="pandas"))
    assert all(isinstance(b, pd.DataFrame) for b in batches)
    assert [len(b) for b in batches[:-1]] == [64] * (len(batches) - 1)
    assert sorted(pd.concat(batches)["id"]) == list(range(1, 501))
    assert mat.sum("id") == sum(range(1, 501))  # the kept blocks read again


def test_limit_and_take(backend, fresh_context):
    fresh_context.execution_options.preserve_order = True
    ds = ed.range(10_000, override_num_blocks=20).map_batches(lambda b: b)
    assert [r["id"] for r in ds.limit(7).take_all()] == list(range(7))
    assert [r["id"] for r in ds.take(3)] == [0, 1, 2]


def test_write_and_read_parquet(backend, tmp_path):
    out = str(tmp_path / "out")
    ed.from_items([{"a": i, "b": str(i)} for i in range(300)]).repartition(3) \
        .write_parquet(out)
    back = ed.read_parquet(out)
    assert back.count() == 300
    assert sorted(r["a"] for r in back.take_all()) == list(range(300))


def test_all_to_all(backend):
    ds = ed.range(300, override_num_blocks=6)
    shuffled = ds.random_shuffle(seed=1).materialize()
    assert sorted(r["id"] for r in shuffled.take_all()) == list(range(300))
    assert ds.repartition(4).materialize().num_blocks() == 4


def test_from_pandas_and_to_pandas(backend):
    df = pd.DataFrame({"x": np.arange(50), "y": np.arange(50) * 0.5})
    out = ed.from_pandas(df).map_batches(lambda b: b, batch_format="pandas").to_pandas()
    # Arrow-backed pandas columns by default, as Ray Data 2.60 gives
    pd.testing.assert_frame_equal(out.sort_values("x").reset_index(drop=True), df,
                                  check_dtype=False)


def test_udf_error_is_typed(backend):
    def boom(batch):
        raise KeyError("missing column q")

    with pytest.raises(KeyError) as info:
        ed.range(10).map_batches(boom).materialize()
    assert isinstance(info.value, UserCodeError)
    assert "missing column q" in str(info.value) and "boom" in str(info.value)


def test_actor_constructor_error_is_typed(backend):
    class Broken:
        def __init__(self) -> None:
            raise RuntimeError("no model file")

        def __call__(self, batch):
            return batch

    with pytest.raises(RuntimeError, match="no model file"):
        ed.range(10).map_batches(Broken, concurrency=1).materialize()


def test_streaming_split_in_threads(backend):
    import threading

    its = ed.range(1000, override_num_blocks=10).streaming_split(2, equal=True)
    totals: list[int] = [0, 0]

    def consume(i: int) -> None:
        totals[i] = sum(len(b["id"]) for b in its[i].iter_batches(batch_size=None))

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert totals == [500, 500]
