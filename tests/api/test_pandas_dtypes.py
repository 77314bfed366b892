"""Pandas dtypes of ``to_pandas()`` and pandas batches, as Ray Data 2.60 gives them by
default (Arrow-backed: ``int64[pyarrow]``, nulls as ``<NA>``; all-null columns as ``None``
objects), and numpy dtypes with ``DataContext.enable_arrow_backed_pandas_conversion=False``
in the driver and in the workers. These tests start workers. None depends on timing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import engine as ed

TABLE = pa.table({"a": [1, None], "s": ["x", None], "n": pa.nulls(2),
                  "t": pa.FixedShapeTensorArray.from_numpy_ndarray(np.zeros((2, 2)))})


def _dtype_names(df: pd.DataFrame) -> dict[str, str]:
    return {c: str(t) for c, t in df.dtypes.items()}


def test_arrow_backed_by_default() -> None:
    df = ed.from_arrow(TABLE).to_pandas()
    assert _dtype_names(df) == {"a": "int64[pyarrow]", "s": "string[pyarrow]",
                                "n": "object", "t": "object"}
    assert df["a"].isna().tolist() == [False, True]
    assert df["n"].tolist() == [None, None]
    assert df["t"][0].shape == (2,)
    assert _dtype_names(ed.range(3).to_pandas()) == {"id": "int64[pyarrow]"}


def test_pandas_batches_in_workers_follow_the_setting(fresh_context: ed.DataContext) -> None:
    def dtypes(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"dtype": [str(df["a"].dtype)]})

    ds = ed.from_arrow(TABLE.select(["a"]))
    assert ds.map_batches(dtypes, batch_format="pandas").take_all() == \
        [{"dtype": "int64[pyarrow]"}]
    fresh_context.enable_arrow_backed_pandas_conversion = False
    assert ds.map_batches(dtypes, batch_format="pandas").take_all() == [{"dtype": "float64"}]


@pytest.mark.parametrize("arrow_backed", [True, False])
def test_round_trip_keeps_arrow_types(arrow_backed: bool,
                                      fresh_context: ed.DataContext) -> None:
    fresh_context.enable_arrow_backed_pandas_conversion = arrow_backed
    ds = ed.from_arrow(TABLE.select(["s"])).map_batches(lambda df: df, batch_format="pandas")
    assert ds.schema().types == [pa.string()] or not arrow_backed
    assert ds.take_all() == [{"s": "x"}, {"s": None}]


def test_numpy_dtypes_behind_the_switch(fresh_context: ed.DataContext) -> None:
    fresh_context.enable_arrow_backed_pandas_conversion = False
    df = ed.from_arrow(TABLE.select(["a", "n"])).to_pandas()
    assert _dtype_names(df) == {"a": "float64", "n": "object"}
    batch = next(ed.range(3).iter_batches(batch_format="pandas"))
    assert batch["id"].dtype == np.int64
