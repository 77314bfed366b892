"""Columns of arbitrary Python objects, against Ray Data 2.60: values without an Arrow type
are stored pickled (an Arrow extension type) and come back as the very objects in rows,
numpy and pandas batches.

These tests start workers. None depends on timing.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

import engine as ed
from engine.block import columns_to_table, pandas_to_table, table_to_batch, table_to_rows
from engine.object_column import PythonObjectType, is_object_type


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


def test_objects_round_trip_through_a_block() -> None:
    table = columns_to_table({"p": [Point(1), None, Point(3)], "n": [1, 2, 3]})
    assert is_object_type(table.schema.field("p").type)
    assert table.schema.field("n").type == pa.int64()
    assert [r["p"] for r in table_to_rows(table)] == [Point(1), None, Point(3)]
    batch = table_to_batch(table, "numpy")
    assert batch["p"].dtype == object and batch["p"][2] == Point(3)
    frame = table_to_batch(table, "pandas")
    assert frame["p"].tolist() == [Point(1), None, Point(3)]
    assert pa.concat_tables([table, table]).num_rows == 6


def test_mixed_nested_values_in_a_dataframe_become_objects() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": [{"c": 2}, {"c": {"hello": "world"}}]})
    table = pandas_to_table(df)
    assert table.schema.field("a").type == pa.int64()
    assert isinstance(table.schema.field("b").type, PythonObjectType)
    assert table.column("b").to_pylist() == [{"c": 2}, {"c": {"hello": "world"}}]


def test_udfs_return_and_receive_objects() -> None:
    ds = ed.range(1).map_batches(lambda b: {"id": [0, 1, 2, Point(7)]}).materialize()
    assert ds.take_batch()["id"].tolist() == [0, 1, 2, Point(7)]
    items = ed.from_items([{"x": 2}, {"x": Point(5)}])
    out = items.map_batches(lambda b: {"x": b["x"]}, batch_format="numpy").take_all()
    assert [r["x"] for r in out] == [2, Point(5)]
    rows = ed.range(2).map(lambda r: {"p": Point(int(r["id"]))}).take_all()
    assert sorted(r["p"].x for r in rows) == [0, 1]
    assert ed.range(1).map_batches(lambda b: {"x": [object()]}).count() == 1


def test_an_empty_object_column_and_nulls() -> None:
    table = columns_to_table({"p": [None, Point(1)]})
    assert table.slice(0, 0).column("p").to_pylist() == []
    assert table.column("p").null_count == 1
