"""``iter_torch_batches``: dtypes, zero-copy where safe, in-place safety, collate classes,
``pin_memory`` and the argument checks Ray Data makes."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import engine as ed
from engine.collate_fn import (
    ArrowBatchCollateFn,
    DefaultCollateFn,
    NumpyBatchCollateFn,
    PandasBatchCollateFn,
)
from engine.consumption.torch_batches import arrow_batch_to_tensors

torch = pytest.importorskip("torch")


@pytest.fixture
def ordered(fresh_context):
    fresh_context.execution_options.preserve_order = True
    return fresh_context


def test_dtypes_of_the_columns() -> None:
    table = pa.table({
        "i64": pa.array([1, 2, 3], pa.int64()), "i32": pa.array([1, 2, 3], pa.int32()),
        "f32": pa.array([1, 2, 3], pa.float32()), "f64": pa.array([0.5, 1.5, 2.5]),
        "b": pa.array([True, False, True]), "u8": pa.array([1, 2, 3], pa.uint8()),
        "with_null": pa.array([1, None, 3], pa.int64()), "nothing": pa.nulls(3),
    })
    [batch] = ed.from_arrow(table).iter_torch_batches(batch_size=None)
    expected = {"i64": torch.int64, "i32": torch.int32, "f32": torch.float32,
                "f64": torch.float64, "b": torch.bool, "u8": torch.uint8,
                "with_null": torch.float64, "nothing": torch.float64}
    assert {k: v.dtype for k, v in batch.items()} == expected
    assert batch["i64"].tolist() == [1, 2, 3]
    assert torch.isnan(batch["with_null"][1]) and torch.isnan(batch["nothing"]).all()


def test_dtypes_argument_single_and_per_column() -> None:
    ds = ed.from_items([{"a": i, "b": float(i)} for i in range(10)])
    [one] = ds.iter_torch_batches(batch_size=None, dtypes=torch.float32)
    assert one["a"].dtype == one["b"].dtype == torch.float32
    [per] = ds.iter_torch_batches(batch_size=None, dtypes={"a": torch.float16})
    assert (per["a"].dtype, per["b"].dtype) == (torch.float16, torch.float64)
    [bf] = ds.iter_torch_batches(batch_size=None, dtypes={"b": torch.bfloat16})
    assert bf["b"].dtype == torch.bfloat16 and bf["b"].tolist()[:3] == [0.0, 1.0, 2.0]


def test_tensor_columns_keep_their_shape(ordered) -> None:
    batches = list(ed.range_tensor(12, shape=(2, 3), override_num_blocks=3)
                   .iter_torch_batches(batch_size=5))
    assert [tuple(b["data"].shape) for b in batches] == [(5, 2, 3), (5, 2, 3), (2, 2, 3)]
    assert batches[1]["data"][0].flatten().tolist() == [5] * 6


def test_strings_are_refused_with_the_column_named() -> None:
    with pytest.raises(TypeError, match="column 'name'"):
        list(ed.from_items([{"name": "a"}]).iter_torch_batches())


# ---------------------------------------------------------------- zero copy, in-place safety


def test_owned_memory_becomes_tensors_without_a_copy() -> None:
    table = pa.table({"x": np.arange(100, dtype=np.float64),
                      "y": np.arange(100, dtype=np.int32)}).take(np.arange(100)[::-1])
    part = table.slice(10, 20)
    tensors = arrow_batch_to_tensors(part, owned=True)
    for name in ("x", "y"):
        arr = part.column(name).chunk(0)
        start = arr.buffers()[1].address + arr.offset * arr.type.bit_width // 8
        assert tensors[name].data_ptr() == start  # a view of the batch's own memory
    tensors["x"] += 1  # writable
    assert part.column("x").to_pylist()[0] == 90.0


def test_shared_memory_is_copied_and_never_written(tmp_path) -> None:
    path = str(tmp_path / "block.arrow")
    source = pa.table({"x": np.arange(1000, dtype=np.int64)})
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, source.schema) as writer:
        writer.write_table(source)
    mapped = pa.ipc.open_file(pa.memory_map(path, "r")).read_all()
    tensors = arrow_batch_to_tensors(mapped.slice(0, 100), owned=False)
    tensors["x"].mul_(-1)  # would crash on the read-only map were it not a copy
    assert mapped.column("x").to_pylist()[:3] == [0, 1, 2]


@pytest.mark.parametrize("shuffle", [None, 500])
def test_modifying_batches_in_place_never_changes_the_data(shuffle) -> None:
    # Blocks of 8 KB and more live in the shared store as read-only memory maps.
    ds = ed.range(20_000, override_num_blocks=4).materialize()
    for batch in ds.iter_torch_batches(batch_size=1000, local_shuffle_buffer_size=shuffle):
        batch["id"].fill_(-1)
    assert sorted(r["id"] for r in ds.take_all()) == list(range(20_000))


def test_unshuffled_tensors_are_views_of_the_stores_copy_on_write_mapping() -> None:
    # Each 400 KB block is a store file (not inline); its ten batches are consecutive views
    # of this process's private mapping of it (no copy), yet writing them leaves the file.
    ds = ed.range(200_000, override_num_blocks=4).materialize()
    batches = list(ds.iter_torch_batches(batch_size=5000))
    starts = [b["id"].data_ptr() for b in batches]
    contiguous = sum(1 for a, b in itertools.pairwise(starts) if b == a + 5000 * 8)
    assert contiguous >= 4 * 9
    for batch in batches:
        batch["id"].fill_(-1)
    assert sorted(r["id"] for r in ds.take_all()) == list(range(200_000))


def test_private_mapping_views_are_writable_and_leave_the_file(tmp_path) -> None:
    from engine.private_memory import map_private, writable_view

    path = str(tmp_path / "block.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, pa.schema([("x", pa.int64())])) \
            as writer:
        writer.write_table(pa.table({"x": np.arange(10)}))
    table = pa.ipc.open_file(pa.BufferReader(map_private(path))).read_all()
    data = table.column("x").chunk(0).buffers()[1]
    view = writable_view(data, np.dtype(np.int64), 10, 0)
    assert view is not None and view.flags.writeable
    view[:] = -1
    assert table.column("x").to_pylist() == [-1] * 10  # this process's pages
    reread = pa.ipc.open_file(pa.memory_map(path, "r")).read_all()
    assert reread.column("x").to_pylist() == list(range(10))
    # Memory not mapped here is never claimed writable.
    assert writable_view(pa.py_buffer(np.arange(4)), np.dtype(np.int64), 4, 0) is None


def test_shuffled_tensors_are_fresh_memory_of_their_own() -> None:
    ds = ed.range(5000, override_num_blocks=1)
    batches = list(ds.iter_torch_batches(batch_size=100, local_shuffle_buffer_size=500,
                                         local_shuffle_seed=0))
    # Each batch is gathered once into memory of its own (no copy at conversion): writing
    # one changes no other.
    assert len({b["id"].data_ptr() for b in batches}) == len(batches) == 50
    values = torch.cat([b["id"] for b in batches]).tolist()
    batches[0]["id"] += 1_000_000
    assert torch.cat([b["id"] for b in batches[1:]]).tolist() == values[100:]
    assert sorted(values) == list(range(5000)) and values != list(range(5000))


# ------------------------------------------------------------------------ collate classes


class ArrowPlusFive(ArrowBatchCollateFn):
    def __call__(self, batch: pa.Table):
        assert isinstance(batch, pa.Table)
        return torch.as_tensor(batch["x"].to_numpy() + 5)


class NumpyPlusFive(NumpyBatchCollateFn):
    def __call__(self, batch):
        assert isinstance(batch, dict) and isinstance(batch["x"], np.ndarray)
        return torch.as_tensor(batch["x"] + 5)


class PandasPlusFive(PandasBatchCollateFn):
    def __call__(self, batch):
        assert isinstance(batch, pd.DataFrame)
        return torch.as_tensor(batch["x"].to_numpy() + 5)


@pytest.mark.parametrize("collate", [ArrowPlusFive(), NumpyPlusFive(), PandasPlusFive(),
                                     lambda b: torch.as_tensor(b["x"] + 5)])
def test_collate_classes_get_their_batch_format(collate, ordered) -> None:
    ds = ed.from_items([{"x": 1, "y": 2}, {"x": 3, "y": 4}])
    [out] = ds.iter_torch_batches(collate_fn=collate)
    assert out.tolist() == [6, 8]


def test_collate_classes_importable_where_ray_has_them() -> None:
    import engine.collate_fn as module

    for name in ("ArrowBatchCollateFn", "NumpyBatchCollateFn", "PandasBatchCollateFn",
                 "DefaultCollateFn", "CollateFn"):
        assert hasattr(module, name)


def test_default_collate_fn_with_and_without_threads(ordered) -> None:
    ds = ed.range(3000, override_num_blocks=3).map_batches(
        lambda b: {"id": b["id"], "x": b["id"] * 0.5})
    plain = list(ds.iter_torch_batches(batch_size=700,
                                       collate_fn=DefaultCollateFn(num_workers=0)))
    threaded = list(ds.iter_torch_batches(batch_size=700,
                                          collate_fn=DefaultCollateFn(num_workers=4)))
    assert len(plain) == len(threaded) == 5
    for a, b in zip(plain, threaded, strict=True):
        assert torch.equal(a["id"], b["id"]) and torch.equal(a["x"], b["x"])
    typed = list(ds.iter_torch_batches(collate_fn=DefaultCollateFn(dtypes=torch.float32)))
    assert typed[0]["id"].dtype == torch.float32


def test_large_shared_batches_are_copied_on_the_collate_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    n = 300_000  # 3 columns of 8 bytes: past the size that goes to the threads
    table = pa.table({"a": np.arange(n), "b": np.arange(n) * 0.5, "c": np.arange(n) % 7})
    with ThreadPoolExecutor(3) as pool:
        threaded = arrow_batch_to_tensors(table, owned=False, threadpool=pool)
    plain = arrow_batch_to_tensors(table, owned=False)
    assert list(threaded) == ["a", "b", "c"]
    for name in plain:
        assert torch.equal(threaded[name], plain[name])
        assert threaded[name].data_ptr() != plain[name].data_ptr()  # each one a copy


def test_pin_memory_without_an_accelerator_still_gives_tensors() -> None:
    [batch] = ed.range(10).iter_torch_batches(batch_size=None, pin_memory=True)
    assert batch["id"].tolist() == list(range(10))


def test_argument_checks_like_ray() -> None:
    ds = ed.range(10)
    with pytest.raises(ValueError, match="collate_fn cannot be used with dtypes"):
        ds.iter_torch_batches(collate_fn=NumpyPlusFive(), dtypes=torch.float32)
    with pytest.raises(ValueError, match="collate_fn cannot be used with dtypes or device"):
        ds.iter_torch_batches(collate_fn=NumpyPlusFive(), device="cpu")
    with pytest.raises(ValueError, match="pin_memory is only supported"):
        ds.iter_torch_batches(collate_fn=NumpyPlusFive(), pin_memory=True)
    with pytest.raises(ValueError, match="unsupported collate_fn"):
        ds.iter_torch_batches(collate_fn=42)  # type: ignore[arg-type]


def test_device_cpu_and_auto() -> None:
    [batch] = ed.range(4).iter_torch_batches(batch_size=None, device="cpu")
    assert batch["id"].device.type == "cpu"
    [auto] = ed.range(4).iter_torch_batches(batch_size=None)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert auto["id"].device.type == expected
