"""The Dataset core end to end through the public API: sources (``range``, ``range_tensor``,
``from_items``, ``from_pandas``, ``from_numpy``, ``from_arrow``) and transforms
(``map_batches`` on tasks and actor pools, ``map``, ``flat_map``, ``filter``, ``limit``).

Expected values come from numpy/pandas or closed forms, and match what Ray Data 2.60 returns
for the same calls unless a comment says why not. Consumption calls are covered in
``test_consumption.py``, errors in ``test_errors.py``.
"""

from __future__ import annotations

import collections
import re
import sys
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import engine as ed


def _ids(ds) -> list[int]:
    return sorted(r["id"] for r in ds.take_all())


def _tasks_started(stats: str, operator: str) -> int:
    """Tasks an operator started, read from ``Dataset.stats()``."""
    m = re.search(re.escape(operator) + r": (\d+) tasks executed(?: \((\d+) stopped early\))?",
                  stats)
    assert m, f"{operator!r} not in stats:\n{stats}"
    return int(m.group(1)) + int(m.group(2) or 0)


# ============================================================================ sources


def test_range_rows_schema_and_blocks(fresh_context):
    fresh_context.execution_options.preserve_order = True
    ds = ed.range(10, override_num_blocks=3)
    assert ds.take_all() == [{"id": i} for i in range(10)]
    assert ds.count() == 10
    assert ds.schema().names == ["id"] and ds.schema().types == [pa.int64()]
    # Ray Data 2.60 makes 4 blocks here; the engine honours the requested count.
    assert ds.materialize().num_blocks() == 3
    assert ed.range(3, override_num_blocks=5).materialize().num_blocks() == 3  # never empty


@pytest.mark.parametrize("shape", [(1,), (2, 3), (2, 2, 2)])
def test_range_tensor_values_and_shapes(shape, fresh_context):
    fresh_context.execution_options.preserve_order = True
    ds = ed.range_tensor(5, shape=shape, override_num_blocks=2)
    batch = ds.take_batch(5)
    expected = np.stack([np.full(shape, i, dtype=np.int64) for i in range(5)])
    np.testing.assert_array_equal(batch["data"], expected)
    assert batch["data"].dtype == np.int64
    shapes = [b["data"].shape for b in ds.iter_batches(batch_size=2)]
    assert shapes == [(2, *shape), (2, *shape), (1, *shape)]
    (typ,) = ds.schema().types
    assert isinstance(typ, pa.FixedShapeTensorType) and tuple(typ.shape) == shape
    rows = ds.take_all()
    assert [int(r["data"].flat[0]) for r in rows] == list(range(5))
    assert all(r["data"].shape == shape for r in rows)


def test_range_tensor_default_shape_and_formats():
    ds = ed.range_tensor(3)
    assert ds.take_batch()["data"].shape == (3, 1)
    df = ds.take_batch(batch_format="pandas")
    assert isinstance(df, pd.DataFrame) and df["data"].dtype == object
    assert [a.tolist() for a in df["data"]] == [[0], [1], [2]]
    table = ds.take_batch(batch_format="pyarrow")
    assert isinstance(table, pa.Table) and table.num_rows == 3


def test_from_items_dicts_scalars_and_sequences():
    ds = ed.from_items([{"a": 1, "s": "x"}, {"a": 2, "s": "y"}])
    assert ds.take_all() == [{"a": 1, "s": "x"}, {"a": 2, "s": "y"}]
    assert ds.schema().names == ["a", "s"]
    assert ds.schema().types == [pa.int64(), pa.string()]
    expected = [{"item": 0}, {"item": 1}, {"item": 2}]
    assert ed.from_items([0, 1, 2]).take_all() == expected
    # Ray Data takes any sequence; so does the engine (except str and one-shot iterators)
    assert ed.from_items((0, 1, 2)).take_all() == expected
    assert ed.from_items(range(3)).take_all() == expected
    assert ed.from_items(np.arange(3)).take_all() == expected
    with pytest.raises(TypeError, match=r"from_items.*got generator; wrap it in list"):
        ed.from_items(i for i in range(3))
    with pytest.raises(TypeError, match=r"from_items.*got str"):
        ed.from_items("ab")


def test_from_items_override_num_blocks():
    ds = ed.from_items(list(range(10)), override_num_blocks=3)
    assert ds.num_blocks() == 3
    assert [r["item"] for r in ds.take_all()] == list(range(10))


def test_from_pandas_one_and_many_frames():
    df = pd.DataFrame({"a": [1, 2, 3], "f": [0.5, 1.5, 2.5]}, index=[7, 8, 9])
    ds = ed.from_pandas(df)
    assert ds.schema().names == ["a", "f"]
    assert ds.schema().types == [pa.int64(), pa.float64()]
    pd.testing.assert_frame_equal(ds.to_pandas(), df.reset_index(drop=True).convert_dtypes(
        dtype_backend="pyarrow"))  # index dropped; Arrow-backed dtypes as in Ray 2.60
    frames = [pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [3]})]
    many = ed.from_pandas(frames)
    assert many.num_blocks() == 2
    assert many.take_all() == [{"a": 1}, {"a": 2}, {"a": 3}]
    # Ray Data 2.60 crashes (AttributeError) on a list with override_num_blocks
    assert ed.from_pandas(frames, override_num_blocks=3).num_blocks() == 3
    with pytest.raises(TypeError, match="from_pandas takes DataFrames; got int"):
        ed.from_pandas([1])


def test_from_numpy_one_and_many_arrays():
    arr = np.arange(12).reshape(4, 3)
    ds = ed.from_numpy(arr)
    np.testing.assert_array_equal(ds.take_batch(4)["data"], arr)
    np.testing.assert_array_equal(ds.take(1)[0]["data"], arr[0])
    assert ed.from_numpy(np.arange(3)).take_all() == [{"data": 0}, {"data": 1}, {"data": 2}]
    many = ed.from_numpy([np.arange(3), np.arange(3, 5)])
    assert many.num_blocks() == 2
    assert [r["data"] for r in many.take_all()] == [0, 1, 2, 3, 4]
    assert ed.from_numpy(np.arange(10), override_num_blocks=4).num_blocks() == 4
    with pytest.raises(TypeError, match="from_numpy takes numpy arrays; got list"):
        ed.from_numpy([[1, 2]])


def test_from_arrow_one_and_many_tables():
    table = pa.table({"a": [1, 2], "s": ["x", "y"]})
    ds = ed.from_arrow(table)
    assert ds.schema() == table.schema
    assert ds.take_batch(batch_format="pyarrow").equals(table)
    many = ed.from_arrow([table, pa.table({"a": [3], "s": ["z"]})])
    assert many.num_blocks() == 2
    assert [r["a"] for r in many.take_all()] == [1, 2, 3]
    assert ed.from_arrow([table, table], override_num_blocks=1).num_blocks() == 1
    with pytest.raises(TypeError, match="from_arrow takes pyarrow Tables; got dict"):
        ed.from_arrow({"a": [1]})


# ============================================================================ map_batches


def _describe_batch(batch):
    """One row per input row: the batch's type name and its row count."""
    n = len(batch) if not isinstance(batch, dict) else len(batch["id"])
    return {"type": np.array([type(batch).__name__] * n), "n": np.full(n, n)}


@pytest.mark.parametrize(("batch_format", "type_name"), [
    ("default", "dict"), ("numpy", "dict"), ("pandas", "DataFrame"), ("pyarrow", "Table"),
    (None, "Table")])
def test_map_batches_batch_formats(batch_format, type_name):
    ds = ed.range(8, override_num_blocks=1).map_batches(_describe_batch,
                                                        batch_format=batch_format)
    assert {r["type"] for r in ds.take_all()} == {type_name}


def _double(batch):
    if isinstance(batch, pd.DataFrame):
        return batch.assign(id=batch["id"] * 2)
    if isinstance(batch, pa.Table):
        return pa.table({"id": pa.compute.multiply(batch["id"], 2)})
    return {"id": batch["id"] * 2}


@pytest.mark.parametrize("batch_format", ["numpy", "pandas", "pyarrow"])
def test_map_batches_each_format_computes(batch_format):
    ds = ed.range(20, override_num_blocks=3).map_batches(_double, batch_format=batch_format)
    assert _ids(ds) == [2 * i for i in range(20)]
    assert ds.schema().types == [pa.int64()]


def test_map_batches_exact_batch_sizes():
    one_block = ed.range(100, override_num_blocks=1).map_batches(_describe_batch,
                                                                 batch_size=30)
    sizes = collections.Counter(r["n"] for r in one_block.take_all())
    assert sizes == {30: 90, 10: 10}  # three batches of 30, then the last 10
    # Batches span blocks: no batch exceeds batch_size, every row is seen once.
    spread = ed.range(100, override_num_blocks=10).map_batches(_describe_batch, batch_size=25)
    rows = spread.take_all()
    assert len(rows) == 100 and max(r["n"] for r in rows) <= 25


def test_map_batches_fn_args_and_kwargs():
    def affine(batch, scale, *, shift=0):
        return {"id": batch["id"] * scale + shift}

    ds = ed.range(5).map_batches(affine, fn_args=(3,), fn_kwargs={"shift": 1})
    assert _ids(ds) == [3 * i + 1 for i in range(5)]


def test_map_batches_generator_udf_yields_several_batches():
    def twice(batch):
        yield {"id": batch["id"]}
        yield {"id": batch["id"] + 100}

    ds = ed.range(4, override_num_blocks=1).map_batches(twice)
    assert _ids(ds) == [0, 1, 2, 3, 100, 101, 102, 103]


def _bump_first_in_place(batch):
    batch["id"][0] = -1
    return batch


def test_zero_copy_batch_false_gives_writable_copies():
    ds = ed.range(10, override_num_blocks=1).map_batches(_bump_first_in_place,
                                                         zero_copy_batch=False, batch_size=5)
    assert _ids(ds) == [-1, -1, 1, 2, 3, 4, 6, 7, 8, 9]


def test_zero_copy_batch_true_is_read_only():
    # As in Ray Data: zero-copy numpy batches are views of shared blocks, not writable.
    ds = ed.range(10).map_batches(_bump_first_in_place, zero_copy_batch=True)
    with pytest.raises(ValueError, match="read-only"):
        ds.take_all()


def test_map_batches_num_cpus_fraction():
    ds = ed.range(50, override_num_blocks=5).map_batches(_double, num_cpus=0.5)
    assert _ids(ds) == [2 * i for i in range(50)]


def test_map_batches_returning_tensors_and_lists():
    def shapes(batch):
        n = len(batch["id"])
        return {"m": np.ones((n, 2, 2)), "l": [[int(i)] * 2 for i in batch["id"]]}

    rows = ed.range(3, override_num_blocks=1).map_batches(shapes).take_all()
    assert [r["m"].shape for r in rows] == [(2, 2)] * 3
    assert [list(r["l"]) for r in rows] == [[0, 0], [1, 1], [2, 2]]


def test_udf_from_a_path_added_after_the_cluster_started(tmp_path, monkeypatch):
    # Workers start with the driver's sys.path of that moment; a module found through a
    # path added later was once "No module named ..." on the workers.
    assert ed.range(1).count() == 1  # the cluster is up
    name = f"late_udfs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "def triple(batch):\n    return {'id': batch['id'] * 3}\n\n"
        "class Offset:\n    def __init__(self, k):\n        self.k = k\n\n"
        "    def __call__(self, batch):\n        return {'id': batch['id'] + self.k}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)  # importable now: its functions pickle by reference
    try:
        assert _ids(ed.range(4).map_batches(module.triple)) == [0, 3, 6, 9]
        assert _ids(ed.range(4).map_batches(module.Offset, fn_constructor_args=(10,),
                                            concurrency=1)) == [10, 11, 12, 13]
    finally:
        del sys.modules[name]


# ============================================================================ actor pools


class Model:
    """A UDF class with an expensive constructor: a token per instance shows how many
    times it was built, and a call counter that it was built once per actor."""

    def __init__(self, scale, *, shift=0):
        self.token = uuid.uuid4().int % (1 << 62)
        self.weights = np.full(1 << 18, scale, dtype=np.int64)  # the "model"
        self.shift = shift
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        n = len(batch["id"])
        return {"id": batch["id"] * self.weights[0] + self.shift,
                "token": np.full(n, self.token), "call": np.full(n, self.calls)}


def _check_built_once_per_actor(rows, max_actors):
    calls = collections.defaultdict(set)
    for r in rows:
        calls[r["token"]].add(r["call"])
    assert 1 <= len(calls) <= max_actors, calls.keys()
    # every instance saw calls 1, 2, 3... with no gap: no actor rebuilt its model
    for seen in calls.values():
        assert sorted(seen) == list(range(1, len(seen) + 1))
    return calls


def test_actor_pool_fixed_size_builds_each_model_once():
    ds = ed.range(400, override_num_blocks=8).map_batches(
        Model, fn_constructor_args=(3,), fn_constructor_kwargs={"shift": 1}, concurrency=2,
        batch_size=25)
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == [3 * i + 1 for i in range(400)]
    calls = _check_built_once_per_actor(rows, max_actors=2)
    assert sum(len(c) for c in calls.values()) == 400 // 25  # one call per batch
    stats = ds.stats()
    assert "MapBatches(Model)" in stats and "actors_started: 2" in stats


def test_actor_pool_autoscaling_min_max():
    ds = ed.range(300, override_num_blocks=6).map_batches(
        Model, fn_constructor_args=(1,), concurrency=(1, 2), batch_size=50)
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == list(range(300))
    _check_built_once_per_actor(rows, max_actors=2)


def test_callable_class_without_concurrency_runs_on_actors():
    # Ray Data 2.60 runs it on an autoscaling actor pool; so does the engine.
    ds = ed.range(100, override_num_blocks=4).map_batches(Model, fn_constructor_args=(2,))
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == [2 * i for i in range(100)]
    _check_built_once_per_actor(rows, max_actors=len(rows))


def test_function_with_concurrency_caps_tasks():
    ds = ed.range(40, override_num_blocks=8).map_batches(_double, concurrency=1)
    assert _ids(ds) == [2 * i for i in range(40)]


# ============================================================================ row transforms


def test_map_rows():
    ds = ed.range(5).map(lambda r: {"x": r["id"] * 2, "s": str(r["id"])})
    assert sorted(ds.take_all(), key=lambda r: r["x"]) == [
        {"x": 2 * i, "s": str(i)} for i in range(5)]
    assert ds.schema().names == ["x", "s"]


def test_map_fn_args_and_kwargs():
    ds = ed.range(4).map(lambda r, a, b=0: {"id": r["id"] * a + b}, fn_args=(10,),
                         fn_kwargs={"b": 5})
    assert _ids(ds) == [5, 15, 25, 35]


class RowScale:
    def __init__(self, k):
        self.k = k

    def __call__(self, row):
        return {"id": row["id"] * self.k}


class Keep:
    def __init__(self, modulus):
        self.modulus = modulus

    def __call__(self, row):
        return row["id"] % self.modulus == 0


class Repeat:
    def __init__(self, times):
        self.times = times

    def __call__(self, row):
        return [row] * self.times


def test_row_transforms_with_callable_classes():
    # The constructor arguments reach the class; they were once swallowed by
    # **ray_remote_args and silently ignored.
    assert _ids(ed.range(4).map(RowScale, fn_constructor_args=(7,), concurrency=1)) == \
        [0, 7, 14, 21]
    assert _ids(ed.range(10).filter(Keep, fn_constructor_kwargs={"modulus": 3},
                                    concurrency=1)) == [0, 3, 6, 9]
    assert _ids(ed.range(3).flat_map(Repeat, fn_constructor_args=(2,), concurrency=(1, 2))) \
        == [0, 0, 1, 1, 2, 2]


def test_flat_map():
    ds = ed.range(5).flat_map(lambda r: [{"x": r["id"]}] * (r["id"] % 3))
    assert sorted(r["x"] for r in ds.take_all()) == [1, 2, 2, 4]
    gen = ed.range(3).flat_map(lambda r, k: ({"x": r["id"] + k} for _ in range(2)),
                               fn_args=(10,))
    assert sorted(r["x"] for r in gen.take_all()) == [10, 10, 11, 11, 12, 12]


def test_filter_fn():
    assert _ids(ed.range(10).filter(lambda r: r["id"] > 6)) == [7, 8, 9]
    assert _ids(ed.range(10).filter(lambda r: np.bool_(r["id"] < 2))) == [0, 1]
    assert _ids(ed.range(10).filter(lambda r, lo: r["id"] < lo, fn_args=(3,))) == [0, 1, 2]


def test_filter_keeps_truthy_values_like_ray():
    assert _ids(ed.range(10).filter(lambda r: r["id"] % 2)) == [1, 3, 5, 7, 9]
    assert _ids(ed.range(5).filter(lambda r: None)) == []


def test_chained_transforms_match_numpy():
    ids = np.arange(200)
    ds = (ed.range(200, override_num_blocks=7)
          .map_batches(lambda b: {"id": b["id"], "sq": b["id"] ** 2}, batch_size=16)
          .filter(lambda r: r["sq"] % 3 == 1)
          .map(lambda r: {"v": r["id"] + r["sq"]}))
    expected = sorted((ids + ids ** 2)[(ids ** 2) % 3 == 1].tolist())
    assert sorted(r["v"] for r in ds.take_all()) == expected


# ============================================================================ limit


def test_limit_in_order(fresh_context):
    fresh_context.execution_options.preserve_order = True
    ds = ed.range(100, override_num_blocks=10).map_batches(_double)
    assert ds.limit(15).take_all() == [{"id": 2 * i} for i in range(15)]
    assert ds.limit(0).take_all() == []
    assert ds.limit(500).count() == 100
    assert ds.limit(7).count() == 7


def _plus_one(batch):
    return {"id": batch["id"] + 1}


def test_limit_and_take_stop_upstream_work():
    ds = ed.range(10_000, override_num_blocks=100).map_batches(_plus_one)
    limited = ds.limit(5)
    rows = limited.take_all()
    assert len(rows) == 5 and all(1 <= r["id"] <= 10_000 for r in rows)
    # Tasks stopped by the limit are counted as such: the stage produced rows, so it
    # must not claim "0 tasks executed".
    assert 1 <= _tasks_started(limited.stats(), "MapBatches(_plus_one)") < 20
    assert len(ds.take(3)) == 3
    assert 1 <= _tasks_started(ds.stats(), "MapBatches(_plus_one)") < 20  # take's run, on ds
