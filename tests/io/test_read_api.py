"""End-to-end reads through the public API (``engine.read_*``) on the real cluster.

The datasources have unit tests of their own (tests/io/test_*_read.py, run in one process);
these run the same readers as the user does: read tasks pickled to worker processes,
streamed back through the executor, with pushdown by the optimizer, row counts and schemas
from metadata, and bad files counted under ``DataContext.max_errored_blocks``.

Bytes read on the workers are counted by :class:`LoggingFileSystem`, which appends to a
log file (the workers' memory is not the test's).
"""

from __future__ import annotations

import gzip
import json
import os
import re

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed
from engine.errors import DatasetReadError
from engine.io.exceptions import SchemaMismatchError
from engine.io.file_datasource import group_contiguous
from engine.io.partitioning import Partitioning
from engine.logical import operators as lo


class LoggingFileSystem(LocalFileSystem):
    """A local fsspec filesystem that logs ``pid<TAB>path<TAB>bytes`` for every read to a
    file, so that reads in worker processes can be counted by the test."""

    cachable = False

    def __init__(self, log_path: str, **kwargs):
        super().__init__(**kwargs)
        self.log_path = log_path

    def _open(self, path, mode="rb", *args, **kwargs):
        f = super()._open(path, mode, *args, **kwargs)
        if "r" not in mode:
            return f
        log_path = self.log_path
        read = f.read

        def logged_read(*a):
            data = read(*a)
            fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, f"{os.getpid()}\t{path}\t{len(data)}\n".encode())
            finally:
                os.close(fd)
            return data

        f.read = logged_read
        return f


def _log(log_path, workers_only=False) -> list[tuple[str, int]]:
    """``(path, bytes)`` of every read logged (only those of worker processes if asked)."""
    if not os.path.exists(log_path):
        return []
    with open(log_path) as f:
        entries = [line.rstrip("\n").split("\t") for line in f]
    return [(p, int(n)) for pid, p, n in entries
            if not (workers_only and int(pid) == os.getpid())]


def _write(path, data) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return str(path)


def _parquet(path, table, **kwargs) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, **kwargs)
    return str(path)


def _frame(start, n):
    ids = np.arange(start, start + n)
    return pa.table({"id": ids, "v": ids * 0.5, "s": [f"s{i}" for i in ids]})


def _rows(ds, key="id"):
    return sorted(ds.take_all(), key=lambda r: r[key])


def _expected(*tables):
    return sorted(pa.concat_tables(tables).to_pylist(), key=lambda r: r["id"])


# -- every format, every way of naming files --------------------------------------------


def test_parquet_paths_dirs_globs_lists_urls_and_filesystems(tmp_path):
    parts = [_frame(0, 5), _frame(5, 7), _frame(12, 3)]
    paths = [_parquet(tmp_path / "d" / f"part{i}.parquet", t) for i, t in enumerate(parts)]
    _write(tmp_path / "d" / "_SUCCESS", "")  # hidden by the listing, as in Ray
    expected = _expected(*parts)
    for how in (str(tmp_path / "d"), str(tmp_path / "d" / "*.parquet"), paths,
                f"file://{tmp_path / 'd'}"):
        assert _rows(ed.read_parquet(how)) == expected, how
    assert _rows(ed.read_parquet(paths[1])) == _expected(parts[1])
    assert _rows(ed.read_parquet(str(tmp_path / "d"),
                                 filesystem=pafs.LocalFileSystem())) == expected
    assert _rows(ed.read_parquet(str(tmp_path / "d"), filesystem=LocalFileSystem())) == expected
    ds = ed.read_parquet(str(tmp_path / "d"))
    assert ds.input_files() == paths
    assert ds.count() == 15


def test_parquet_columns_include_paths_and_arrow_args(tmp_path):
    path = _parquet(tmp_path / "a.parquet", _frame(0, 10))
    ds = ed.read_parquet(str(tmp_path), columns=["s", "id"], include_paths=True)
    assert ds.columns() == ["s", "id", "path"]
    rows = _rows(ds)
    assert rows[3] == {"s": "s3", "id": 3, "path": path}
    # pyarrow's own arguments pass through: a filter expression and a batch size
    filtered = ed.read_parquet(str(tmp_path), filter=pc.field("id") >= 7, batch_size=2)
    assert [r["id"] for r in _rows(filtered)] == [7, 8, 9]
    with pytest.raises(TypeError, match="not_an_arrow_arg"):
        ed.read_parquet(str(tmp_path), not_an_arrow_arg=1)


def test_csv_round_trip_with_arrow_options_and_compression(tmp_path):
    _write(tmp_path / "a.csv", "id,name\n1,x\n2,y\n")
    _write(tmp_path / "b.csv.gz", gzip.compress(b"id,name\n3,z\n"))
    rows = _rows(ed.read_csv(str(tmp_path), include_paths=True))
    assert rows == [{"id": 1, "name": "x", "path": str(tmp_path / "a.csv")},
                    {"id": 2, "name": "y", "path": str(tmp_path / "a.csv")},
                    {"id": 3, "name": "z", "path": str(tmp_path / "b.csv.gz")}]
    _write(tmp_path / "semi" / "c.txt", "# comment\nid;name\n4;w\n")
    ds = ed.read_csv(str(tmp_path / "semi"), file_extensions=["txt"],
                     read_options=pacsv.ReadOptions(skip_rows=1),
                     parse_options=pacsv.ParseOptions(delimiter=";"),
                     convert_options=pacsv.ConvertOptions(column_types={"id": pa.string()}))
    assert ds.take_all() == [{"id": "4", "name": "w"}]
    assert ds.schema().types == [pa.string(), pa.string()]


def test_json_lines_and_arrays(tmp_path):
    _write(tmp_path / "a.jsonl", '{"id": 1, "tags": ["a"]}\n{"id": 2, "tags": []}\n')
    _write(tmp_path / "b.json", json.dumps([{"id": 3, "tags": ["b", "c"]}]))
    assert _rows(ed.read_json(str(tmp_path))) == [
        {"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}, {"id": 3, "tags": ["b", "c"]}]
    assert _rows(ed.read_json(str(tmp_path / "a.jsonl"), lines=True)) == [
        {"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}]
    schema = pa.schema([("id", pa.float64())])
    ds = ed.read_json(str(tmp_path / "a.jsonl"), parse_options=pajson.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore"))
    assert _rows(ds) == [{"id": 1.0}, {"id": 2.0}]


def test_text_binary_and_numpy_column_names(tmp_path):
    # Ray names the columns "text", "bytes" and "data", and include_paths adds "path".
    txt = _write(tmp_path / "t" / "a.txt", "alpha\n\nbeta\n")
    assert ed.read_text(txt, include_paths=True).take_all() == [
        {"text": "alpha", "path": txt}, {"text": "beta", "path": txt}]
    assert ed.read_text(txt, drop_empty_lines=False).take_all() == [
        {"text": "alpha"}, {"text": ""}, {"text": "beta"}]
    blob = bytes(range(256)) * 3
    bin_path = _write(tmp_path / "b" / "blob.bin", blob)
    assert ed.read_binary_files(str(tmp_path / "b"), include_paths=True).take_all() == [
        {"bytes": blob, "path": bin_path}]
    arr = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    os.makedirs(tmp_path / "n")
    np.save(tmp_path / "n" / "x.npy", arr)
    ds = ed.read_numpy(str(tmp_path / "n"), include_paths=True)
    assert ds.columns() == ["data", "path"]
    batch = ds.take_batch(10)
    np.testing.assert_array_equal(batch["data"], arr)
    assert list(batch["path"]) == [str(tmp_path / "n" / "x.npy")] * 4


def test_images_decoded_resized_and_converted(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(3)]
    for i, p in enumerate(pixels):
        os.makedirs(tmp_path / "img", exist_ok=True)
        image_module.fromarray(p).save(tmp_path / "img" / f"{i}.png")
    _write(tmp_path / "img" / "notes.txt", "not an image")  # skipped by extension
    ds = ed.read_images(str(tmp_path / "img"), include_paths=True)
    rows = sorted(ds.take_all(), key=lambda r: r["path"])
    assert [os.path.basename(r["path"]) for r in rows] == ["0.png", "1.png", "2.png"]
    for row, p in zip(rows, pixels, strict=True):
        np.testing.assert_array_equal(row["image"], p)
    small = ed.read_images(str(tmp_path / "img"), size=(3, 4), mode="L")
    got = sorted((r["image"] for r in small.take_all()), key=lambda a: a.tobytes())
    want = sorted((np.asarray(image_module.fromarray(p).resize(
        (4, 3), resample=image_module.BILINEAR).convert("L")) for p in pixels),
        key=lambda a: a.tobytes())
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_images_and_arrays_of_different_shapes_in_one_task(tmp_path):
    # Small outputs of a task are coalesced into one block; tensors of different shapes
    # cannot share one, and must not fail the read.
    image_module = pytest.importorskip("PIL.Image")
    shapes = [(4, 5, 3), (6, 5, 3), (6, 5, 3)]
    for i, shape in enumerate(shapes):
        os.makedirs(tmp_path / "img", exist_ok=True)
        image_module.fromarray(np.full(shape, i, np.uint8)).save(tmp_path / "img" / f"{i}.png")
    rows = ed.read_images(str(tmp_path / "img"), override_num_blocks=1).take_all()
    assert sorted((r["image"].shape, int(r["image"][0, 0, 0])) for r in rows) == \
        [((4, 5, 3), 0), ((6, 5, 3), 1), ((6, 5, 3), 2)]
    os.makedirs(tmp_path / "npy")
    np.save(tmp_path / "npy" / "a.npy", np.zeros((2, 3)))
    np.save(tmp_path / "npy" / "b.npy", np.ones((1, 4)))
    got = ed.read_numpy(str(tmp_path / "npy"), override_num_blocks=1).take_all()
    assert sorted(r["data"].tolist() for r in got) == [[0.0] * 3, [0.0] * 3, [1.0] * 4]


def test_missing_paths_and_ignore_missing_paths(tmp_path):
    good = _parquet(tmp_path / "a.parquet", _frame(0, 3))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        ed.read_parquet(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        ed.read_csv([good, str(tmp_path / "nope.csv")])
    ds = ed.read_parquet([str(tmp_path / "nope.parquet"), good], ignore_missing_paths=True)
    assert ds.count() == 3 and len(ds.take_all()) == 3


def test_process_local_memory_filesystem_is_refused_clearly(memory_root):
    # Worker processes cannot see the driver's memory:// files, so a read would fail there
    # with a misleading FileNotFoundError and a write would silently vanish.
    fs = fsspec.filesystem("memory")
    with fs.open(f"{memory_root}/a.parquet", "wb") as f:
        pq.write_table(_frame(0, 2), f)
    with pytest.raises(ValueError, match=r"memory://.*worker processes"):
        ed.read_parquet(memory_root)
    with pytest.raises(ValueError, match=r"memory://.*worker processes"):
        ed.range(3).write_parquet(f"{memory_root}/out")
    assert not fs.exists(f"{memory_root}/out")


# -- parallel reads on the workers --------------------------------------------------------


def _tag_pid(batch):
    batch["pid"] = np.full(len(batch["id"]), os.getpid())
    return batch


def test_read_tasks_run_on_workers_and_follow_override_num_blocks(tmp_path):
    for i in range(4):
        _parquet(tmp_path / f"f{i}.parquet", _frame(i * 25, 25))
    ds = ed.read_parquet(str(tmp_path), override_num_blocks=4).map_batches(_tag_pid)
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == list(range(100))
    pids = {r["pid"] for r in rows}
    assert pids and os.getpid() not in pids  # read tasks ran in worker processes
    assert "4 tasks executed" in ds.stats()
    # One file of 8 row groups splits into tasks at row-group boundaries.
    _parquet(tmp_path / "big" / "one.parquet", _frame(0, 80), row_group_size=10)
    big = ed.read_parquet(str(tmp_path / "big"), override_num_blocks=4).materialize()
    assert big.num_blocks() == 4
    assert [b.num_rows for b in map(ed.get, big.to_arrow_refs())] == [20, 20, 20, 20]
    assert sorted(r["id"] for r in big.take_all()) == list(range(80))


def test_csv_files_are_split_into_tasks_by_size(tmp_path):
    for i in range(6):
        _write(tmp_path / f"f{i}.csv", "id\n" + "".join(f"{i * 10 + j}\n" for j in range(10)))
    ds = ed.read_csv(str(tmp_path), override_num_blocks=3)
    refs = ds.materialize().to_arrow_refs()
    assert len(refs) == 3 and [ed.get(r).num_rows for r in refs] == [20, 20, 20]
    assert sorted(r["id"] for r in ds.take_all()) == list(range(60))


@settings(deadline=None, max_examples=60)
@given(sizes=st.lists(st.integers(0, 1000), min_size=1, max_size=40),
       num_groups=st.integers(1, 12), jitter=st.integers(0, 3))
def test_read_tasks_cover_files_in_order_and_balance_equal_sizes(sizes, num_groups, jitter):
    groups = group_contiguous(sizes, num_groups)
    assert [i for g in groups for i in g] == list(range(len(sizes)))  # contiguous, in order
    assert len(groups) == min(num_groups, len(sizes)) and all(groups)
    # Nearly equal sizes (as files of one dataset are) make tasks of nearly equal counts.
    near = [100 + (i * jitter) % 4 for i in range(len(sizes))]
    lengths = [len(g) for g in group_contiguous(near, num_groups)]
    assert max(lengths) - min(lengths) <= 1, lengths


def test_a_read_task_streams_bounded_blocks(tmp_path, fresh_context):
    rows = "".join(f"{i},{'x' * 40}\n" for i in range(20_000))
    _write(tmp_path / "big.csv", "i,pad\n" + rows)  # ~900 KB in one file, one task
    fresh_context.target_max_block_size = 128 * 1024
    fresh_context.target_min_block_size = 32 * 1024
    refs = ed.read_csv(str(tmp_path), read_options=pacsv.ReadOptions(
        block_size=64 * 1024)).materialize().to_arrow_refs()
    blocks = [ed.get(r) for r in refs]
    assert len(blocks) > 4 and all(b.nbytes <= 128 * 1024 for b in blocks)
    assert pa.concat_tables(blocks).column("i").to_pylist() == list(range(20_000))


def test_count_and_schema_of_parquet_come_from_footers(tmp_path, counting_fs):
    rng = np.random.default_rng(1)
    total = 0
    for i in range(3):
        t = pa.table({"id": np.arange(i * 100_000, (i + 1) * 100_000),
                      "x": rng.random(100_000)})
        total += os.path.getsize(_parquet(tmp_path / f"f{i}.parquet", t))
    ds = ed.read_parquet(str(tmp_path), filesystem=counting_fs)
    counting_fs.reset()
    assert ds.count() == 300_000
    assert ds.schema().base_schema == pa.schema([("id", pa.int64()), ("x", pa.float64())])
    assert ds.columns() == ["id", "x"]
    # No task ran (the counter lives in this process) and only footers were read.
    assert counting_fs.counter["bytes"] < total / 10
    assert ds.stats().startswith("No execution yet")


# -- pushdown -----------------------------------------------------------------------------


def _sorted_wide(root, n_files=2, rows=4000):
    rng = np.random.default_rng(2)
    tables = []
    for i in range(n_files):
        ids = np.arange(i * rows, (i + 1) * rows)
        t = pa.table({"id": ids, "a": rng.random(rows), "b": rng.random(rows),
                      "c": [f"pad{j:08d}" for j in ids]})
        _parquet(root / f"f{i}.parquet", t, row_group_size=rows // 4, compression="none")
        tables.append(t)
    return pa.concat_tables(tables).to_pandas()


def test_select_and_filter_push_into_the_parquet_read(tmp_path, fresh_context):
    fresh_context.reads_in_driver = False  # the tasks' reads, told apart from the footers
    frame = _sorted_wide(tmp_path / "d")
    log = str(tmp_path / "reads.log")

    def query():
        ds = ed.read_parquet(str(tmp_path / "d"), filesystem=LoggingFileSystem(log))
        return ds.filter(expr=ed.col("id") >= 7000).select_columns(["id", "a"])

    text = query().explain()
    logical, optimized = text.split("-------- Logical Plan (Optimized) --------")
    assert "Filter(" in logical and "Project(" in logical
    optimized = optimized.split("-------- Physical Plan --------")[0]
    assert "ReadParquet[columns=['id', 'a'], filter=(id >= 7000)]" in optimized
    assert "Filter(" not in optimized and "Project(" not in optimized

    want = frame[frame.id >= 7000][["id", "a"]].to_dict("records")
    assert _rows(query()) == want
    pushed = _log(log, workers_only=True)  # the driver read footers only
    os.remove(log)
    fresh_context.optimizer_enabled = False
    assert _rows(query()) == want
    unpushed = _log(log, workers_only=True)
    # Row-group statistics rule out f0 (ids below 4000) before any task starts...
    assert {os.path.basename(p) for p, _ in pushed} == {"f1.parquet"}
    assert {os.path.basename(p) for p, _ in unpushed} == {"f0.parquet", "f1.parquet"}
    # ...and two of four columns in one of eight row groups is far fewer bytes.
    assert sum(n for _, n in pushed) * 8 < sum(n for _, n in unpushed)


def test_aggregates_and_expressions_read_only_their_columns(tmp_path, fresh_context):
    fresh_context.reads_in_driver = False  # the tasks' reads, told apart from the footers
    frame = _sorted_wide(tmp_path / "d")
    log = str(tmp_path / "reads.log")
    ds = ed.read_parquet(str(tmp_path / "d"), filesystem=LoggingFileSystem(log))
    derived = ds.filter(expr=ed.col("id") >= 2000).with_column("s", ed.col("a") + ed.col("b"))
    summed = derived._with(lo.PartialAggregate(derived._dag, aggs=(ed.Sum("s"), ed.Count())))
    assert "ReadParquet[columns=['a', 'b'], filter=(id >= 2000)]" in summed.explain()
    kept = frame[frame.id >= 2000]
    assert derived.sum("s") == pytest.approx(float((kept.a + kept.b).sum()), rel=1e-12)
    narrow = sum(n for _, n in _log(log, workers_only=True))
    os.remove(log)
    assert derived.count() == len(kept)
    os.remove(log)
    assert _rows(ds.filter(expr=ed.col("id") >= 2000)) == kept.to_dict("records")
    full = sum(n for _, n in _log(log, workers_only=True))
    assert narrow < 0.8 * full  # the string column "c" is never read


def test_partition_filter_reads_only_matching_directories(tmp_path):
    for k in ("a", "b", "c"):
        for n in (1, 2):
            _parquet(tmp_path / "d" / f"k={k}" / f"n={n}" / "part.parquet",
                     pa.table({"x": [ord(k) * 10 + n]}))
    log = str(tmp_path / "reads.log")
    ds = ed.read_parquet(str(tmp_path / "d"), filesystem=LoggingFileSystem(log))
    picked = ds.filter(expr=(ed.col("k") == "b") & (ed.col("n") == "2"))
    assert picked.take_all() == [{"x": ord("b") * 10 + 2, "k": "b", "n": "2"}]
    # Pruned by path alone: no other file is opened, not even for its footer.
    opened = {os.path.relpath(p, tmp_path / "d") for p, _ in _log(log)}
    assert opened == {"k=b/n=2/part.parquet"}
    assert "filter=" in picked.explain() and ds.columns() == ["x", "k", "n"]
    typed = ed.read_parquet(str(tmp_path / "d"),
                            partitioning=Partitioning("hive", field_types={"n": int}))
    assert typed.schema().base_schema.field("n").type == pa.int64()
    assert sorted(r["x"] for r in typed.filter(expr=ed.col("n") > 1).take_all()) == \
        [ord(k) * 10 + 2 for k in "abc"]
    assert ed.read_parquet(str(tmp_path / "d"), partitioning=None).columns() == ["x"]


def test_hive_partitions_of_csv_and_partition_filter(tmp_path):
    from engine.io.partitioning import PathPartitionFilter

    for k in ("a", "b"):
        _write(tmp_path / f"k={k}" / "f.csv", f"x\n{1 if k == 'a' else 2}\n")
    assert _rows(ed.read_csv(str(tmp_path)), "x") == [{"x": 1, "k": "a"}, {"x": 2, "k": "b"}]
    keep_b = PathPartitionFilter.of(lambda values: values["k"] == "b")
    assert ed.read_csv(str(tmp_path), partition_filter=keep_b).take_all() == \
        [{"x": 2, "k": "b"}]


# -- schemas that differ across files ----------------------------------------------------


def test_schemas_are_unified_across_files(tmp_path):
    _parquet(tmp_path / "a.parquet", pa.table({"x": pa.array([1], pa.int32()), "y": ["s"]}))
    _parquet(tmp_path / "b.parquet", pa.table({"x": pa.array([2], pa.int64()), "z": [1.5]}))
    ds = ed.read_parquet(str(tmp_path))
    # Ray 2.60 gives the same schema and rows.
    assert ds.schema().base_schema == pa.schema(
        [("x", pa.int64()), ("y", pa.string()), ("z", pa.float64())])
    assert sorted(ds.take_all(), key=lambda r: r["x"]) == [
        {"x": 1, "y": "s", "z": None}, {"x": 2, "y": None, "z": 1.5}]
    pdf = ds.to_pandas().sort_values("x").reset_index(drop=True)
    pd.testing.assert_frame_equal(pdf, pd.DataFrame(
        {"x": [1, 2], "y": ["s", None], "z": [np.nan, 1.5]}).convert_dtypes(
            dtype_backend="pyarrow"))


def test_incompatible_schemas_name_both_files_and_the_column(tmp_path):
    a = _parquet(tmp_path / "a.parquet", pa.table({"x": [1]}))
    b = _parquet(tmp_path / "b.parquet", pa.table({"x": ["one"]}))
    with pytest.raises(SchemaMismatchError) as info:
        ed.read_parquet(str(tmp_path)).take_all()
    message = str(info.value)
    assert a in message and b in message and "'x'" in message
    assert isinstance(info.value, TypeError)  # Ray raises pyarrow's ArrowTypeError


# -- bad input ----------------------------------------------------------------------------


def _good_and_bad_parquet(root, n_good, n_bad):
    for i in range(n_good):
        _parquet(root / f"good{i}.parquet", pa.table({"id": np.arange(i * 10, i * 10 + 10)}))
    for i in range(n_bad):
        path = _parquet(root / f"bad{i}.parquet", pa.table({"id": np.arange(5)}))
        with open(path, "rb") as f:
            data = f.read()
        _write(path, data[: len(data) // 2])  # truncated: no footer


def test_truncated_parquet_names_the_file(tmp_path):
    _good_and_bad_parquet(tmp_path, 2, 1)
    with pytest.raises(DatasetReadError, match=re.escape(f"{tmp_path / 'bad0.parquet'} (footer)")):
        ed.read_parquet(str(tmp_path)).take_all()


def _corrupt_row_group(path, row_group):
    """Overwrite the start of a row group's first data page (its footer stays valid)."""
    start = pq.read_metadata(path).row_group(row_group).column(0).data_page_offset
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[start:start + 40] = b"\xff" * 40
    _write(path, bytes(data))


def test_corrupt_row_group_names_file_and_row_group(tmp_path):
    path = _parquet(tmp_path / "rg.parquet", pa.table({"x": np.arange(300)}),
                    row_group_size=100, compression="none")
    _corrupt_row_group(path, 1)
    with pytest.raises(DatasetReadError, match=r"rg\.parquet \(row group 1\)"):
        ed.read_parquet(str(tmp_path)).take_all()


def test_bad_csv_and_json_name_file_and_line(tmp_path):
    _write(tmp_path / "ragged" / "r.csv", "a,b\n1,2\n3\n")
    with pytest.raises(DatasetReadError, match=r"r\.csv \(line 3\)"):
        ed.read_csv(str(tmp_path / "ragged")).take_all()
    _write(tmp_path / "latin" / "l.csv", b"name\n" + "caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DatasetReadError, match=r"l\.csv.*\['name'\].*UTF-8"):
        ed.read_csv(str(tmp_path / "latin")).take_all()
    _write(tmp_path / "json" / "j.jsonl", '{"a": 1}\n{"a": \n')
    with pytest.raises(DatasetReadError, match=r"j\.jsonl \(line 2\)"):
        ed.read_json(str(tmp_path / "json")).take_all()


def test_max_errored_blocks_skips_up_to_k_bad_files(tmp_path, fresh_context):
    _good_and_bad_parquet(tmp_path / "pq", 3, 2)
    fresh_context.max_errored_blocks = 2
    ds = ed.read_parquet(str(tmp_path / "pq"))
    assert sorted(r["id"] for r in ds.take_all()) == list(range(30))
    assert "Errored blocks dropped: 2" in ds.stats()
    fresh_context.max_errored_blocks = 1
    with pytest.raises(DatasetReadError, match=r"bad\d\.parquet"):
        ed.read_parquet(str(tmp_path / "pq")).take_all()
    fresh_context.max_errored_blocks = -1
    assert ed.read_parquet(str(tmp_path / "pq")).count() == 30
    # A bad data page (valid footer) in a small file that would share a task with others.
    for i in range(4):
        _parquet(tmp_path / "rg" / f"f{i}.parquet", pa.table({"id": np.arange(i * 10,
                                                                           i * 10 + 10)}),
                 compression="none")
    _corrupt_row_group(str(tmp_path / "rg" / "f1.parquet"), 0)
    fresh_context.max_errored_blocks = 1
    ds = ed.read_parquet(str(tmp_path / "rg"))
    assert sorted(r["id"] for r in ds.take_all()) == [*range(10), *range(20, 40)]
    assert "Errored blocks dropped: 1" in ds.stats()


def test_max_errored_blocks_skips_bad_csv_files_but_keeps_their_neighbours(
        tmp_path, fresh_context):
    # Small files share read tasks; a bad file must not take good ones down with it.
    for i in range(5):
        bad = i in (1, 3)
        _write(tmp_path / f"f{i}.csv", "a,b\n" + ("9\n" if bad else f"{i},{i}\n"))
    fresh_context.max_errored_blocks = 2
    ds = ed.read_csv(str(tmp_path))
    assert sorted(r["a"] for r in ds.take_all()) == [0, 2, 4]
    assert "Errored blocks dropped: 2" in ds.stats()
    _write(tmp_path / "f4.csv", "a,b\n9\n")
    with pytest.raises(DatasetReadError, match=r"f\d\.csv \(line 2\)"):
        ed.read_csv(str(tmp_path)).take_all()
