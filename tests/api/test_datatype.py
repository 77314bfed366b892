"""Tests of engine.datatype.DataType (``ray.data.datatype.DataType``): factories, the three
kinds of backing type, conversions, equality, and bad arguments. No workers start."""

from __future__ import annotations

import importlib
import pickle

import numpy as np
import pyarrow as pa
import pytest

from engine.datatype import DataType, TypeCategory


@pytest.mark.parametrize(("factory", "arrow_type"), [
    (DataType.int8, pa.int8()), (DataType.int16, pa.int16()), (DataType.int32, pa.int32()),
    (DataType.int64, pa.int64()), (DataType.uint8, pa.uint8()), (DataType.uint64, pa.uint64()),
    (DataType.float32, pa.float32()), (DataType.float64, pa.float64()),
    (DataType.string, pa.string()), (DataType.bool, pa.bool_()),
    (DataType.binary, pa.binary()),
])
def test_factories_wrap_arrow_types(factory, arrow_type) -> None:
    dtype = factory()
    assert dtype == DataType.from_arrow(arrow_type)
    assert dtype.is_arrow_type() and not dtype.is_numpy_type() and not dtype.is_python_type()
    assert dtype.to_arrow_dtype() == arrow_type


def test_repr_names_the_kind_of_type() -> None:
    assert repr(DataType.int64()) == "DataType(arrow:int64)"
    assert repr(DataType.from_arrow(pa.timestamp("s"))) == "DataType(arrow:timestamp[s])"
    assert repr(DataType.from_numpy("float32")) == "DataType(numpy:float32)"
    assert repr(DataType(str)) == "DataType(python:str)"


def test_equality_distinguishes_kinds_and_types() -> None:
    assert DataType.int64() == DataType.from_arrow(pa.int64())
    assert DataType.int64() != DataType.int32()
    assert DataType.int64() != DataType.from_numpy(np.int64)  # same width, other system
    assert DataType(int) == DataType(int) and DataType(int) != DataType(str)
    assert DataType.int64() != pa.int64()
    assert len({DataType.int64(), DataType.from_arrow(pa.int64()), DataType(int)}) == 2


def test_conversions() -> None:
    assert DataType.from_numpy(np.dtype("int16")).to_arrow_dtype() == pa.int16()
    assert DataType.float32().to_numpy_dtype() == np.dtype("float32")
    assert DataType.string().to_numpy_dtype() == np.dtype(object)
    assert DataType(int).to_numpy_dtype() == np.dtype(object)
    assert DataType(int).to_python_type() is int
    assert DataType(int).to_arrow_dtype([1, 2]) == pa.int64()
    with pytest.raises(ValueError, match="needs sample values"):
        DataType(int).to_arrow_dtype()
    with pytest.raises(ValueError, match="not backed by a Python type"):
        DataType.int64().to_python_type()


def test_infer_dtype() -> None:
    assert DataType.infer_dtype(5) == DataType.int64()
    assert DataType.infer_dtype("hello") == DataType.string()
    assert DataType.infer_dtype(np.int32(42)) == DataType.from_numpy("int32")
    assert DataType.infer_dtype(np.zeros(3, np.float32)) == DataType.from_numpy("float32")
    assert DataType.infer_dtype(object()).is_python_type()


def test_nested_types_and_categories() -> None:
    ints = DataType.list(DataType.int64())
    assert ints.to_arrow_dtype() == pa.list_(pa.int64())
    assert ints.is_list_type() and ints.is_nested_type() and ints.is_of(TypeCategory.LIST)
    assert DataType.large_list(DataType.int8()).is_of("large_list")
    assert DataType.fixed_size_list(DataType.float32(), 3).to_arrow_dtype() == \
        pa.list_(pa.float32(), 3)
    point = DataType.struct([("x", DataType.float64()), ("y", DataType.float64())])
    assert point.is_struct_type() and point.is_of("struct") and not point.is_of("map")
    assert DataType.map(DataType.string(), DataType.int32()).is_map_type()
    assert DataType.from_arrow(pa.timestamp("ms")).is_temporal_type()
    assert DataType.float64().is_numerical_type() and DataType(int).is_numerical_type()
    assert DataType.string().is_string_type() and DataType(str).is_string_type()
    assert not DataType.int64().is_of("no-such-category")


def test_bad_arguments_raise_type_errors() -> None:
    with pytest.raises(TypeError, match=r"DataType takes a pyarrow\.DataType"):
        DataType("int64")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"from_arrow takes a pyarrow\.DataType"):
        DataType.from_arrow("int64")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes DataType arguments"):
        DataType.list("int64")  # type: ignore[arg-type]


def test_pickles_and_is_importable_where_ray_has_it() -> None:
    for dtype in (DataType.int32(), DataType.from_numpy("f8"), DataType(str)):
        assert pickle.loads(pickle.dumps(dtype)) == dtype
    assert importlib.import_module("engine.datatype").DataType is DataType
    assert importlib.import_module("engine.expressions").udf.__module__ == \
        "engine.expressions.udfs"
