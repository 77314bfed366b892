"""DataContext as Ray Data 2.60 has it: ``DataContext.current(ctx)`` as a context manager,
``arrow_fixed_shape_tensor_format``, the deprecated ``write_file_retry_on_errors`` and
``target_max_block_size=None``. No workers needed except where a dataset runs."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pyarrow as pa
import pytest

import engine as ed
from engine.context import DataContext, FixedShapeTensorFormat


def test_current_sets_and_restores_nested_contexts() -> None:
    original = DataContext.get_current()
    one, two = copy.deepcopy(original), copy.deepcopy(original)
    one.set_config("level", "1")
    two.set_config("level", "2")
    with pytest.raises(KeyError), DataContext.current(one):
        assert DataContext.get_current() is one
        with DataContext.current(two):
            assert DataContext.get_current().get_config("level") == "2"
        assert DataContext.get_current() is one
        raise KeyError("restored even when the block raises")
    assert DataContext.get_current() is original


def test_current_context_applies_to_executions() -> None:
    ctx = copy.deepcopy(DataContext.get_current())
    ctx.target_max_block_size = 8 * 100  # 100 int64 rows a block
    with DataContext.current(ctx):
        blocks = ed.range(1000, override_num_blocks=1).materialize().num_blocks()
    assert blocks == 10


def test_fixed_shape_tensor_format_gives_the_stored_type() -> None:
    fmt = DataContext.get_current().arrow_fixed_shape_tensor_format
    assert fmt is FixedShapeTensorFormat.ARROW_NATIVE
    tensor_type = fmt.to_type()
    ds = ed.range_tensor(4, shape=(2, 3))
    assert ds.schema().types == [tensor_type((2, 3), pa.int64())]
    assert np.array_equal(ds.take(1)[0]["data"], np.zeros((2, 3), dtype=np.int64))


def test_fixed_shape_tensor_format_refuses_other_values(fresh_context: DataContext) -> None:
    with pytest.raises(TypeError, match="FixedShapeTensorFormat"):
        fresh_context.arrow_fixed_shape_tensor_format = "v2"  # type: ignore[assignment]
    fresh_context.arrow_fixed_shape_tensor_format = FixedShapeTensorFormat.V2


def test_write_file_retry_on_errors_is_deprecated(fresh_context: DataContext) -> None:
    with pytest.warns(DeprecationWarning, match="write_file_retry_on_errors"):
        fresh_context.write_file_retry_on_errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DataContext()  # the default value warns nothing


def test_unlimited_block_size_splits_nothing(fresh_context: DataContext) -> None:
    fresh_context.target_max_block_size = None
    assert fresh_context.max_block_bytes() > 1 << 60
    ds = ed.range(10_000, override_num_blocks=2).map_batches(lambda b: b).materialize()
    assert ds.num_blocks() == 2
    assert ed.range(10).count() == 10
