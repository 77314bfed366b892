"""Datasinks: file names, save modes, partitions, row limits and atomic commits."""

from __future__ import annotations

import gzip
import os
import pickle
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.io.csv_datasink import CSVDatasink
from engine.io.csv_datasource import CSVDatasource
from engine.io.exceptions import DestinationExistsError
from engine.io.file_datasink import WrittenFiles
from engine.io.filename_provider import FilenameProvider
from engine.io.interfaces import TaskContext
from engine.io.json_datasink import JSONDatasink
from engine.io.json_datasource import JSONDatasource
from engine.io.numpy_datasink import NumpyDatasink
from engine.io.numpy_datasource import NumpyDatasource
from engine.io.parquet_datasink import ParquetDatasink
from engine.io.parquet_datasource import ParquetDatasource
from engine.io.save_mode import SaveMode
from engine.io.write_task import collect_write_results, run_write_task, write_blocks


def _table(start, n):
    ids = np.arange(start, start + n)
    return pa.table({"id": ids, "g": ids % 2, "s": [f"v{i}" for i in ids]})


def _failing(blocks, after):
    """Yield ``blocks``, then raise (a task that dies midway)."""
    yield from blocks
    raise RuntimeError(f"boom after {after}")


def _ids(table):
    return sorted(table.column("id").to_pylist())


# -- round trips and names ---------------------------------------------------------------


def test_parquet_round_trip_and_ray_style_names(tmp_path, read_all, listing):
    sink = ParquetDatasink(str(tmp_path / "out"))
    result = write_blocks(sink, [[_table(0, 5), _table(5, 5)], [_table(10, 3)]])
    assert result.num_rows == 13 and result.size_bytes > 0
    assert listing(tmp_path / "out") == [f"{sink.write_uuid}_000000-0.parquet",
                                         f"{sink.write_uuid}_000001-0.parquet"]
    assert _ids(read_all(ParquetDatasource(str(tmp_path / "out")))) == list(range(13))
    assert pq.read_metadata(tmp_path / "out" / listing(tmp_path / "out")[0]).num_rows == 10


def test_csv_json_numpy_round_trips_and_names(tmp_path, read_all, listing):
    data = [[_table(0, 4)], [_table(4, 4)]]
    csv_sink = CSVDatasink(str(tmp_path / "csv"), dataset_uuid="ds1")
    write_blocks(csv_sink, data)
    assert listing(tmp_path / "csv") == [f"ds1_{csv_sink.write_uuid}_000000.csv",
                                         f"ds1_{csv_sink.write_uuid}_000001.csv"]
    first = (tmp_path / "csv" / listing(tmp_path / "csv")[0]).read_text()
    assert first.splitlines()[:2] == ['"id","g","s"', '0,0,"v0"']
    assert _ids(read_all(CSVDatasource(str(tmp_path / "csv")))) == list(range(8))

    write_blocks(JSONDatasink(str(tmp_path / "json")), data)
    name = listing(tmp_path / "json")[0]
    assert name.endswith("_000000.json")
    assert (tmp_path / "json" / name).read_text().splitlines()[0] == \
        '{"id":0,"g":0,"s":"v0"}'
    assert _ids(read_all(JSONDatasource(str(tmp_path / "json")))) == list(range(8))

    tensors = pa.table({"x": pa.FixedShapeTensorArray.from_numpy_ndarray(
        np.arange(24.0).reshape(4, 2, 3))})
    write_blocks(NumpyDatasink(str(tmp_path / "npy"), "x"), [[tensors.slice(0, 2),
                                                              tensors.slice(2)]])
    [npy] = listing(tmp_path / "npy")
    np.testing.assert_array_equal(np.load(tmp_path / "npy" / npy),
                                  np.arange(24.0).reshape(4, 2, 3))
    back = read_all(NumpyDatasource(str(tmp_path / "npy")))
    assert back.column("data").type.shape == [2, 3]
    with pytest.raises(ValueError, match="missing"):
        write_blocks(NumpyDatasink(str(tmp_path / "npy2"), "missing"), [[tensors]])


def test_json_array_layout_through_pandas_args(tmp_path, read_all, listing):
    sink = JSONDatasink(str(tmp_path), pandas_json_args={"lines": False})
    write_blocks(sink, [[_table(0, 2), _table(2, 2)]])
    text = (tmp_path / listing(tmp_path)[0]).read_text()
    assert text.startswith("[{")
    assert _ids(read_all(JSONDatasource(str(tmp_path)))) == [0, 1, 2, 3]


# -- partitions and row limits -----------------------------------------------------------


def test_partition_cols_write_hive_directories(tmp_path, read_all, listing):
    table = pa.table({"id": [1, 2, 3, 4], "k": ["a", "b/c", None, "a"], "n": [1, 1, 2, 2]})
    sink = ParquetDatasink(str(tmp_path), partition_cols=["k", "n"])
    write_blocks(sink, [[table]])
    dirs = sorted({os.path.dirname(p) for p in listing(tmp_path)})
    assert dirs == ["k=__HIVE_DEFAULT_PARTITION__/n=2", "k=a/n=1", "k=a/n=2", "k=b%2Fc/n=1"]
    one = pq.read_table(tmp_path / "k=a" / "n=1" / f"{sink.write_uuid}_000000-0.parquet")
    assert one.column_names == ["id"]
    back = read_all(ParquetDatasource(str(tmp_path)))
    assert sorted(back.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "k": "a", "n": "1"}, {"id": 2, "k": "b/c", "n": "1"},
        {"id": 3, "k": None, "n": "2"}, {"id": 4, "k": "a", "n": "2"}]
    with pytest.raises(ValueError, match="nope"):
        write_blocks(CSVDatasink(str(tmp_path / "x"), partition_cols=["nope"]), [[table]])


def test_max_rows_per_file_splits_a_task_into_numbered_files(tmp_path, read_all, listing):
    sink = ParquetDatasink(str(tmp_path / "pq"), max_rows_per_file=4)
    write_blocks(sink, [[_table(0, 3), _table(3, 7)]])
    names = listing(tmp_path / "pq")
    assert [n.split("_")[-1] for n in names] == ["000000-0.parquet", "000000-1.parquet",
                                                 "000000-2.parquet"]
    assert [pq.read_metadata(tmp_path / "pq" / n).num_rows for n in names] == [4, 4, 2]
    csv_sink = CSVDatasink(str(tmp_path / "csv"), max_rows_per_file=5, min_rows_per_file=2)
    assert csv_sink.min_rows_per_write == 2
    write_blocks(csv_sink, [[_table(0, 10)]])
    assert [n.split("_")[-1] for n in listing(tmp_path / "csv")] == ["000000-0.csv",
                                                                    "000000-1.csv"]
    assert _ids(read_all(CSVDatasource(str(tmp_path / "csv")))) == list(range(10))
    with pytest.raises(ValueError, match="max_rows_per_file"):
        CSVDatasink(str(tmp_path), max_rows_per_file=0)
    with pytest.raises(ValueError, match="must not exceed"):
        CSVDatasink(str(tmp_path), min_rows_per_file=5, max_rows_per_file=2)


def test_blocks_with_a_new_schema_start_a_new_file(tmp_path, read_all, listing):
    first = pa.table({"id": [1], "x": pa.nulls(1, pa.null())})
    second = pa.table({"id": [2], "x": ["text"]})
    write_blocks(CSVDatasink(str(tmp_path)), [[first, second]])
    assert [n.split("_")[-1] for n in listing(tmp_path)] == ["000000-1.csv", "000000.csv"]
    same_cols = pa.table({"x": pa.array([None], pa.string()), "id": [3]})
    write_blocks(ParquetDatasink(str(tmp_path / "pq")),
                 [[pa.table({"id": [1], "x": ["a"]}), same_cols]])
    assert len(listing(tmp_path / "pq")) == 1  # reordered columns are cast, not split


# -- filename providers --------------------------------------------------------------------


class _Prefixed(FilenameProvider):
    def get_filename_for_task(self, write_uuid, task_index):
        return f"part-{write_uuid[:8]}-{task_index}.csv"


class _BlockOnly:
    def get_filename_for_block(self, block, write_uuid, task_index, block_index):
        return f"blk-{task_index}-{block_index}-{block.num_rows}.csv"


def test_filename_providers(tmp_path, listing):
    sink = CSVDatasink(str(tmp_path / "a"), filename_provider=_Prefixed())
    write_blocks(sink, [[_table(0, 1)], [_table(1, 1)]])
    assert listing(tmp_path / "a") == [f"part-{sink.write_uuid[:8]}-0.csv",
                                       f"part-{sink.write_uuid[:8]}-1.csv"]
    write_blocks(CSVDatasink(str(tmp_path / "b"), filename_provider=_BlockOnly()),
                 [[_table(0, 3)]])
    assert listing(tmp_path / "b") == ["blk-0-0-3.csv"]


def test_parquet_append_requires_the_write_id_in_names(tmp_path, listing):
    class Fixed(FilenameProvider):
        def get_filename_for_task(self, write_uuid, task_index):
            return f"fixed-{task_index}.parquet"

    with pytest.raises(ValueError, match="write id"):
        write_blocks(ParquetDatasink(str(tmp_path), filename_provider=Fixed()), [[_table(0, 1)]])
    write_blocks(ParquetDatasink(str(tmp_path), filename_provider=Fixed(), mode="overwrite"),
                 [[_table(0, 1)]])
    assert listing(tmp_path) == ["fixed-0-0.parquet"]


# -- save modes ------------------------------------------------------------------------------


def test_mode_error_and_ignore(tmp_path, listing):
    out = str(tmp_path / "out")
    os.makedirs(out)
    write_blocks(CSVDatasink(out, mode="error"), [[_table(0, 1)]])  # empty dir: no data yet
    with pytest.raises(DestinationExistsError, match="out") as info:
        write_blocks(CSVDatasink(out, mode=SaveMode.ERROR), [[_table(0, 1)]])
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileExistsError)
    with pytest.raises(ValueError):
        write_blocks(CSVDatasink(out, mode="create"), [[_table(0, 1)]])
    before = listing(out)
    result = write_blocks(CSVDatasink(out, mode="ignore"), [[_table(0, 5)]])
    assert listing(out) == before and result.num_rows == 0
    write_blocks(CSVDatasink(str(tmp_path / "fresh"), mode="ignore"), [[_table(0, 1)]])
    assert len(listing(tmp_path / "fresh")) == 1
    with pytest.raises(ValueError, match="upsert"):
        CSVDatasink(out, mode="upsert")
    with pytest.raises(ValueError, match="mode"):
        CSVDatasink(out, mode="replace")


def test_mode_append_adds_files(tmp_path, read_all, listing):
    write_blocks(ParquetDatasink(str(tmp_path)), [[_table(0, 2)]])
    write_blocks(ParquetDatasink(str(tmp_path), mode="append"), [[_table(2, 2)]])
    assert len(listing(tmp_path)) == 2
    assert _ids(read_all(ParquetDatasource(str(tmp_path)))) == [0, 1, 2, 3]


def test_mode_overwrite_keeps_old_files_until_the_write_completes(tmp_path, read_all, listing):
    write_blocks(ParquetDatasink(str(tmp_path), partition_cols=["g"]), [[_table(0, 4)]])
    old = listing(tmp_path)
    sink = ParquetDatasink(str(tmp_path), mode="overwrite")
    sink.on_write_start()
    returns = [run_write_task(sink, [_table(100, 2)], TaskContext(task_idx=i)) for i in range(2)]
    assert set(old) <= set(listing(tmp_path))  # all old files still there mid-write
    sink.on_write_complete(collect_write_results(returns))
    assert listing(tmp_path) == [f"{sink.write_uuid}_00000{i}-0.parquet" for i in range(2)]
    assert not any(d.startswith("g=") for d in os.listdir(tmp_path))  # emptied dirs removed
    assert _ids(read_all(ParquetDatasource(str(tmp_path)))) == [100, 100, 101, 101]


def test_failed_overwrite_restores_the_destination(tmp_path, listing):
    write_blocks(CSVDatasink(str(tmp_path)), [[_table(0, 4)]])
    old = listing(tmp_path)
    sink = CSVDatasink(str(tmp_path), mode="overwrite")
    with pytest.raises(RuntimeError, match="boom"):
        write_blocks(sink, [[_table(10, 2)], _failing([_table(20, 2)], 1)])
    assert listing(tmp_path) == old  # task 0's committed file removed by on_write_failed


# -- atomicity -----------------------------------------------------------------------------


@pytest.mark.parametrize("make_sink", [
    lambda p: ParquetDatasink(p),
    lambda p: ParquetDatasink(p, partition_cols=["g"], max_rows_per_file=1),
    lambda p: CSVDatasink(p, max_rows_per_file=2),
    lambda p: JSONDatasink(p),
    lambda p: NumpyDatasink(p, "id"),
], ids=["parquet", "parquet-partitioned", "csv-rolling", "json", "numpy"])
def test_a_task_failing_midway_leaves_no_file(tmp_path, listing, make_sink):
    sink = make_sink(str(tmp_path))
    sink.on_write_start()
    with pytest.raises(RuntimeError, match="boom"):
        sink.write(_failing([_table(0, 3), _table(3, 3)], 2), TaskContext(task_idx=0))
    assert listing(tmp_path) == []  # neither final nor temporary files


def test_a_retried_task_replaces_its_own_files(tmp_path, read_all, listing):
    sink = ParquetDatasink(str(tmp_path), max_rows_per_file=3)
    sink.on_write_start()
    first = run_write_task(sink, [_table(0, 5)], TaskContext(task_idx=7))
    again = run_write_task(sink, [_table(0, 5)], TaskContext(task_idx=7, attempt=1))
    assert first.write_return.paths == again.write_return.paths
    sink.on_write_complete(collect_write_results([again]))
    assert len(listing(tmp_path)) == 2
    assert _ids(read_all(ParquetDatasource(str(tmp_path)))) == list(range(5))


def test_retry_after_a_failed_attempt(tmp_path, read_all, listing):
    sink = CSVDatasink(str(tmp_path))
    sink.on_write_start()
    with pytest.raises(RuntimeError):
        run_write_task(sink, _failing([_table(0, 4)], 1), TaskContext(task_idx=0))
    ok = run_write_task(sink, [_table(0, 4)], TaskContext(task_idx=0, attempt=1))
    sink.on_write_complete(collect_write_results([ok]))
    assert len(listing(tmp_path)) == 1
    assert _ids(read_all(CSVDatasource(str(tmp_path)))) == [0, 1, 2, 3]


def test_temporaries_of_killed_tasks_are_hidden_and_cleaned_up(tmp_path, read_all, listing):
    sink = CSVDatasink(str(tmp_path))
    sink.on_write_start()
    ok = run_write_task(sink, [_table(0, 2)], TaskContext(task_idx=0))
    orphan = tmp_path / f".{sink.write_uuid}_000001.csv.deadbeef.tmp"
    orphan.write_text("id\n99\n")  # what a SIGKILLed task leaves behind
    assert _ids(read_all(CSVDatasource(str(tmp_path)))) == [0, 1]  # readers skip it
    sink.on_write_complete(collect_write_results([ok]))
    assert not orphan.exists() and len(listing(tmp_path)) == 1


def test_write_ids_come_from_the_task_context(tmp_path, listing):
    sink = CSVDatasink(str(tmp_path))
    sink.on_write_start()
    ret = sink.write([_table(0, 1)], TaskContext(task_idx=3, kwargs={"write_uuid": "abc"}))
    assert isinstance(ret, WrittenFiles) and ret.num_rows == 1
    assert listing(tmp_path) == ["abc_000003.csv"]


# -- arguments ------------------------------------------------------------------------------


def test_parquet_writer_arguments(tmp_path, listing):
    sink = ParquetDatasink(str(tmp_path), arrow_parquet_args={"compression": "gzip",
                                                              "row_group_size": 4},
                           arrow_parquet_args_fn=lambda: {"use_dictionary": False})
    write_blocks(sink, [[_table(0, 2), _table(2, 2), _table(4, 6)]])
    md = pq.read_metadata(tmp_path / listing(tmp_path)[0])
    assert md.num_rows == 10 and md.num_row_groups == 3
    assert md.row_group(0).column(0).compression == "GZIP"
    zstd = ParquetDatasink(str(tmp_path / "z"), open_stream_args={"compression": "zstd"})
    write_blocks(zstd, [[_table(0, 2)]])
    md = pq.read_metadata(tmp_path / "z" / listing(tmp_path / "z")[0])
    assert md.row_group(0).column(0).compression == "ZSTD"
    assert ParquetDatasink(str(tmp_path), min_bytes_per_file=10).min_bytes_per_write == 10
    with pytest.raises(ValueError, match="min_bytes_per_file"):
        ParquetDatasink(str(tmp_path), min_bytes_per_file=10, max_rows_per_file=3)
    with pytest.raises(ValueError, match="partitioning_flavor"):
        ParquetDatasink(str(tmp_path), arrow_parquet_args={"partitioning_flavor": "filename"})


def test_compressed_csv_keeps_ray_names_and_reads_back(tmp_path, read_all, listing):
    write_blocks(CSVDatasink(str(tmp_path), open_stream_args={"compression": "gzip"}),
                 [[_table(0, 3)]])
    [name] = listing(tmp_path)
    assert name.endswith(".csv")
    assert gzip.decompress((tmp_path / name).read_bytes()).startswith(b'"id"')
    ds = CSVDatasource(str(tmp_path), arrow_open_stream_args={"compression": "gzip"})
    assert _ids(read_all(ds)) == [0, 1, 2]


def test_empty_write_leaves_no_directory(tmp_path):
    out = tmp_path / "never"
    result = write_blocks(ParquetDatasink(str(out)), [[], [_table(0, 0)]])
    assert result.num_rows == 0 and not out.exists()


def test_memory_filesystem_writes(memory_root, read_all):
    write_blocks(ParquetDatasink(memory_root, partition_cols=["g"]), [[_table(0, 6)]])
    ds = ParquetDatasource(memory_root)
    assert all(re.search(r"/g=[01]/", p) for p in ds.input_files())
    assert _ids(read_all(ds)) == list(range(6))


def test_datasinks_pickle_with_their_write_id(tmp_path):
    sink = ParquetDatasink(str(tmp_path), partition_cols=["g"])
    clone = pickle.loads(pickle.dumps(sink))
    assert clone.write_uuid == sink.write_uuid and clone.partition_cols == ["g"]
