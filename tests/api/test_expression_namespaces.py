"""The ``.list``, ``.struct``, ``.map`` and ``.arr`` expression namespaces: results on
blocks (nulls, empty lists, sliced and chunked columns, empty tables) and through
``with_column``. Expected values follow Ray Data 2.60's namespace tests."""

from __future__ import annotations

import pyarrow as pa
import pytest

import engine as ed
from engine.expressions import col, evaluate, to_pyarrow

LISTS = pa.table({
    "l": pa.array([[3, 1, 2], None, [], [None, 4, 2]], pa.list_(pa.int64())),
    "ll": pa.array([[[1, 2], [3]], [[], [4, 5]], None, [None, [6]]]),
    "fixed": pa.array([[1, 2], [3, 4], None, [6, 5]], pa.list_(pa.int64(), 2)),
})
MAPS = pa.table({"m": pa.array([{"a": 1, "b": 2}, {}, None, {"c": 3}],
                               pa.map_(pa.string(), pa.int64()))})
USER = pa.struct([("name", pa.string()),
                  ("address", pa.struct([("city", pa.string()), ("zip", pa.int32())]))])
STRUCTS = pa.table({"user": pa.array([
    {"name": "Ann", "address": {"city": "Oslo", "zip": 150}},
    None,
    {"name": "Bo", "address": None},
], USER)})


def values(expr, table):
    return evaluate(expr, table).to_pylist()


def test_list_length_items_and_slices() -> None:
    assert values(col("l").list.len(), LISTS) == [3, None, 0, 3]
    assert values(col("l").list.get(0), LISTS) == [3, None, None, None]
    assert values(col("l").list[-1], LISTS) == [2, None, None, 2]
    assert values(col("l").list[7], LISTS) == [None] * 4  # too short: null, not an error
    assert values(col("l").list[1:], LISTS) == [[1, 2], None, [], [4, 2]]
    assert values(col("l").list[0:2], LISTS) == [[3, 1], None, [], [None, 4]]
    assert values(col("l").list.len() + 1, LISTS) == [4, None, 1, 4]
    with pytest.raises(TypeError, match="list indices must be integers or slices"):
        col("l").list["a"]  # type: ignore[index]


def test_list_sort_orders_and_null_placement() -> None:
    assert values(col("l").list.sort(), LISTS) == [[1, 2, 3], None, [], [2, 4, None]]
    assert values(col("l").list.sort(order="descending", null_placement="at_start"),
                  LISTS) == [[3, 2, 1], None, [], [None, 4, 2]]
    fixed = evaluate(col("fixed").list.sort(), LISTS)
    assert fixed.type == LISTS.schema.field("fixed").type  # the fixed size is kept
    assert fixed.to_pylist() == [[1, 2], [3, 4], None, [5, 6]]
    with pytest.raises(ValueError, match="order must be"):
        col("l").list.sort(order="up")
    with pytest.raises(ValueError, match="null_placement must be"):
        col("l").list.sort(null_placement="middle")


def test_list_flatten() -> None:
    assert values(col("ll").list.flatten(), LISTS) == [[1, 2, 3], [4, 5], None, [6]]
    large = pa.table({"x": pa.array([[[1], [2, 3]], []], pa.large_list(pa.list_(pa.int8())))})
    flat = evaluate(col("x").list.flatten(), large)
    assert flat.type == pa.large_list(pa.int8()) and flat.to_pylist() == [[1, 2, 3], []]
    with pytest.raises(TypeError, match="items are lists"):
        evaluate(col("l").list.flatten(), LISTS)


def test_list_functions_on_sliced_and_chunked_columns() -> None:
    sliced = LISTS.slice(1)
    assert values(col("l").list[-1], sliced) == [None, None, 2]
    assert values(col("ll").list.flatten(), sliced) == [[4, 5], None, [6]]
    chunked = pa.concat_tables([LISTS.slice(0, 2), LISTS.slice(2)])
    assert values(col("l").list.sort(), chunked) == values(col("l").list.sort(), LISTS)


def test_struct_fields_by_method_and_bracket_nested() -> None:
    assert values(col("user").struct.field("name"), STRUCTS) == ["Ann", None, "Bo"]
    assert values(col("user").struct["name"], STRUCTS) == ["Ann", None, "Bo"]
    city = col("user").struct["address"].struct.field("city")
    assert repr(city) == "col('user').struct['address'].struct.field('city')"
    assert values(city, STRUCTS) == ["Oslo", None, None]
    zip_code = evaluate(col("user").struct["address"].struct["zip"], STRUCTS)
    assert zip_code.type == pa.int32() and zip_code.to_pylist() == [150, None, None]
    with pytest.raises(ValueError, match=r"cannot evaluate col\('user'\).struct\['nope'\]"):
        evaluate(col("user").struct["nope"], STRUCTS)
    with pytest.raises(TypeError, match="named by strings"):
        col("user").struct[0]  # type: ignore[index]
    assert to_pyarrow(city.is_not_null()) is not None  # struct access can be pushed down


def test_map_keys_and_values() -> None:
    assert values(col("m").map.keys(), MAPS) == [["a", "b"], [], None, ["c"]]
    assert values(col("m").map.values(), MAPS) == [[1, 2], [], None, [3]]
    assert values(col("m").map.keys().list.len(), MAPS) == [2, 0, None, 1]
    assert values(col("m").map.values(), MAPS.slice(2)) == [None, [3]]
    assert evaluate(col("m").map.keys(), MAPS.slice(0, 0)).type == pa.list_(pa.string())
    pairs = pa.table({"m": pa.array([[{"k": "x", "v": 1}], None])})  # a list of structs
    assert values(col("m").map.values(), pairs) == [[1], None]
    with pytest.raises(TypeError, match="needs a map column"):
        evaluate(col("l").map.keys(), LISTS)


def test_arr_to_list() -> None:
    out = evaluate(col("fixed").arr.to_list(), LISTS)
    assert out.type == pa.list_(pa.int64())
    assert out.to_pylist() == [[1, 2], [3, 4], None, [6, 5]]
    assert values(col("l").arr.to_list(), LISTS) == LISTS.column("l").to_pylist()
    with pytest.raises(TypeError, match="can only be called on list-like columns"):
        evaluate(col("m").arr.to_list(), pa.table({"m": [1]}))


def test_namespaces_through_with_column() -> None:
    ds = ed.from_arrow(pa.concat_tables([LISTS.slice(0, 2), LISTS.slice(2)]).combine_chunks()
                       .append_column("m", MAPS.column("m")))
    out = (ds.with_column("n", col("l").list.len())
             .with_column("keys", col("m").map.keys())
             .with_column("flat", col("ll").list.flatten())
             .select_columns(["n", "keys", "flat"]))
    assert out.take_all() == [
        {"n": 3, "keys": ["a", "b"], "flat": [1, 2, 3]},
        {"n": None, "keys": [], "flat": [4, 5]},
        {"n": 0, "keys": None, "flat": None},
        {"n": 3, "keys": ["c"], "flat": [6]},
    ]
    users = ed.from_arrow(STRUCTS).with_column("city", col("user").struct["address"]
                                               .struct["city"])
    assert [r["city"] for r in users.take_all()] == ["Oslo", None, None]
