"""End-to-end writes through the public API (``Dataset.write_*``) on the real cluster.

The datasinks have unit tests of their own (tests/io/test_writes.py, run in one process);
these run write tasks on worker processes: Ray's file names, round trips of every format,
partitions, row limits, save modes, compression, a custom ``Datasink`` (its calls in order,
with their arguments), and atomicity when a write fails or its worker is SIGKILLed
mid-write (a marker file makes the kill happen once, so the retry succeeds).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import engine as ed
from engine.io import CSVDatasink, Datasink, FilenameProvider, WriteResult
from engine.io.exceptions import DestinationExistsError

_UUID = r"[0-9a-f]{12}_[0-9a-f]{32}"


def _files(root) -> list[str]:
    """Every file below ``root`` (hidden ones included), relative and sorted."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, n), root) for n in names]
    return sorted(out)


def _ids(ds) -> list[int]:
    return sorted(r["id"] for r in ds.take_all())


def _source(n=20, blocks=2):
    return ed.range(n, override_num_blocks=blocks).map(
        lambda r: {"id": r["id"], "g": r["id"] % 3, "s": f"v{r['id']}"})


# -- round trips and Ray's names ----------------------------------------------------------


def test_every_format_round_trips_with_ray_file_names(tmp_path):
    ds = _source()
    expected = [{"id": i, "g": i % 3, "s": f"v{i}"} for i in range(20)]
    ds.write_parquet(str(tmp_path / "pq"))
    ds.write_csv(str(tmp_path / "csv"))
    ds.write_json(str(tmp_path / "json"))
    # Ray 2.60: {dataset uuid}_{write uuid}_{task:06}-{file}.parquet, and no file index
    # for the other formats.
    for fmt, suffix in (("pq", r"-0\.parquet"), ("csv", r"\.csv"), ("json", r"\.json")):
        names = _files(tmp_path / fmt)
        assert len(names) == 2 and all(re.fullmatch(f"{_UUID}_00000[01]{suffix}", n)
                                       for n in names), names
    # One dataset, one dataset uuid; every write has its own write uuid.
    prefixes = {n.split("_")[0] for f in ("pq", "csv", "json") for n in _files(tmp_path / f)}
    assert len(prefixes) == 1
    assert len({n.split("_")[1] for f in ("pq", "csv", "json")
                for n in _files(tmp_path / f)}) == 3
    for reader, fmt in ((ed.read_parquet, "pq"), (ed.read_csv, "csv"), (ed.read_json, "json")):
        assert sorted(reader(str(tmp_path / fmt)).take_all(), key=lambda r: r["id"]) == \
            expected, fmt
    first_json = (tmp_path / "json" / _files(tmp_path / "json")[0]).read_text()
    assert json.loads(first_json.splitlines()[0]) == expected[0]  # JSON Lines, as in Ray


def test_write_numpy_round_trips_tensors(tmp_path):
    arr = np.arange(60, dtype=np.int32).reshape(10, 2, 3)
    ed.from_numpy(arr).repartition(2).write_numpy(str(tmp_path), column="data")
    names = _files(tmp_path)
    assert len(names) == 2 and all(re.fullmatch(f"{_UUID}_00000[01]\\.npy", n) for n in names)
    back = np.concatenate([np.load(tmp_path / n) for n in names])
    np.testing.assert_array_equal(back[np.argsort(back[:, 0, 0])], arr)
    batch = ed.read_numpy(str(tmp_path)).take_batch(20)
    np.testing.assert_array_equal(np.sort(batch["data"], axis=0), arr)
    with pytest.raises(ValueError, match="missing"):
        ed.from_numpy(arr).write_numpy(str(tmp_path / "x"), column="missing")


def test_partition_cols_write_hive_directories_that_read_back(tmp_path):
    ds = _source(12, 3)
    ds.write_parquet(str(tmp_path / "pq"), partition_cols=["g"])
    ds.write_csv(str(tmp_path / "csv"), partition_cols=["g"])
    for fmt in ("pq", "csv"):
        assert sorted({os.path.dirname(n) for n in _files(tmp_path / fmt)}) == \
            ["g=0", "g=1", "g=2"]
    # Partition columns leave the files and come back as strings (Ray's hive reading).
    one = _files(tmp_path / "pq")[0]
    assert pq.read_table(tmp_path / "pq" / one).column_names == ["id", "s"]
    want = [{"id": i, "s": f"v{i}", "g": str(i % 3)} for i in range(12)]
    assert sorted(ed.read_parquet(str(tmp_path / "pq")).take_all(),
                  key=lambda r: r["id"]) == want
    assert sorted(ed.read_csv(str(tmp_path / "csv")).take_all(), key=lambda r: r["id"]) == want
    picked = ed.read_parquet(str(tmp_path / "pq")).filter(expr=ed.col("g") == "1")
    assert _ids(picked) == [1, 4, 7, 10]


def test_min_and_max_rows_per_file(tmp_path):
    ed.range(100, override_num_blocks=10).write_parquet(str(tmp_path / "min"),
                                                       min_rows_per_file=50)
    rows = [pq.read_metadata(tmp_path / "min" / n).num_rows for n in _files(tmp_path / "min")]
    assert sum(rows) == 100 and min(rows) >= 50
    ed.range(100, override_num_blocks=2).write_csv(str(tmp_path / "max"), max_rows_per_file=15)
    names = _files(tmp_path / "max")
    counts = [pacsv.read_csv(tmp_path / "max" / n).num_rows for n in names]
    assert sum(counts) == 100 and max(counts) == 15
    assert all(re.fullmatch(f"{_UUID}_00000[01]-[0-3]\\.csv", n) for n in names), names
    assert _ids(ed.read_csv(str(tmp_path / "max"))) == list(range(100))
    with pytest.raises(ValueError, match="max_rows_per_file"):
        ed.range(3).write_json(str(tmp_path / "bad"), max_rows_per_file=0)


def test_overwrite_of_a_partitioned_directory_removes_stale_partitions(tmp_path):
    out = str(tmp_path / "out")
    _source(12, 2).write_parquet(out, partition_cols=["g"])
    assert sorted({os.path.dirname(n) for n in _files(out)}) == ["g=0", "g=1", "g=2"]
    _source(12, 2).filter(expr=ed.col("g") == 0).write_parquet(out, partition_cols=["g"],
                                                             mode="overwrite")
    assert sorted({os.path.dirname(n) for n in _files(out)}) == ["g=0"]
    assert _ids(ed.read_parquet(out)) == [0, 3, 6, 9]


def test_tensor_columns_round_trip_through_parquet(tmp_path):
    ed.range_tensor(6, shape=(2, 3), override_num_blocks=2).write_parquet(str(tmp_path))
    batch = ed.read_parquet(str(tmp_path)).take_batch(10)
    order = np.argsort(batch["data"][:, 0, 0])
    np.testing.assert_array_equal(batch["data"][order],
                                  np.arange(6).repeat(6).reshape(6, 2, 3))


class _PartNames(FilenameProvider):
    def get_filename_for_task(self, write_uuid, task_index):
        return f"part-{task_index:03}.csv"


def test_filename_provider(tmp_path):
    ed.range(6, override_num_blocks=3).write_csv(str(tmp_path), filename_provider=_PartNames())
    assert _files(tmp_path) == ["part-000.csv", "part-001.csv", "part-002.csv"]
    assert [pacsv.read_csv(tmp_path / n).column("id").to_pylist() for n in _files(tmp_path)] \
        == [[0, 1], [2, 3], [4, 5]]


def test_compression(tmp_path):
    ed.range(10).write_parquet(str(tmp_path / "pq"), compression="gzip")
    [name] = _files(tmp_path / "pq")
    assert pq.read_metadata(tmp_path / "pq" / name).row_group(0).column(0).compression == "GZIP"
    ed.range(10).write_csv(str(tmp_path / "csv"), arrow_open_stream_args={"compression": "gzip"})
    [name] = _files(tmp_path / "csv")
    assert gzip.decompress((tmp_path / "csv" / name).read_bytes()).startswith(b'"id"\n0\n')
    back = ed.read_csv(str(tmp_path / "csv"), arrow_open_stream_args={"compression": "gzip"})
    assert _ids(back) == list(range(10))


# -- save modes ------------------------------------------------------------------------------


def test_save_modes(tmp_path):
    out = str(tmp_path / "out")
    ed.range(3).write_parquet(out)
    first = _files(out)
    ed.range(3, override_num_blocks=1).write_parquet(out)  # "append", Ray's default
    assert len(_files(out)) == 2 and set(first) < set(_files(out))
    with pytest.raises(DestinationExistsError, match=re.escape(out)) as info:
        ed.range(3).write_parquet(out, mode="error")
    assert isinstance(info.value, ValueError)  # what Ray raises
    ed.range(5).write_parquet(out, mode=ed.SaveMode.IGNORE)
    assert len(_files(out)) == 2
    ed.range(4, override_num_blocks=1).write_parquet(out, mode="overwrite")
    [only] = _files(out)
    assert only not in first and _ids(ed.read_parquet(out)) == [0, 1, 2, 3]
    # Ray 2.60 accepts an unknown mode and appends; a typo should not pass silently.
    with pytest.raises(ValueError, match="mode must be one of"):
        ed.range(1).write_parquet(out, mode="overwirte")
    ed.range(2).write_csv(str(tmp_path / "fresh"), mode="error")
    assert _ids(ed.read_csv(str(tmp_path / "fresh"))) == [0, 1]


def _fail_on_seven(batch):
    if 7 in batch["id"]:
        raise ValueError("bad row 7")
    return batch


def test_failed_write_leaves_no_file_and_overwrite_keeps_the_old_ones(tmp_path):
    out = str(tmp_path / "out")
    with pytest.raises(ValueError, match="bad row 7"):
        ed.range(20, override_num_blocks=4).map_batches(_fail_on_seven).write_csv(out)
    assert not os.path.exists(out) or _files(out) == []
    ed.range(3).write_csv(out)
    old = _files(out)
    with pytest.raises(ValueError, match="bad row 7"):
        ed.range(20, override_num_blocks=4).map_batches(_fail_on_seven).write_csv(
            out, mode="overwrite")
    assert _files(out) == old  # the old data stays until a new write completes
    assert _ids(ed.read_csv(out)) == [0, 1, 2]


def _zero_after_seven_failed(batch, marks):
    """Task 1 leaves a mark and fails; task 0 waits for the mark, then goes on to write
    (and commit) its file after its sibling's failure: a handshake, not a race."""
    if 7 in batch["id"]:
        open(os.path.join(marks, "failing"), "w").close()
    elif 0 in batch["id"]:
        deadline = time.monotonic() + 60  # a bound, so a broken handshake cannot hang
        while not os.path.exists(os.path.join(marks, "failing")) and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        open(os.path.join(marks, "zero-writes"), "w").close()
    return _fail_on_seven(batch)


def test_failed_write_cleans_up_after_its_running_tasks_have_stopped(tmp_path):
    # Task 0 is still running when task 1 fails; the file it commits after the failure was
    # seen must be cleaned up too, before write_parquet returns.
    out, marks = str(tmp_path / "out"), str(tmp_path / "marks")
    os.mkdir(marks)
    ds = ed.range(10, override_num_blocks=2).map_batches(_zero_after_seven_failed,
                                                          fn_kwargs={"marks": marks})
    with pytest.raises(ValueError, match="bad row 7"):
        ds.write_parquet(out)
    assert os.path.exists(os.path.join(marks, "zero-writes"))  # task 0 went on to write
    assert not os.path.exists(out) or _files(out) == []


def test_empty_dataset_writes_nothing(tmp_path):
    ed.range(10).filter(expr=ed.col("id") > 100).write_parquet(str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()  # as in Ray


# -- custom datasinks ------------------------------------------------------------------------


class _RecordingSink(Datasink):
    """Appends every call, with the process it ran in, to a JSON-lines log."""

    def __init__(self, log_path, fail_on=None):
        self.log_path = log_path
        self.fail_on = fail_on

    def _record(self, **entry):
        with open(self.log_path, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")

    def on_write_start(self, schema=None):
        self._record(call="start", schema=None if schema is None else schema.names)

    def write(self, blocks, ctx):
        ids = [i for b in blocks for i in b.column("id").to_pylist()]
        if self.fail_on is not None and self.fail_on in ids:
            raise KeyError(f"cannot store id {self.fail_on}")
        self._record(call="write", task=ctx.task_idx, ids=ids)
        return {"task": ctx.task_idx, "n": len(ids)}

    def on_write_complete(self, write_result):
        self._record(call="complete", type=type(write_result).__name__,
                     num_rows=write_result.num_rows, size_bytes=write_result.size_bytes,
                     returns=write_result.write_returns)

    def on_write_failed(self, error):
        self._record(call="failed", type=type(error).__name__, message=str(error),
                     is_key_error=isinstance(error, KeyError))


def _calls(log_path):
    with open(log_path) as f:
        return [json.loads(line) for line in f]


def test_custom_datasink_calls_in_order_with_their_arguments(tmp_path):
    log = str(tmp_path / "log")
    pq.write_table(pa.table({"id": np.arange(30)}), tmp_path / "in.parquet", row_group_size=10)
    ds = ed.read_parquet(str(tmp_path / "in.parquet"), override_num_blocks=3)
    assert ds.write_datasink(_RecordingSink(log)) is None  # Ray returns None too
    calls = _calls(log)
    assert [c["call"] for c in calls] == ["start", "write", "write", "write", "complete"]
    start, *writes, complete = calls
    assert start["pid"] == os.getpid() and complete["pid"] == os.getpid()
    assert start["schema"] == ["id"]  # known from the footers, as Ray's first bundle has it
    assert all(w["pid"] != os.getpid() for w in writes)  # writes run on the workers
    assert sorted(w["task"] for w in writes) == [0, 1, 2]
    assert sorted(i for w in writes for i in w["ids"]) == list(range(30))
    assert complete["type"] == WriteResult.__name__
    pf = pq.ParquetFile(tmp_path / "in.parquet")
    assert complete["num_rows"] == 30
    assert complete["size_bytes"] == sum(pf.read_row_group(i).nbytes for i in range(3))
    assert sorted(complete["returns"], key=lambda r: r["task"]) == [
        {"task": t, "n": 10} for t in range(3)]


def test_custom_datasink_failure_reaches_on_write_failed_and_the_user(tmp_path):
    log = str(tmp_path / "log")
    with pytest.raises(KeyError, match="cannot store id 13") as info:
        ed.range(30, override_num_blocks=3).write_datasink(_RecordingSink(log, fail_on=13))
    assert isinstance(info.value, ed.UserCodeError)
    calls = _calls(log)
    assert calls[0]["call"] == "start" and calls[-1]["call"] == "failed"
    assert "complete" not in [c["call"] for c in calls]
    failed = calls[-1]
    assert failed["is_key_error"] and "cannot store id 13" in failed["message"]
    assert failed["message"] == str(info.value)  # the error the user sees
    with pytest.raises(TypeError, match="Datasink"):
        ed.range(3).write_datasink(object())


# -- atomic writes under SIGKILL ---------------------------------------------------------------


def _kill_once(marker, when_id):
    """A UDF that SIGKILLs its own worker the first time it sees ``when_id``."""

    def udf(batch):
        if when_id in batch["id"] and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        batch["g"] = batch["id"] % 2
        return batch

    return udf


@pytest.mark.slow
def test_worker_killed_mid_write_leaves_one_complete_file_per_output(tmp_path):
    marker = str(tmp_path / "killed")
    out = tmp_path / "out"
    # Task 1 writes ids 20..39 in batches of 10; it dies after its files for 20..29 are
    # written (still under temporary names), and its retry writes them again.
    ds = ed.range(40, override_num_blocks=2).map_batches(_kill_once(marker, 30), batch_size=10)
    ds.write_csv(str(out), max_rows_per_file=5, partition_cols=["g"])
    assert os.path.exists(marker)
    names = _files(out)
    assert not [n for n in names if os.path.basename(n).startswith(".")]  # no temporaries
    # Two tasks x two partitions x 20/2/5 = two files each, exactly once.
    assert len(names) == 8 and all(re.fullmatch(f"g=[01]/{_UUID}_00000[01]-[01]\\.csv", n)
                                   for n in names), names
    tables = [pacsv.read_csv(out / n) for n in names]
    assert all(t.num_rows == 5 for t in tables)
    assert sorted(i for t in tables for i in t.column("id").to_pylist()) == list(range(40))


class _KillAfterCommitSink(CSVDatasink):
    """Commits its files, then dies once before reporting: the retry must replace them."""

    def __init__(self, path, marker, **kwargs):
        super().__init__(path, **kwargs)
        self.marker = marker

    def write(self, blocks, ctx):
        result = super().write(blocks, ctx)
        if ctx.task_idx == 1 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return result


@pytest.mark.slow
def test_worker_killed_after_renaming_leaves_no_duplicate(tmp_path):
    marker = str(tmp_path / "killed")
    out = str(tmp_path / "out")
    ed.range(30, override_num_blocks=3).write_csv(out)  # old data, replaced below
    old = _files(out)
    new = ed.range(30, override_num_blocks=3).map(lambda r: {"id": r["id"] + 100})
    new.write_datasink(_KillAfterCommitSink(out, marker, mode="overwrite"))
    assert os.path.exists(marker)
    names = _files(out)
    assert len(names) == 3 and not set(names) & set(old)
    assert _ids(ed.read_csv(out)) == list(range(100, 130))


def test_csv_of_nested_columns_is_an_error_naming_them(tmp_path):
    ds = ed.from_items([{"id": 1, "tags": [1, 2], "meta": {"k": "v"}}])
    with pytest.raises(TypeError, match=r"'tags' \(list<item: int64>\).*'meta'"):
        ds.write_csv(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []
    ds.write_json(str(tmp_path / "json"))  # JSON holds them
    assert ed.read_json(str(tmp_path / "json")).take_all() == [
        {"id": 1, "tags": [1, 2], "meta": {"k": "v"}}]


class _OlderStyleSink(Datasink):
    """A sink written for older Ray Data: ``on_write_start`` takes no schema, and it keeps
    a filesystem in ``_fs`` (a name the engine's own file sinks use too)."""

    def __init__(self, log_path):
        import fsspec

        self._fs = fsspec.filesystem("file")
        self.log_path = log_path

    def on_write_start(self):
        with self._fs.open(self.log_path, "a") as f:
            f.write("start\n")

    def write(self, blocks, ctx):
        return sum(b.num_rows for b in blocks)

    def on_write_complete(self, write_result):
        with self._fs.open(self.log_path, "a") as f:
            f.write(f"complete {sum(write_result.write_returns)}\n")


def test_custom_datasink_without_a_schema_argument_or_with_its_own_fs(tmp_path):
    log = str(tmp_path / "log")
    ed.range(25, override_num_blocks=5).write_datasink(_OlderStyleSink(log))
    with open(log) as f:
        assert f.read().splitlines() == ["start", "complete 25"]
