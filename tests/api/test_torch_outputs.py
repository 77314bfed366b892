"""Torch tensors in UDF outputs, converted as Ray Data 2.60 converts them: a tensor per
batch column becomes a numpy array, a tensor per row (or a list of them per batch) a tensor
column. Skipped without torch (it is in the ``test`` extra).

These tests start workers. None depends on timing.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import engine as ed

torch = pytest.importorskip("torch")


def test_a_torch_tensor_per_batch_becomes_numpy() -> None:
    ds = ed.range(4).map_batches(
        lambda b: {"t": torch.as_tensor(b["id"]) * 2, "m": torch.ones(len(b["id"]), 2)})
    batch = ds.take_batch(4)
    assert batch["t"].tolist() == [0, 2, 4, 6]
    assert batch["m"].shape == (4, 2) and batch["m"].dtype == np.float32


def test_a_torch_tensor_per_row_becomes_a_tensor_column() -> None:
    ds = ed.range(3).map(lambda r: {"v": torch.full((2,), float(r["id"])),
                                    "s": torch.tensor(r["id"])})
    rows = sorted(ds.take_all(), key=lambda r: r["s"])
    assert [r["v"].tolist() for r in rows] == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    assert [r["s"] for r in rows] == [0, 1, 2]
    assert isinstance(ds.schema().types[0], pa.FixedShapeTensorType)


def test_a_list_of_torch_tensors_per_batch() -> None:
    ds = ed.range(2).map_batches(lambda b: {"v": [torch.zeros(3) for _ in b["id"]]})
    assert ds.take_batch()["v"].shape == (2, 3)
