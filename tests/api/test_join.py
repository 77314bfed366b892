"""Dataset.join end to end: every join type against a null-aware pandas reference."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed

JOIN_TYPES = ["inner", "left_outer", "right_outer", "full_outer", "left_semi", "right_semi",
              "left_anti", "right_anti"]


pytestmark = pytest.mark.usefixtures("module_cluster")


def _reference(left: pd.DataFrame, right: pd.DataFrame, how: str) -> list[tuple]:
    """Rows of the join as sorted tuples; null keys never match."""
    lk = left[left["k"].notna()]
    rk = right[right["k"].notna()]
    matched = lk.merge(rk, on="k", how="inner")
    left_hit = left["k"].isin(rk["k"]) & left["k"].notna()
    right_hit = right["k"].isin(lk["k"]) & right["k"].notna()
    if how == "left_semi":
        out = left[left_hit]
    elif how == "right_semi":
        out = right[right_hit]
    elif how == "left_anti":
        out = left[~left_hit]
    elif how == "right_anti":
        out = right[~right_hit]
    else:
        parts = [matched]
        if how in ("left_outer", "full_outer"):
            parts.append(left[~left_hit])
        if how in ("right_outer", "full_outer"):
            parts.append(right[~right_hit])
        out = pd.concat(parts, ignore_index=True)
    return _sorted_rows(out)


def _sorted_rows(df: pd.DataFrame) -> list[tuple]:
    cols = sorted(df.columns)
    rows = [tuple(None if pd.isna(v) else int(v) for v in row)
            for row in df[cols].itertuples(index=False)]
    return sorted(rows, key=lambda row: [(v is None, v or 0) for v in row])


def _rows(ds: ed.Dataset) -> list[tuple]:
    return _sorted_rows(ds.to_pandas())


keys = st.lists(st.one_of(st.none(), st.integers(0, 6)), min_size=0, max_size=25)


# "fused-left"/"fused-right": that side is a map stage, so the other (materialized, small)
# side joins inside its tasks where the join type allows.
@pytest.mark.parametrize("broadcast", [False, True, "fused-left", "fused-right"])
@pytest.mark.parametrize("join_type", JOIN_TYPES)
@given(left=keys, right=keys, partitions=st.integers(1, 4))
@settings(max_examples=5, deadline=None)
def test_every_join_type_equals_a_null_aware_reference(join_type, broadcast, left, right,
                                                       partitions):
    ldf = pd.DataFrame({"k": pd.array(left, dtype="Int64"),
                        "x": pd.array(range(len(left)), dtype="Int64")})
    rdf = pd.DataFrame({"k": pd.array(right, dtype="Int64"),
                        "y": pd.array(range(100, 100 + len(right)), dtype="Int64")})
    # Materialized: the sides' sizes are known, so small ones may be broadcast.
    lds = ed.from_arrow(pa.Table.from_pandas(ldf, preserve_index=False))
    lds = lds.repartition(2).materialize()
    rds = ed.from_arrow(pa.Table.from_pandas(rdf, preserve_index=False))
    rds = rds.repartition(3).materialize()
    # (A map over no rows yields no block: the side's schema is unknown then.)
    if broadcast == "fused-left" and left:
        lds = lds.map_batches(lambda b: b, batch_format="pyarrow")
    elif broadcast == "fused-right" and right:
        rds = rds.map_batches(lambda b: b, batch_format="pyarrow")
    ctx = ed.DataContext.get_current()
    saved = ctx.broadcast_join_threshold_bytes
    ctx.broadcast_join_threshold_bytes = (1 << 20) if broadcast else 0
    try:
        got = lds.join(rds, join_type, partitions, on=("k",))
        assert _rows(got) == _reference(ldf, rdf, join_type)
    finally:
        ctx.broadcast_join_threshold_bytes = saved


def test_a_small_side_is_broadcast_where_the_join_type_allows():
    big = ed.range(1000, override_num_blocks=4).map(lambda r: {"id": r["id"] % 10})
    small = ed.from_items([{"id": i, "w": i * 10} for i in range(5)])
    joined = big.join(small, "inner", 4)
    # A small side of a few KiB joins in the big side's map tasks (fused); larger ones in
    # a BroadcastJoinOperator.
    assert "[broadcast right]" in joined.explain()
    assert sum(r["w"] for r in joined.take_all()) == 100 * sum(i * 10 for i in range(5))
    assert "broadcast" not in big.join(small, "right_outer", 4).explain()
    assert "[broadcast left]" in small.join(big, "right_semi", 4).explain()
    assert "BroadcastJoinOperator" in big.materialize().join(small, "inner", 4).explain()
    empty = big.filter(expr=ed.col("id") > 100)  # no rows: the joined schema remains
    for side in (empty, empty.materialize()):
        joined = side.join(small, "inner", 4)
        assert joined.count() == 0 and joined.schema().names == ["id", "w"]


def test_inner_join_with_right_on_and_suffixes():
    left = ed.range(8).map(lambda r: {"id": r["id"], "v": r["id"] * 2})
    right = ed.range(4).map(lambda r: {"rid": r["id"] * 2, "v": r["id"]})
    out = left.join(right, "inner", 3, on=("id",), right_on=("rid",), left_suffix="_l",
                    right_suffix="_r")
    rows = sorted(out.take_all(), key=lambda r: r["id"])
    assert rows == [{"id": i, "v_l": 2 * i, "v_r": i // 2} for i in (0, 2, 4, 6)]
    assert out.materialize().num_blocks() <= 3


def test_self_join_and_argument_errors():
    ds = ed.range(32)
    doubled = ds.map(lambda r: {"id": r["id"], "d": r["id"] * 2})
    assert doubled.join(doubled, "inner", 4, left_suffix="_a",
                        right_suffix="_b").count() == 32
    with pytest.raises(ValueError, match=r"Expected tuple or list as `on` \(got str\)"):
        ds.join(ds, "inner", num_partitions=16, on="id", validate_schemas=True)
    with pytest.raises(ValueError, match="right_on"):
        ds.join(ds, "inner", 16, on=("id",), right_on="id")
    with pytest.raises(ValueError, match="join_type"):
        ds.join(ds, "sideways", 2)
    floats = ds.map(lambda r: {"id": float(r["id"])})
    with pytest.raises(ValueError, match="same types"):
        ds.join(floats, "inner", 2, validate_schemas=True)


def test_join_with_an_empty_side():
    left = ed.range(5)
    empty = ed.range(5).filter(lambda r: r["id"] > 10)
    assert left.join(empty, "inner", 2).count() == 0
    assert sorted(r["id"] for r in left.join(empty, "left_anti", 2).take_all()) == \
        list(range(5))
