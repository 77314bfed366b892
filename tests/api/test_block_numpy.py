"""The pandas-free conversions of ``engine.block`` (``to_numpy``, ``bool_values``,
``number_array`` with a mask, ``numpy_dtype``, ``empty_table_like``, ``one_array``,
``python_scalar`` of lists) give what pyarrow's own conversions give."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from engine.block import (
    bool_values,
    empty_table_like,
    number_array,
    numpy_dtype,
    one_array,
    python_scalar,
    to_numpy,
)

NUMBER_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
                pa.uint32(), pa.uint64(), pa.float16(), pa.float32(), pa.float64()]


def _same(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    if got.dtype == object:
        assert list(got) == list(expected)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("typ", NUMBER_TYPES, ids=str)
def test_numbers_match_pyarrow_whole_and_sliced(typ):
    arr = pa.array(np.arange(40) % 7, type=typ)
    for piece in (arr, arr.slice(3), arr.slice(5, 17), arr.slice(40)):
        got = to_numpy(piece)
        _same(got, piece.to_numpy(zero_copy_only=False))
        assert not got.flags.writeable  # as pyarrow's zero-copy view


def test_chunked_arrays_match_pyarrow():
    chunks = [pa.array([1.5, 2.5]), pa.array([3.5]), pa.array([4.5, 5.5, 6.5]).slice(1)]
    for column in (pa.chunked_array(chunks), pa.chunked_array(chunks[:1]),
                   pa.chunked_array([], type=pa.float64())):
        _same(to_numpy(column), column.to_numpy())


def test_bools_match_pyarrow_at_every_offset_and_length():
    values = np.random.default_rng(7).random(53) < 0.5
    arr = pa.array(values)
    for start in range(17):
        for length in (0, 1, 7, 8, 9, 15, 16, 17, 53 - start):
            piece = arr.slice(start, length)
            got = bool_values(piece)
            assert got is not None
            _same(got, piece.to_numpy(zero_copy_only=False))
            _same(to_numpy(piece), got)
            _same(to_numpy(pa.chunked_array([piece, arr.slice(1, 3)])),
                  pa.chunked_array([piece, arr.slice(1, 3)]).to_numpy())


@pytest.mark.parametrize("arr", [
    pa.array([True, None, False]),
    pa.array([1, None, 3]),
    pa.array([1.5, None]),
    pa.array(["a", None, "c"]),
    pa.array([1, 2], type=pa.timestamp("us")),
    pa.array([[1], [2, 3]]),
    pa.nulls(3),
], ids=["bools-with-nulls", "ints-with-nulls", "floats-with-nulls", "strings", "timestamps",
        "lists", "nulls"])
def test_other_arrays_take_pyarrows_conversion(arr):
    got = to_numpy(arr)
    expected = arr.to_numpy(zero_copy_only=False)
    if got.dtype.kind == "f":
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(got[~np.isnan(got)], expected[~np.isnan(expected)])
    elif got.dtype == object and len(got) and isinstance(got[-1], np.ndarray):
        assert [list(v) for v in got] == [list(v) for v in expected]
    else:
        _same(got, expected)


def test_bool_values_is_none_for_other_arrays():
    assert bool_values(pa.array([True, None])) is None
    assert bool_values(pa.array([1, 0])) is None


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint16", "uint64", "float16", "float64",
                                   "bool"])
def test_number_array_with_a_mask_equals_pa_array(dtype):
    values = (np.arange(19) % 3).astype(dtype)
    for mask in (np.arange(19) % 4 == 1, np.zeros(19, dtype=bool), np.ones(19, dtype=bool)):
        got = number_array(values, mask)
        expected = pa.array(values, mask=mask)
        assert got.type == expected.type
        assert got.equals(expected)
        assert got.null_count == int(mask.sum())
    assert number_array(values[::2], mask[::2]).equals(pa.array(values[::2], mask=mask[::2]))


def test_number_array_refuses_a_mask_of_another_length():
    with pytest.raises(ValueError, match="mask"):
        number_array(np.arange(3), np.zeros(2, dtype=bool))


@pytest.mark.parametrize("typ", [*NUMBER_TYPES, pa.bool_(), pa.timestamp("ms"), pa.string()],
                         ids=str)
def test_numpy_dtype_equals_the_pandas_dtype(typ):
    assert numpy_dtype(typ) == np.dtype(typ.to_pandas_dtype())


def test_empty_table_like_equals_the_schemas_empty_table():
    schema = pa.schema([pa.field("a", pa.int64()), pa.field("b", pa.string(), nullable=False),
                        pa.field("t", pa.fixed_shape_tensor(pa.float32(), (2, 2))),
                        pa.field("d", pa.dictionary(pa.int8(), pa.string())),
                        pa.field("s", pa.struct([("x", pa.int8())])),
                        pa.field("n", pa.null())], metadata={"k": "v"})
    got = empty_table_like(schema)
    expected = schema.empty_table()
    assert got.equals(expected)
    assert got.schema.equals(schema, check_metadata=True)
    assert [c.num_chunks for c in got.columns] == [c.num_chunks for c in expected.columns]
    assert empty_table_like(None).num_columns == 0


def test_one_array_keeps_a_single_chunk_and_joins_several():
    chunk = pa.array(np.arange(10)).slice(2, 5)
    single = one_array(pa.chunked_array([chunk]))
    assert single.buffers()[1].address == chunk.buffers()[1].address  # not copied
    assert single.equals(chunk)
    several = pa.chunked_array([chunk, pa.array([7, 8])])
    assert one_array(several).equals(several.combine_chunks())
    for typ in (pa.int64(), pa.string(), pa.fixed_shape_tensor(pa.float32(), (2,))):
        none = pa.chunked_array([], type=typ)
        assert one_array(none).equals(none.combine_chunks())
    assert one_array(chunk) is chunk


@pytest.mark.parametrize("value", [
    [1, 2, 3], [1.5, 2], [2, 0.5], [True, False], [(1 << 63) - 1, -(1 << 63)], [1 << 53, 0.5],
    [7], [0.0], [1, True], [1 << 63], [(1 << 53) + 1, 0.5], [None, 1], ["a", "b"], [],
    [[1], [2]], [1, "a"],
], ids=repr)
def test_python_scalar_of_a_list_equals_pa_scalar(value):
    try:
        expected = pa.scalar(value)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            python_scalar(value)
        return
    got = python_scalar(value)
    assert got.type == expected.type
    assert got.equals(expected)
    assert got.as_py() == expected.as_py()
