"""map_groups under a small memory budget: a group larger than the budget fails with a
typed error naming it; groups that fit run, in blocks cut at group boundaries."""

from __future__ import annotations

import numpy as np
import pytest

import engine as ed
from engine.errors import EngineError, GroupTooLargeError

MiB = 1 << 20
BUDGET = 8 * MiB


CLUSTER_INIT = {"num_cpus": 2, "object_store_memory": BUDGET}
pytestmark = pytest.mark.usefixtures("module_cluster")


def _sums(batch):
    return {"k": batch["k"][:1], "n": [len(batch["id"])], "s": [int(batch["id"].sum())]}


def test_a_group_larger_than_the_budget_fails_naming_its_key_size_and_the_budget():
    # Group k=0 holds 1.1M rows of two int64 columns: about 17 MiB, over the 8 MiB budget.
    ds = ed.range(1_200_000, override_num_blocks=16).with_column(
        "k", ed.col("id") // 1_100_000)
    with pytest.raises(GroupTooLargeError) as info:
        ds.groupby("k").map_groups(_sums, batch_format="numpy").take_all()
    assert isinstance(info.value, EngineError)
    message = str(info.value)
    assert "k=0" in message
    assert "16.8 MiB" in message  # the group's size
    assert f"{BUDGET} bytes" in message  # the budget


def test_groups_that_fit_run_under_the_budget():
    n = 2_000_000  # two int64 columns: 32 MiB, four times the budget
    ds = ed.range(n, override_num_blocks=32).with_column("k", ed.col("id") % 64)
    out = ds.groupby("k").map_groups(_sums, batch_format="numpy")
    rows = {r["k"]: (r["n"], r["s"]) for r in out.take_all()}
    ids = np.arange(n)
    assert rows == {k: (n // 64, int(ids[ids % 64 == k].sum())) for k in range(64)}
    assert out._last_executor is not None
    assert out._last_executor.summary()["peak_store_bytes"] <= 1.5 * BUDGET


def test_the_whole_dataset_is_one_group_without_a_key():
    ds = ed.range(1_200_000, override_num_blocks=8)
    with pytest.raises(GroupTooLargeError, match=r"\(every row\)"):
        ds.groupby(None).map_groups(lambda b: {"n": [len(b["id"])]},
                                    batch_format="numpy").take_all()
    small = ed.range(1000).groupby(None).map_groups(lambda b: {"n": [len(b["id"])]},
                                                   batch_format="numpy")
    assert small.take_all() == [{"n": 1000}]
