"""``from_blocks`` and exact block counts of ``from_arrow``/``from_pandas``, against Ray Data
2.60: ``from_blocks`` keeps one block per input (empty ones included); ``override_num_blocks=n``
gives exactly ``n`` blocks, empty ones included when rows run out.

These tests start workers. None depends on timing.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

import engine as ed


def test_from_blocks_keeps_one_block_per_table_or_frame() -> None:
    blocks = [pd.DataFrame({"column": ["spam"]}), pa.table({"column": ["ham", "eggs"]}),
              pa.table({"column": pa.array([], pa.string())})]
    ds = ed.from_blocks(blocks)
    assert ds.num_blocks() == 3
    got = [ed.get(ref) for ref in ds.to_arrow_refs()]
    assert [t.column("column").to_pylist() for t in got] == [["spam"], ["ham", "eggs"], []]
    assert ds.count() == 3


def test_from_blocks_batches_follow_the_blocks() -> None:
    frames = [pd.DataFrame({"one": [1, 2, 3]}), pd.DataFrame({"one": [4, 5]})]
    ds = ed.from_blocks(frames)
    batches = list(ds.iter_batches(batch_size=None, batch_format="pandas"))
    assert [b["one"].tolist() for b in batches] == [[1, 2, 3], [4, 5]]


def test_from_blocks_refuses_other_values() -> None:
    with pytest.raises(TypeError, match=r"blocks\[1\] is dict"):
        ed.from_blocks([pa.table({"a": [1]}), {"a": [1]}])
    with pytest.raises(TypeError, match="list of blocks"):
        ed.from_blocks(pa.table({"a": [1]}))  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_from_arrow_override_num_blocks_is_exact(n: int) -> None:
    ds = ed.from_arrow(pa.table({"one": [1, 2, 3]}), override_num_blocks=n)
    assert ds.num_blocks() == n
    assert sorted(r["one"] for r in ds.take_all()) == [1, 2, 3]


def test_from_arrow_several_tables_and_empty_table() -> None:
    ds = ed.from_arrow([pa.table({"a": [1, 2, 3]}), pa.table({"a": [4, 5, 6]})],
                       override_num_blocks=10)
    assert (ds.num_blocks(), ds.count()) == (10, 6)
    empty = ed.from_arrow(pa.table({"a": pa.array([], pa.int64())}), override_num_blocks=5)
    assert (empty.num_blocks(), empty.count()) == (5, 0)


def test_from_pandas_override_num_blocks_is_exact() -> None:
    ds = ed.from_pandas([pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [3]})],
                        override_num_blocks=4)
    assert (ds.num_blocks(), ds.count()) == (4, 3)
    assert sorted(ds.to_pandas()["a"].tolist()) == [1, 2, 3]


def test_from_items_never_makes_empty_blocks() -> None:
    # Unlike from_arrow, Ray Data caps from_items' blocks at the number of items.
    assert ed.from_items([1, 2, 3], override_num_blocks=10).num_blocks() == 3
