"""Reads and writes against a real S3 API (a moto server on loopback) through s3fs."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from engine.io.csv_datasink import CSVDatasink
from engine.io.csv_datasource import CSVDatasource
from engine.io.filesystem import resolve_filesystem
from engine.io.interfaces import TaskContext
from engine.io.parquet_datasink import ParquetDatasink
from engine.io.parquet_datasource import ParquetDatasource
from engine.io.text_datasource import TextDatasource
from engine.io.write_task import collect_write_results, run_write_task, write_blocks


def _table(start, n):
    ids = np.arange(start, start + n)
    return pa.table({"id": ids, "g": ids % 3})


def _keys(fs, prefix):
    fs.invalidate_cache()
    return sorted(p.split("/", 1)[1] for p in fs.find(prefix))


@pytest.fixture
def prefix(s3, request):
    path = f"{s3['bucket']}/{request.node.name}"
    yield path
    s3["fs"].invalidate_cache()
    if s3["fs"].exists(path):
        s3["fs"].rm(path, recursive=True)


def test_s3_urls_resolve_to_an_object_store_handle(s3):
    paths, handle = resolve_filesystem("s3://some-bucket/a/b.parquet")
    assert paths == ["some-bucket/a/b.parquet"] and handle.object_store
    assert handle.display(paths[0]) == "s3://some-bucket/a/b.parquet"
    _, explicit = resolve_filesystem("s3://x/y", filesystem=s3["fs"])
    assert explicit.object_store and explicit.fsspec_fs is s3["fs"]


def test_parquet_round_trip_with_partitions(s3, prefix, read_all):
    fs = s3["fs"]
    sink = ParquetDatasink(f"s3://{prefix}/out", filesystem=fs, partition_cols=["g"])
    write_blocks(sink, [[_table(0, 30)], [_table(30, 30)]])
    keys = _keys(fs, prefix)
    assert len(keys) == 6 and all(k.startswith("test_parquet_round_trip") for k in keys)
    assert not any(os.path.basename(k).startswith(".") for k in keys)  # no temporaries
    ds = ParquetDatasource(f"s3://{prefix}/out", include_paths=True)  # s3fs from the URL
    assert ds.num_rows() == 60
    table = read_all(ds)
    assert sorted(table.column("id").to_pylist()) == list(range(60))
    assert table.column("path")[0].as_py().startswith(f"{prefix}/out/g=")
    pruned = ds.apply_predicate((pc.field("g") == "1") & (pc.field("id") < 10))
    assert len(pruned.input_files()) == 1  # partition g=1, and statistics: ids 0..29
    assert sorted(read_all(pruned).column("id").to_pylist()) == [1, 4, 7]


def test_csv_and_text_on_s3(s3, prefix, read_all):
    fs = s3["fs"]
    write_blocks(CSVDatasink(f"s3://{prefix}/csv", filesystem=fs), [[_table(0, 5)]])
    assert sorted(read_all(CSVDatasource(f"s3://{prefix}/csv", filesystem=fs))
                  .column("id").to_pylist()) == list(range(5))
    fs.pipe(f"{prefix}/text/a.txt", b"alpha\nbeta\n")
    assert read_all(TextDatasource(f"s3://{prefix}/text")).column("text").to_pylist() == \
        ["alpha", "beta"]
    with pytest.raises(FileNotFoundError, match=f"s3://{prefix}/nope"):
        TextDatasource(f"s3://{prefix}/nope")


def test_failed_task_leaves_no_object_and_no_pending_upload(s3, prefix):
    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing", default_block_size=5 * 2**20,
                           client_kwargs={"endpoint_url": s3["endpoint"]}, skip_instance_cache=True)
    rng = np.random.default_rng(0)
    big = pa.table({"x": rng.random(1_000_000)})  # ~8 MB: a multipart upload

    def blocks():
        yield big
        yield big
        raise RuntimeError("task dies mid-upload")

    sink = ParquetDatasink(f"s3://{prefix}/out", filesystem=fs,
                           arrow_parquet_args={"compression": "none"})
    sink.on_write_start()
    with pytest.raises(RuntimeError, match="mid-upload"):
        sink.write(blocks(), TaskContext(task_idx=0))
    assert _keys(s3["fs"], prefix) == []
    uploads = s3["fs"].call_s3("list_multipart_uploads", Bucket=s3["bucket"])
    assert not uploads.get("Uploads")


def test_overwrite_and_retry_on_s3(s3, prefix, read_all):
    fs = s3["fs"]
    out = f"s3://{prefix}/out"
    write_blocks(CSVDatasink(out, filesystem=fs), [[_table(0, 3)], [_table(3, 3)]])
    sink = CSVDatasink(out, filesystem=fs, mode="overwrite")
    sink.on_write_start()
    first = run_write_task(sink, [_table(100, 2)], TaskContext(task_idx=0))
    retry = run_write_task(sink, [_table(100, 2)], TaskContext(task_idx=0, attempt=1))
    assert first.write_return.paths == retry.write_return.paths
    assert len(_keys(fs, prefix)) == 3  # old files survive until the commit
    sink.on_write_complete(collect_write_results([retry]))
    assert _keys(fs, prefix) == [
        p.split("/", 1)[1] for p in retry.write_return.paths]
    assert read_all(CSVDatasource(out, filesystem=fs)).column("id").to_pylist() == [100, 101]


# -- the public API on the cluster: read and write tasks run in worker processes ------------
# The workers were started before this module set the AWS variables, so every call passes
# the s3fs filesystem explicitly (it pickles with its endpoint and keys).


def test_public_parquet_write_and_read_with_pushdown(s3, prefix):
    import engine as ed

    fs = s3["fs"]
    out = f"s3://{prefix}/pq"
    ds = ed.range(60, override_num_blocks=3).map(lambda r: {"id": r["id"], "g": r["id"] % 3})
    ds.write_parquet(out, filesystem=fs, partition_cols=["g"])
    keys = _keys(fs, prefix)
    assert len(keys) == 9 and {k.split("/")[2] for k in keys} == {"g=0", "g=1", "g=2"}
    back = ed.read_parquet(out, filesystem=fs)
    assert back.count() == 60
    assert sorted(r["id"] for r in back.take_all()) == list(range(60))
    picked = back.filter(expr=(ed.col("g") == "1") & (ed.col("id") < 10))
    assert "filter=" in picked.explain()
    assert sorted(picked.take_all(), key=lambda r: r["id"]) == [
        {"id": i, "g": "1"} for i in (1, 4, 7)]


def test_public_csv_json_text_on_s3_and_overwrite(s3, prefix):
    import engine as ed

    fs = s3["fs"]
    ed.range(5).write_csv(f"s3://{prefix}/csv", filesystem=fs)
    ed.range(5).write_json(f"s3://{prefix}/json", filesystem=fs)
    for reader, name in ((ed.read_csv, "csv"), (ed.read_json, "json")):
        ds = reader(f"s3://{prefix}/{name}", filesystem=fs, include_paths=True)
        rows = sorted(ds.take_all(), key=lambda r: r["id"])
        assert [r["id"] for r in rows] == list(range(5))
        assert rows[0]["path"].startswith(f"{prefix}/{name}/")  # Ray's paths: bucket/key
    fs.pipe(f"{prefix}/text/a.txt", b"alpha\nbeta\n")
    assert ed.read_text(f"s3://{prefix}/text", filesystem=fs).take_all() == [
        {"text": "alpha"}, {"text": "beta"}]
    assert ed.read_binary_files(f"s3://{prefix}/text", filesystem=fs).take_all() == [
        {"bytes": b"alpha\nbeta\n"}]
    old = _keys(fs, f"{prefix}/csv")
    ed.from_items([{"id": 10}, {"id": 11}]).write_csv(f"s3://{prefix}/csv", filesystem=fs,
                                                      mode="overwrite")
    new = _keys(fs, f"{prefix}/csv")
    assert len(new) == 1 and not set(new) & set(old)
    assert ed.read_csv(f"s3://{prefix}/csv", filesystem=fs).take_all() == [
        {"id": 10}, {"id": 11}]
    with pytest.raises(FileNotFoundError, match=f"s3://{prefix}/missing"):
        ed.read_parquet(f"s3://{prefix}/missing", filesystem=fs)
