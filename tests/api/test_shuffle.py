"""random_shuffle, repartition, randomize_block_order and zip as distributed exchanges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed
from engine.random_seed import RandomSeedConfig

pytestmark = pytest.mark.usefixtures("module_cluster")


def _ids(ds):
    return [r["id"] for r in ds.take_all()]


@given(st.integers(0, 300), st.integers(1, 6), st.one_of(st.none(), st.integers(1, 5)))
@settings(max_examples=8, deadline=None)
def test_random_shuffle_is_a_permutation(n, blocks, num_blocks):
    ds = ed.range(n, override_num_blocks=blocks).random_shuffle(num_blocks=num_blocks)
    assert sorted(_ids(ds)) == list(range(n))


def test_seeds_give_repeatable_orders():
    base = _ids(ed.range(100, override_num_blocks=5))
    r1 = _ids(ed.range(100, override_num_blocks=5).random_shuffle(seed=0))
    r2 = _ids(ed.range(100, override_num_blocks=5).random_shuffle(seed=0))
    r3 = _ids(ed.range(100, override_num_blocks=5).random_shuffle(seed=12345))
    assert r1 == r2 and r1 != base and r1 != r3
    assert _ids(ed.range(100).random_shuffle()) != _ids(ed.range(100).random_shuffle())
    fixed = ed.range(100).random_shuffle(seed=RandomSeedConfig(7, reseed_after_execution=False))
    assert _ids(fixed) == _ids(fixed)
    reseeded = ed.range(100).random_shuffle(seed=RandomSeedConfig(7))
    assert _ids(reseeded) != _ids(reseeded)
    with pytest.raises(TypeError, match="seed"):
        ed.range(3).random_shuffle(seed="x")
    with pytest.raises(ValueError):
        RandomSeedConfig(seed=1.5)


def test_empty_shuffle_and_repartition():
    ds = ed.from_items([])
    assert ds.random_shuffle().count() == 0
    assert ds.random_shuffle().take() == []
    assert ed.range(0).repartition(3).count() == 0
    assert ed.range(0).repartition(3, shuffle=True).count() == 0


def test_repartition_split_keeps_order_and_block_count():
    ds = ed.range(100, override_num_blocks=3).repartition(7).materialize()
    assert ds.num_blocks() == 7
    assert [r.num_rows for r in ds._refs] == [14, 14, 14, 15, 14, 14, 15]
    assert _ids(ds) == list(range(100))


def test_repartition_shuffle_and_target_rows():
    ds = ed.range(20, override_num_blocks=10).repartition(5, shuffle=True).materialize()
    assert ds.num_blocks() == 5 and ds.sum() == 190
    out = ed.range(100, override_num_blocks=16).repartition(target_num_rows_per_block=30)
    rows = [r.num_rows for r in out.materialize()._refs]
    assert rows == [30, 30, 30, 10]
    with pytest.raises(ValueError):
        ed.range(10).repartition(2, target_num_rows_per_block=3)
    with pytest.raises(ValueError):
        ed.range(10).repartition(0)


def test_repartition_by_keys_puts_a_key_in_one_block_sorted():
    ds = ed.from_items([{"k": i % 5, "v": i} for i in range(100)]).repartition(
        3, keys=["k"], sort=True).materialize()
    assert ds.num_blocks() == 3
    owners = {}
    for i, ref in enumerate(ds._refs):
        ks = ref.get()["k"].to_pylist()
        assert ks == sorted(ks)
        for k in ks:
            assert owners.setdefault(k, i) == i
    assert ds.count() == 100


def test_zip_aligns_rows_across_different_block_layouts():
    left = ed.range(50, override_num_blocks=3)
    right = ed.range(50, override_num_blocks=7).map(lambda r: {"id": r["id"], "sq": r["id"] ** 2})
    rows = left.zip(right).take_all()
    assert [(r["id"], r["id_1"], r["sq"]) for r in rows] == [(i, i, i * i) for i in range(50)]
    with pytest.raises(ValueError, match="equal row counts"):
        left.zip(ed.range(3)).take_all()


def test_randomize_block_order_keeps_rows():
    ds = ed.range(100, override_num_blocks=10).randomize_block_order(seed=3)
    assert sorted(_ids(ds)) == list(range(100))


def test_unique_and_filter_pushdown_below_shuffle():
    ds = ed.from_items([{"x": i % 4} for i in range(40)])
    assert sorted(ds.unique("x")) == [0, 1, 2, 3]
    shuffled = ds.random_shuffle(seed=1).filter(expr=ed.col("x") > 1)
    plan = shuffled.explain().split("Optimized")[1]
    assert plan.index("RandomShuffle") < plan.index("Filter")  # the filter runs first
    assert sorted(r["x"] for r in shuffled.take_all()) == [2] * 10 + [3] * 10
    values = np.array([r["x"] for r in ds.sort("x").filter(expr=ed.col("x") > 1).take_all()])
    assert (np.diff(values) >= 0).all()


def test_selection_moves_below_a_sort_when_it_keeps_the_keys():
    ds = ed.from_items([{"a": i % 3, "b": i, "c": -i} for i in range(30)])
    kept = ds.sort("a").select_columns(["a", "b"])
    plan = kept.explain().split("Optimized")[1]
    assert plan.index("Sort") < plan.index("Project")  # the projection runs first
    assert kept.take_all() == sorted(({"a": i % 3, "b": i} for i in range(30)),
                                     key=lambda r: r["a"])
    dropped_key = ds.sort("a").select_columns(["b"]).explain().split("Optimized")[1]
    assert dropped_key.index("Project") < dropped_key.index("Sort")  # stays above
