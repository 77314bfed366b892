"""ParquetDatasource: planning from footers, pushdown, schema unification, bad files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from engine.errors import DatasetReadError
from engine.io.exceptions import SchemaMismatchError
from engine.io.parquet_datasource import ParquetDatasource
from engine.io.partitioning import Partitioning


def _table(start, n, wide=0):
    ids = np.arange(start, start + n)
    cols = {"id": ids, "name": [f"n{i}" for i in ids]}
    for w in range(wide):
        cols[f"w{w}"] = np.random.default_rng(w).random(n)
    return pa.table(cols)


def _write(path, table, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, **kwargs)
    return path


def _partitioned(root):
    for year in (2022, 2023, 2024):
        for part in range(2):
            start = (year - 2022) * 100 + part * 50
            _write(str(root / f"year={year}" / f"p{part}.parquet"), _table(start, 50),
                   row_group_size=10)


def test_round_trip_in_order_with_exact_counts_and_schema(tmp_path, read_all):
    for i in range(3):
        _write(str(tmp_path / f"f{i}.parquet"), _table(i * 100, 100), row_group_size=25)
    ds = ParquetDatasource(str(tmp_path))
    assert ds.get_name() == "Parquet"
    assert ds.num_rows() == 300
    assert ds.schema() == pa.schema([("id", pa.int64()), ("name", pa.string())])
    table = read_all(ds)
    assert table.column("id").to_pylist() == list(range(300))
    assert ds.estimate_inmemory_data_size() > 0


def test_small_files_are_combined_and_big_files_split_by_row_groups(tmp_path, run_tasks):
    for i in range(6):
        _write(str(tmp_path / f"small{i}.parquet"), _table(i * 10, 10))
    _write(str(tmp_path / "zbig.parquet"), _table(1000, 2000), row_group_size=100)
    ds = ParquetDatasource(str(tmp_path))
    tasks = ds.get_read_tasks(8)
    assert len(tasks) == 8
    smalls = {str(tmp_path / f"small{i}.parquet") for i in range(6)}
    assert smalls <= set(tasks[0].metadata.input_files)  # the small files, together
    big = str(tmp_path / "zbig.parquet")
    assert all(t.metadata.input_files == (big,) for t in tasks[1:])  # the big one, split
    assert sum(t.metadata.num_rows for t in tasks) == 2060
    rows = pa.concat_tables(run_tasks(ds, 8)).column("id").to_pylist()
    assert rows == list(range(60)) + list(range(1000, 3000))


def test_auto_parallelism_and_single_task(tmp_path, read_all):
    _write(str(tmp_path / "a.parquet"), _table(0, 100), row_group_size=10)
    ds = ParquetDatasource(str(tmp_path / "a.parquet"))
    assert len(ds.get_read_tasks(-1)) == 8  # read_op_min_num_blocks
    assert len(ds.get_read_tasks(1)) == 1
    assert len(ds.get_read_tasks(1000)) == 10  # never more than row groups
    assert read_all(ds, parallelism=1).num_rows == 100


def test_blocks_respect_target_max_block_size(tmp_path, small_blocks, run_tasks):
    _write(str(tmp_path / "a.parquet"), _table(0, 5000), row_group_size=5000)
    blocks = run_tasks(ParquetDatasource(str(tmp_path)), 1)
    assert len(blocks) > 5
    assert all(b.nbytes <= small_blocks.target_max_block_size for b in blocks)
    assert sum(b.num_rows for b in blocks) == 5000


def test_metadata_comes_from_footers_without_reading_data(tmp_path, counting_fs):
    path = _write(str(tmp_path / "a.parquet"), _table(0, 20000, wide=4))
    ds = ParquetDatasource(path, filesystem=counting_fs)
    assert ds.num_rows() == 20000
    assert ds.schema().names == ["id", "name", "w0", "w1", "w2", "w3"]
    assert counting_fs.counter["bytes"] < os.path.getsize(path) / 10


def test_projection_pushdown_reads_fewer_bytes(tmp_path, counting_fs, read_all):
    _write(str(tmp_path / "a.parquet"), _table(0, 20000, wide=8), compression="none")
    full = ParquetDatasource(str(tmp_path), filesystem=counting_fs)
    assert full.supports_projection_pushdown()
    read_all(full)
    full_bytes = counting_fs.counter["bytes"]
    counting_fs.reset()
    projected = full.apply_projection(["w3", "id"])
    assert projected is not full and full.schema().names[0] == "id"
    assert projected.pushdown_description() == "columns=['w3', 'id']"
    table = read_all(projected)
    assert table.column_names == ["w3", "id"]
    assert counting_fs.counter["bytes"] < full_bytes * 0.35
    with pytest.raises(ValueError, match="nope"):
        full.apply_projection(["nope"]).schema()
    with pytest.raises(ValueError, match="cannot project"):
        projected.apply_projection(["name"])


def test_predicate_pushdown_skips_row_groups_and_filters_exactly(tmp_path, counting_fs,
                                                                 read_all):
    _write(str(tmp_path / "a.parquet"), _table(0, 10000, wide=2), row_group_size=1000,
           compression="none")
    ds = ParquetDatasource(str(tmp_path), filesystem=counting_fs)
    assert ds.supports_predicate_pushdown()
    read_all(ds)
    full_bytes = counting_fs.counter["bytes"]
    counting_fs.reset()
    filtered = ds.apply_predicate((pc.field("id") >= 4500) & (pc.field("id") < 5200))
    assert filtered.num_rows() is None  # not exact any more
    tasks = filtered.get_read_tasks(100)
    assert len(tasks) == 2  # only row groups 4 and 5 can match
    table = read_all(filtered)
    assert table.column("id").to_pylist() == list(range(4500, 5200))
    assert counting_fs.counter["bytes"] < full_bytes * 0.3
    assert "filter=" in filtered.pushdown_description()


def test_predicate_columns_are_read_but_not_returned(tmp_path, read_all):
    _write(str(tmp_path / "a.parquet"), _table(0, 100), row_group_size=10)
    ds = ParquetDatasource(str(tmp_path)).apply_projection(["name"])
    ds = ds.apply_predicate(pc.field("id").isin(list(range(3, 100, 10))))
    table = read_all(ds)
    assert table.column_names == ["name"]
    assert table.column("name").to_pylist() == [f"n{i}" for i in range(3, 100, 10)]
    ds2 = ParquetDatasource(str(tmp_path)).apply_predicate(pc.field("id") < 5).apply_predicate(
        pc.field("id") > 2)
    assert read_all(ds2).column("id").to_pylist() == [3, 4]
    with pytest.raises(ValueError, match="missing_col"):
        ParquetDatasource(str(tmp_path)).apply_predicate(pc.field("missing_col") > 1) \
            .get_read_tasks(1)
    with pytest.raises(TypeError, match="Expression"):
        ParquetDatasource(str(tmp_path)).apply_predicate("id > 3")


def test_filter_in_arrow_parquet_args_is_pushed_down(tmp_path, read_all):
    _write(str(tmp_path / "a.parquet"), _table(0, 100), row_group_size=10)
    ds = ParquetDatasource(str(tmp_path), arrow_parquet_args={"filter": pc.field("id") < 3,
                                                              "batch_size": 2})
    assert read_all(ds).column("id").to_pylist() == [0, 1, 2]
    with pytest.raises(TypeError, match="bogus"):
        ParquetDatasource(str(tmp_path), arrow_parquet_args={"bogus": 1})


def test_hive_partitions_are_columns_and_prune_whole_files(tmp_path, counting_fs, read_all):
    _partitioned(tmp_path)
    ds = ParquetDatasource(str(tmp_path), filesystem=counting_fs)
    assert ds.schema().names == ["id", "name", "year"]
    assert ds.schema().field("year").type == pa.string()
    counting_fs.reset()
    pruned = ds.apply_predicate(pc.field("year") == "2023")
    assert [os.path.basename(os.path.dirname(p)) for p in pruned.input_files()] == \
        ["year=2023", "year=2023"]
    table = read_all(pruned)
    assert sorted(table.column("id").to_pylist()) == list(range(100, 200))
    assert set(table.column("year").to_pylist()) == {"2023"}
    opened = counting_fs.counter["opened"]
    assert opened and all("year=2023" in p for p in opened)  # not even a footer elsewhere


def test_partition_pruning_with_typed_partitions_and_mixed_predicates(tmp_path, read_all):
    _partitioned(tmp_path)
    ds = ParquetDatasource(str(tmp_path),
                           partitioning=Partitioning("hive", field_types={"year": int}))
    assert ds.schema().field("year").type == pa.int64()
    mixed = ds.apply_predicate((pc.field("year") >= 2023)
                               & pc.field("id").isin(list(range(0, 300, 50))))
    # 2 years x 2 files x 5 row groups, of which statistics leave the 4 holding a match
    assert len(mixed.get_read_tasks(100)) == 4
    assert sorted(read_all(mixed).column("id").to_pylist()) == [100, 150, 200, 250]
    either = ds.apply_predicate((pc.field("year") == 2022) | (pc.field("id") == 249))
    assert sorted(read_all(either).column("id").to_pylist()) == [*range(50 * 2), 249]
    none = ds.apply_predicate(pc.field("year") == 1999)
    assert none.input_files() == []
    empty = read_all(none)
    assert empty.num_rows == 0 and empty.schema.names == ["id", "name", "year"]


def test_partitioning_none_and_include_paths(tmp_path, read_all):
    _partitioned(tmp_path)
    plain = ParquetDatasource(str(tmp_path), partitioning=None)
    assert plain.schema().names == ["id", "name"]
    with_paths = ParquetDatasource(str(tmp_path / "year=2024"), include_paths=True)
    table = read_all(with_paths)
    assert table.column_names == ["id", "name", "year", "path"]
    assert set(table.column("path").to_pylist()) == {
        str(tmp_path / "year=2024" / "p0.parquet"), str(tmp_path / "year=2024" / "p1.parquet")}
    only_p1 = with_paths.apply_predicate(pc.field("path").isin(
        [str(tmp_path / "year=2024" / "p1.parquet")]))
    assert len(only_p1.input_files()) == 1
    assert read_all(only_p1).num_rows == 50


def test_projection_of_partition_and_path_columns_only(tmp_path, read_all, run_tasks):
    _partitioned(tmp_path)
    ds = ParquetDatasource(str(tmp_path), include_paths=True).apply_projection(["year"])
    table = read_all(ds)
    assert table.column_names == ["year"] and table.num_rows == 300
    count_only = ParquetDatasource(str(tmp_path)).apply_projection([])
    blocks = run_tasks(count_only)
    assert all(b.num_columns == 0 for b in blocks)
    assert sum(b.num_rows for b in blocks) == 300


def test_schemas_are_unified_across_files(tmp_path, read_all):
    _write(str(tmp_path / "a.parquet"), pa.table({"x": pa.array([1, 2], pa.int32()),
                                                  "only_a": ["p", "q"]}))
    _write(str(tmp_path / "b.parquet"), pa.table({"x": pa.array([3], pa.int64()),
                                                  "only_b": [1.5]}))
    _write(str(tmp_path / "c.parquet"), pa.table({"only_b": pa.array([2], pa.int64()),
                                                  "x": pa.array([4], pa.int16())}))
    ds = ParquetDatasource(str(tmp_path))
    assert ds.schema() == pa.schema([("x", pa.int64()), ("only_a", pa.string()),
                                     ("only_b", pa.float64())])
    table = read_all(ds, parallelism=3)
    assert table.schema == ds.schema()
    assert table.to_pylist() == [
        {"x": 1, "only_a": "p", "only_b": None}, {"x": 2, "only_a": "q", "only_b": None},
        {"x": 3, "only_a": None, "only_b": 1.5}, {"x": 4, "only_a": None, "only_b": 2.0}]


def test_incompatible_schemas_are_rejected_naming_both_files_and_the_column(tmp_path):
    _write(str(tmp_path / "a.parquet"), pa.table({"x": [1], "y": [1]}))
    _write(str(tmp_path / "b.parquet"), pa.table({"x": [2], "y": ["text"]}))
    with pytest.raises(SchemaMismatchError) as info:
        ParquetDatasource(str(tmp_path)).schema()
    message = str(info.value)
    assert "'y'" in message and "a.parquet" in message and "b.parquet" in message
    assert isinstance(info.value, DatasetReadError) and isinstance(info.value, TypeError)
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is SchemaMismatchError and clone.path == info.value.path


def test_explicit_schema_replaces_unification(tmp_path, read_all):
    _write(str(tmp_path / "a.parquet"), pa.table({"x": pa.array([1], pa.int32())}))
    schema = pa.schema([("x", pa.float64()), ("extra", pa.string())])
    ds = ParquetDatasource(str(tmp_path), arrow_parquet_args={"schema": schema})
    assert ds.schema() == schema
    assert read_all(ds).to_pylist() == [{"x": 1.0, "extra": None}]


def test_truncated_file_fails_its_own_task_naming_it(tmp_path, run_tasks):
    good = _write(str(tmp_path / "good.parquet"), _table(0, 10))
    bad = _write(str(tmp_path / "bad.parquet"), _table(0, 10))
    with open(bad, "r+b") as f:
        f.truncate(os.path.getsize(bad) // 2)
    ds = ParquetDatasource(str(tmp_path))
    assert ds.num_rows() is None  # one footer is unreadable
    assert ds.schema().names == ["id", "name"]  # from the readable file
    tasks = [pickle.loads(pickle.dumps(t)) for t in ds.get_read_tasks(2)]
    assert [t.metadata.input_files for t in tasks] == [(bad,), (good,)]
    with pytest.raises(DatasetReadError, match=r"bad\.parquet") as info:
        list(tasks[0]())
    assert info.value.path == bad
    assert sum(b.num_rows for b in tasks[1]()) == 10  # the executor can skip the bad task


def test_corrupt_row_group_names_the_file_and_row_group(tmp_path):
    path = _write(str(tmp_path / "c.parquet"), _table(0, 1000), row_group_size=500)
    md = pq.read_metadata(path)
    chunk = md.row_group(1).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(b"\xff" * 64)
    ds = ParquetDatasource(path)
    with pytest.raises(DatasetReadError, match=r"c\.parquet \(row group 1\)"):
        for task in ds.get_read_tasks(1):
            list(task())


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    [task] = ParquetDatasource(str(path)).get_read_tasks(1)
    with pytest.raises(DatasetReadError, match=r"fake\.parquet"):
        list(task())


def test_default_extension_filter_and_missing_paths(tmp_path):
    _write(str(tmp_path / "a.parquet"), _table(0, 3))
    (tmp_path / "notes.txt").write_text("not parquet")
    assert len(ParquetDatasource(str(tmp_path)).input_files()) == 1
    with pytest.raises(FileNotFoundError, match=r"missing\.parquet"):
        ParquetDatasource(str(tmp_path / "missing.parquet"))
    ds = ParquetDatasource([str(tmp_path / "missing.parquet"), str(tmp_path / "a.parquet")],
                           ignore_missing_paths=True)
    assert ds.num_rows() == 3


def test_tensors_round_trip_and_tensor_column_schema(tmp_path, read_all):
    images = np.arange(4 * 2 * 3, dtype=np.float32).reshape(4, 2, 3)
    table = pa.table({"t": pa.FixedShapeTensorArray.from_numpy_ndarray(images),
                      "raw": [img.tobytes() for img in images]})
    _write(str(tmp_path / "t.parquet"), table)
    ds = ParquetDatasource(str(tmp_path),
                           tensor_column_schema={"raw": (np.float32, (2, 3))})
    out = read_all(ds)
    assert out.schema == ds.schema()
    np.testing.assert_array_equal(out.column("t").combine_chunks().to_numpy_ndarray(), images)
    np.testing.assert_array_equal(out.column("raw").combine_chunks().to_numpy_ndarray(),
                                  images)


def test_shuffle_files_keeps_every_row(tmp_path, read_all):
    for i in range(5):
        _write(str(tmp_path / f"{i}.parquet"), _table(i * 10, 10))
    ds = ParquetDatasource(str(tmp_path), shuffle="files")
    assert sorted(read_all(ds).column("id").to_pylist()) == list(range(50))
    with pytest.raises(ValueError, match="shuffle"):
        ParquetDatasource(str(tmp_path), shuffle="rows")


def test_many_files_fetch_footers_in_parallel(tmp_path, read_all):
    for i in range(40):
        _write(str(tmp_path / f"{i:02}.parquet"), _table(i, 1))
    ds = ParquetDatasource(str(tmp_path))
    assert ds.num_rows() == 40
    assert read_all(ds, parallelism=7).column("id").to_pylist() == list(range(40))


def test_predicates_that_do_not_fit_the_columns_fail_at_planning(tmp_path):
    _partitioned(tmp_path)
    ds = ParquetDatasource(str(tmp_path))
    with pytest.raises(TypeError, match="does not apply"):
        ds.apply_predicate(pc.field("year") == 2023).get_read_tasks(1)  # year is a string
    with pytest.raises(TypeError, match="bool"):
        ds.apply_predicate(pc.field("id") + 1).schema()


def test_a_read_task_decodes_on_its_own_thread_unless_told_otherwise(tmp_path, read_all,
                                                                    monkeypatch):
    _write(str(tmp_path / "a.parquet"), _table(0, 100), row_group_size=10)
    seen = []
    iter_batches = pq.ParquetFile.iter_batches

    def recording(self, *args, **kwargs):
        seen.append(kwargs.get("use_threads"))
        return iter_batches(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", recording)
    assert read_all(ParquetDatasource(str(tmp_path))).num_rows == 100
    assert seen and set(seen) == {False}  # a task per core already: no pool hand-off
    seen.clear()
    threaded = ParquetDatasource(str(tmp_path), arrow_parquet_args={"use_threads": True})
    assert read_all(threaded).num_rows == 100
    assert seen and set(seen) == {True}
