"""The broadcast lookup join equals Arrow's hash join (up to row order) wherever it
applies, and declines where it does not."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.physical.exchange.lookup_join import SmallSide, small_side
from engine.physical.exchange.tasks import join_tables

CASES = [(True, "inner"), (True, "left_outer"), (True, "left_semi"), (True, "left_anti"),
         (False, "inner"), (False, "right_outer"), (False, "right_semi"),
         (False, "right_anti")]


def _sorted(table: pa.Table) -> list[tuple]:
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return sorted(rows, key=lambda row: [(v is None, str(v)) for v in row])


def _check(big: pa.Table, small: pa.Table, small_is_right: bool, join_type: str,
           big_on: str = "k", small_on: str = "k") -> None:
    side = SmallSide(small, big.schema, small_is_right, join_type, [small_on], [big_on],
                     ("_l", "_r"))
    assert side.applies
    left, right = (big, small) if small_is_right else (small, big)
    on = ([big_on], [small_on]) if small_is_right else ([small_on], [big_on])
    expected = join_tables(left, right, join_type, *on, "_l", "_r")
    got = side.join(big)
    assert got.schema.equals(expected.schema)
    assert _sorted(got) == _sorted(expected)


@pytest.mark.parametrize("spread", [1, 10**12])  # a dense lookup table; a hash index
@pytest.mark.parametrize(("small_is_right", "join_type"), CASES)
@given(big=st.lists(st.one_of(st.none(), st.integers(-3, 9)), max_size=30),
       small=st.sets(st.integers(-3, 9), max_size=8), small_null=st.booleans())
@settings(max_examples=15, deadline=None)
def test_integer_keys_with_nulls_equal_the_hash_join(spread, small_is_right, join_type, big,
                                                     small, small_null):
    big = [None if k is None else k * spread for k in big]
    small_keys = sorted(k * spread for k in small) + ([None] if small_null else [])
    big_t = pa.table({"k": pa.array(big, pa.int64()), "v": pa.array(range(len(big)), pa.int64())})
    small_t = pa.table({"k": pa.array(small_keys, pa.int64()),
                        "v": pa.array([float(i) for i in range(len(small_keys))], pa.float64()),
                        "w": pa.array([str(i) for i in range(len(small_keys))], pa.string())})
    _check(big_t, small_t, small_is_right, join_type)


@pytest.mark.parametrize(("small_is_right", "join_type"), CASES)
def test_string_keys_and_different_key_names(small_is_right, join_type):
    big = pa.table({"name": ["a", "b", None, "c", "a", "z"], "x": [1, 2, 3, 4, 5, 6]})
    small = pa.table({"key": ["a", "c", None, "q"], "y": [10, 30, 40, 50]})
    _check(big, small, small_is_right, join_type, big_on="name", small_on="key")


def test_declines_duplicates_floats_several_keys_and_mixed_types():
    big = pa.table({"k": pa.array([1, 2], pa.int64()), "f": [1.0, 2.0]})
    dup = pa.table({"k": pa.array([1, 1], pa.int64())})
    assert not SmallSide(dup, big.schema, True, "inner", ["k"], ["k"], (None, None)).applies
    floats = pa.table({"f": [1.0]})
    assert not SmallSide(floats, big.schema, True, "inner", ["f"], ["f"],
                         (None, None)).applies
    both = pa.table({"k": pa.array([1], pa.int64()), "f": [1.0]})
    assert not SmallSide(both, big.schema, True, "inner", ["k", "f"], ["k", "f"],
                         (None, None)).applies
    narrow = pa.table({"k": pa.array([1], pa.int32())})
    assert not SmallSide(narrow, big.schema, True, "inner", ["k"], ["k"],
                         (None, None)).applies
    assert not SmallSide(both, big.schema, True, "full_outer", ["k"], ["k"],
                         (None, None)).applies


def test_the_small_side_is_prepared_once_per_broadcast():
    big = pa.table({"k": pa.array([1, 2, 3], pa.int64())})
    small = [pa.table({"k": pa.array([1], pa.int64())}),
             pa.table({"k": pa.array([3], pa.int64())})]
    first = small_side("t1", small, big.schema, True, "inner", ["k"], ["k"], (None, None))
    again = small_side("t1", small, big.schema, True, "inner", ["k"], ["k"], (None, None))
    assert first is again
    assert first.join(big).column("k").to_pylist() == [1, 3]
    other = small_side("t2", small, big.schema, True, "inner", ["k"], ["k"], (None, None))
    assert other is not first
