"""Dataset.sort end to end: a distributed range-partitioned sort equal to pandas/pyarrow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed

pytestmark = pytest.mark.usefixtures("module_cluster")


def _blocks(ds):
    return [b for b in ds.iter_batches(batch_size=None, batch_format="pyarrow")]


def test_sort_simple_and_descending():
    rng = np.random.default_rng(0)
    xs = rng.permutation(100).tolist()
    ds = ed.from_items(xs, override_num_blocks=4)
    assert [r["item"] for r in ds.sort("item").take(100)] == list(range(100))
    assert [r["item"] for r in ds.sort("item", descending=True).take_all()] == \
        list(range(99, -1, -1))
    assert len([n for n in ds.sort("item").materialize()._refs if n.num_rows]) == 4


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("boundaries", [[100, 300, 500, 700, 900], [1, 998], [501.5]])
def test_sort_with_boundaries_cuts_blocks_there(descending, boundaries):
    ds = ed.range(1000).sort("id", descending, boundaries).materialize()
    cuts = [0, *sorted(round(b) for b in boundaries), 1000]
    expected = [list(range(cuts[i], cuts[i + 1])) for i in range(len(cuts) - 1)]
    if descending:
        expected = [list(reversed(b)) for b in reversed(expected)]
    got = [b["id"].to_pylist() for b in _blocks(ds)]
    assert got == expected


def test_same_key_goes_to_one_block_and_empty_partitions_stay():
    ds = ed.from_items([1] * 100).repartition(100).sort("item").materialize()
    rows = [r.num_rows for r in ds._refs]
    assert len(rows) == 100 and sorted(rows)[-1] == 100 and sum(rows) == 100


def test_sort_empty_and_errors():
    assert ed.from_items([]).sort("item").count() == 0
    assert ed.range(10).filter(lambda r: r["id"] > 10).sort("id").take_all() == []
    with pytest.raises(ValueError, match="not found"):
        ed.range(10).sort("nope").take_all()
    with pytest.raises(ValueError):
        ed.range(10).sort(None)
    with pytest.raises(ValueError, match="descending"):
        ed.range(10).sort(["id"], descending=[True, False])


frames = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 4)),
                            st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
                            st.floats(-10, 10, allow_nan=False)),
                  min_size=0, max_size=80)


@given(frames, st.lists(st.booleans(), min_size=2, max_size=2), st.integers(1, 6))
@settings(max_examples=12, deadline=None)
def test_multi_key_sort_is_stable_and_equals_pyarrow(rows, descending, blocks):
    table = pa.table({"a": pa.array([r[0] for r in rows], type=pa.int64()),
                      "b": pa.array([r[1] for r in rows], type=pa.string()),
                      "v": pa.array([r[2] for r in rows], type=pa.float64()),
                      "i": pa.array(range(len(rows)), type=pa.int64())})
    ds = ed.from_arrow(table).repartition(blocks)
    keys = [("a", "descending" if descending[0] else "ascending"),
            ("b", "descending" if descending[1] else "ascending")]
    got = ds.sort(["a", "b"], descending=descending).to_pandas()
    expected = table.take(pa.compute.sort_indices(
        table, sort_keys=[(k, o, "at_end") for k, o in keys])).to_pandas()
    if not len(rows):
        assert got.empty
        return
    # stable: ties keep input order, so the row ids match exactly
    assert got["i"].tolist() == expected["i"].tolist()


def test_sort_then_limit_is_top_k_and_matches_full_sort():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.integers(0, 50, 2000), "i": np.arange(2000)})
    ds = ed.from_pandas(df).repartition(7)
    explained = ds.sort("x", descending=True).limit(5).explain()
    assert "TopK" in explained and "Sort(" not in explained.split("Optimized")[1]
    got = [r["i"] for r in ds.sort("x", descending=True).take(25)]
    expected = df.sort_values("x", ascending=False, kind="stable")["i"].head(25).tolist()
    assert got == expected


def test_stats_show_map_and_reduce_stages():
    ds = ed.range(1000, override_num_blocks=4).sort("id", descending=True)
    ds.take_all()
    stats = ds.stats()
    assert "map tasks: " in stats and "reduce tasks: 4" in stats
    assert "bytes shuffled" in stats
