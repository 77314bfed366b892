"""Materialized datasets, block references and conversions out of a dataset.

``materialize()`` keeps its blocks, so a UDF upstream of it runs once however often the
result is consumed, while a lazy dataset re-executes on every consumption (both proven by
a call counter kept in a file, not by timing). Also: block lifetime (a block file lives
exactly as long as a reference to it), ``to_pandas(limit=)``, ``to_arrow_refs`` /
``to_numpy_refs`` / ``to_pandas_refs`` read with ``engine.get`` (like ``ray.get``),
``from_arrow_refs`` / ``from_pandas_refs``, ``input_files`` and ``size_bytes``; results on
small data, errors on bad arguments and empty datasets, checked against Ray Data 2.60.

These tests start workers. None depends on timing.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine as ed
from engine import session


@pytest.fixture(autouse=True)
def _in_order(fresh_context: ed.DataContext) -> None:
    fresh_context.execution_options.preserve_order = True


class CountCalls:
    """Appends one line per batch to ``path``: a call counter workers can share."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.__name__ = "count_calls"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with open(self.path, "a") as f:
            f.write("call\n")
        return {"id": batch["id"], "sq": batch["id"] ** 2}


def calls(path: Path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def store_blocks() -> set[str]:
    """Block files in the store directory."""
    store = session.get_cluster().store
    return {n for n in os.listdir(store.dir) if not n.startswith((".", "split-"))}


def big(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows of 8 KiB, so that blocks are files in the shared store (not inline)."""
    return {"id": batch["id"], "pad": np.ones((len(batch["id"]), 1024))}


# ====================================================================== reuse vs re-execution


def test_a_materialized_dataset_does_not_run_its_udf_again(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    mat = ed.range(40, override_num_blocks=4).map_batches(CountCalls(log)).materialize()
    assert type(mat) is ed.MaterializedDataset
    assert calls(log) == 4
    expected = [{"id": i, "sq": i * i} for i in range(40)]
    assert mat.take_all() == expected
    assert mat.take_all() == expected
    assert sum(b["id"].size for b in mat.iter_batches(batch_size=7)) == 40
    assert mat.count() == 40 and mat.sum("sq") == sum(i * i for i in range(40))
    assert calls(log) == 4  # consumed five times, computed once
    assert mat.materialize() is mat


def test_a_lazy_dataset_runs_again_on_every_consumption(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    lazy = ed.range(40, override_num_blocks=4).map_batches(CountCalls(log))
    assert calls(log) == 0  # nothing runs before a consuming call
    assert [r["sq"] for r in lazy.take_all()] == [i * i for i in range(40)]
    assert calls(log) == 4
    lazy.take_all()
    assert calls(log) == 8


def test_transforms_after_materialize_run_only_the_new_steps(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    mat = ed.range(30, override_num_blocks=3).map_batches(CountCalls(first)).materialize()
    later = mat.map_batches(lambda b: {"id": b["id"] + 1}).map_batches(CountCalls(second))
    assert [r["sq"] for r in later.take_all()] == [(i + 1) ** 2 for i in range(30)]
    assert calls(first) == 3 and calls(second) == 3


def test_materialized_metadata_needs_no_execution(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    mat = ed.range(25, override_num_blocks=5).map_batches(CountCalls(log)).materialize()
    assert (mat.count(), mat.num_blocks()) == (25, 5)
    assert mat.columns() == ["id", "sq"]
    assert mat.size_bytes() == 25 * 16  # two int64 columns; small blocks are inline
    assert calls(log) == 5


def test_materialize_an_empty_dataset() -> None:
    mat = ed.range(0).materialize()
    assert (mat.count(), mat.take_all()) == (0, [])
    assert mat.map_batches(lambda b: b).take_all() == []


# ====================================================================== block lifetime


def test_blocks_live_as_long_as_the_materialized_dataset() -> None:
    before = store_blocks()
    mat = ed.range(64, override_num_blocks=4).map_batches(big).materialize()
    kept = store_blocks() - before
    assert len(kept) == 4  # one file per block
    assert mat.sum("id") == sum(range(64))
    del mat
    gc.collect()
    assert not (store_blocks() & kept)  # no block file without a live reference


def test_handed_out_refs_keep_their_blocks_after_the_dataset_is_gone() -> None:
    before = store_blocks()
    refs = ed.range(64, override_num_blocks=4).map_batches(big).to_arrow_refs()
    gc.collect()
    assert len(store_blocks() - before) == 4
    tables = ed.get(refs)
    assert pa.concat_tables(tables).column("id").to_pylist() == list(range(64))
    del refs, tables
    gc.collect()
    assert store_blocks() <= before


# ====================================================================== to_pandas


def test_to_pandas_equals_pandas() -> None:
    rows = [{"a": i, "b": float(i) / 2, "s": str(i)} for i in range(9)]
    df = ed.from_items(rows, override_num_blocks=3).to_pandas()
    pd.testing.assert_frame_equal(df, pd.DataFrame(rows).convert_dtypes(dtype_backend="pyarrow"))
    assert len(ed.range(10).to_pandas(limit=10)) == 10  # exactly at the limit is fine


def test_to_pandas_over_the_limit_raises() -> None:
    with pytest.raises(ValueError, match="10 rows, more than limit=5"):
        ed.range(10).to_pandas(limit=5)


def test_to_pandas_of_an_empty_dataset_keeps_the_columns() -> None:
    # Ray Data returns a DataFrame without columns here; keeping the schema loses nothing.
    df = ed.range(10).filter(lambda r: False).to_pandas()
    assert df.shape == (0, 1) and list(df.columns) == ["id"]
    assert ed.from_items([]).to_pandas().shape == (0, 0)


# ====================================================================== refs and engine.get


def test_to_arrow_refs_and_get() -> None:
    ds = ed.range(10, override_num_blocks=3)
    refs = ds.to_arrow_refs()
    assert len(refs) == 3 and all(hasattr(r, "get") for r in refs)
    tables = ed.get(refs)  # a list in, a list out (like ray.get)
    assert all(isinstance(t, pa.Table) for t in tables)
    assert pa.concat_tables(tables).column("id").to_pylist() == list(range(10))
    one = ed.get(refs[0])  # one ref in, one table out
    assert one.equals(tables[0])


def test_to_numpy_refs() -> None:
    ds = ed.from_items([{"a": i, "b": -i} for i in range(6)], override_num_blocks=2)
    batches = ed.get(ds.to_numpy_refs())
    assert [sorted(b) for b in batches] == [["a", "b"], ["a", "b"]]
    np.testing.assert_array_equal(np.concatenate([b["b"] for b in batches]), -np.arange(6))
    arrays = ed.get(ds.to_numpy_refs(column="a"))
    np.testing.assert_array_equal(np.concatenate(arrays), np.arange(6))


def test_to_numpy_refs_names_a_missing_column() -> None:
    with pytest.raises(ValueError, match=r"column 'zz' not found.*\['a', 'b'\]"):
        ed.from_items([{"a": 1, "b": 2}]).to_numpy_refs(column="zz")


def test_to_pandas_refs() -> None:
    ds = ed.from_items([{"a": i} for i in range(6)], override_num_blocks=3)
    frames = ed.get(ds.to_pandas_refs())
    assert all(isinstance(f, pd.DataFrame) for f in frames)
    assert pd.concat(frames)["a"].tolist() == list(range(6))


def test_refs_of_an_empty_dataset() -> None:
    refs = ed.range(0).to_arrow_refs()
    assert sum(t.num_rows for t in ed.get(refs)) == 0
    assert ed.from_arrow_refs(refs).take_all() == []


def test_from_arrow_refs_round_trip() -> None:
    ds = ed.range(10, override_num_blocks=3)
    refs = ds.to_arrow_refs()
    back = ed.from_arrow_refs(refs)
    assert type(back) is ed.MaterializedDataset
    assert [r["id"] for r in back.take_all()] == list(range(10))
    assert ed.from_arrow_refs(refs[0]).take_all() == [{"id": 0}, {"id": 1}, {"id": 2}]


def test_from_pandas_refs_round_trip() -> None:
    # This used to fail: the refs to_pandas_refs hands out were taken for blocks.
    ds = ed.from_items([{"a": i, "s": str(i)} for i in range(5)], override_num_blocks=2)
    back = ed.from_pandas_refs(ds.to_pandas_refs())
    assert back.take_all() == [{"a": i, "s": str(i)} for i in range(5)]
    first = ed.from_pandas_refs(ds.to_pandas_refs()[0])  # one ref, not a list
    assert first.take_all() == [{"a": 0, "s": "0"}, {"a": 1, "s": "1"}]


# Names, not ed.from_*: touching a source at collection time would start the cluster's
# zygote before pytest has put every test directory on sys.path (workers inherit it).
@pytest.mark.parametrize("call", ["from_arrow_refs", "from_pandas_refs"])
@pytest.mark.parametrize("bad", [5, pa.table({"a": [1]}), [pd.DataFrame({"a": [1]})]])
def test_from_refs_reject_what_is_not_a_ref(call: str, bad: object) -> None:
    with pytest.raises(TypeError, match=f"{call} takes block references"):
        getattr(ed, call)(bad)


# ====================================================================== input_files, size_bytes


@pytest.fixture
def parquet_dir(tmp_path: Path) -> Path:
    for i in range(3):
        pq.write_table(pa.table({"x": list(range(i * 5, i * 5 + 5))}),
                       tmp_path / f"part-{i}.parquet")
    return tmp_path


def test_input_files(parquet_dir: Path) -> None:
    expected = [str(parquet_dir / f"part-{i}.parquet") for i in range(3)]
    ds = ed.read_parquet(str(parquet_dir))
    assert sorted(ds.input_files()) == expected
    assert sorted(ds.map_batches(lambda b: b).input_files()) == expected
    # Ray Data 2.60 returns [] once the data is materialized; the files are still known.
    mat = ds.map_batches(lambda b: b).materialize()
    assert sorted(mat.input_files()) == expected
    assert sorted(mat.map_batches(lambda b: b).input_files()) == expected
    assert all(sorted(p.input_files()) == expected for p in ds.split(2))
    assert sorted(ed.range(3).union(ds).input_files()) == expected
    assert ed.range(3).input_files() == [] and ed.from_items([{"a": 1}]).input_files() == []


def test_size_bytes() -> None:
    assert ed.range(10).size_bytes() == 80  # as Ray Data: ten int64 values
    assert ed.range(0).size_bytes() == 0
    mat = ed.range(64, override_num_blocks=4).map_batches(big).materialize()
    arrow_bytes = sum(t.nbytes for t in ed.get(mat.to_arrow_refs()))
    # Store blocks count their Arrow IPC file: the Arrow buffers plus a small header each.
    assert arrow_bytes <= mat.size_bytes() <= arrow_bytes + 4 * 4096
