"""``read_json`` as Ray Data 2.60 reads: ``lines=True`` (arrays as columns "0", "1", ...,
nested values whose types change from row to row kept as Python objects),
``read_options.block_size`` that pyarrow cannot use, ``target_max_block_size=None``,
``os.PathLike`` paths for reads and writes, and snappy-compressed files.

These tests start workers. None depends on timing.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import pyarrow.json as pajson
import pytest

import engine as ed


def _write_lines(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(params=[128 << 20, None], ids=["default", "unlimited"])
def max_block_size(request: pytest.FixtureRequest, fresh_context: ed.DataContext) -> None:
    fresh_context.target_max_block_size = request.param


def test_lines_true_reads_arrays_as_columns(tmp_path: Path, max_block_size: None) -> None:
    path = _write_lines(tmp_path / "a.jsonl", [["ray", "rocks", "hello"], ["oh", "no"]])
    rows = ed.read_json(path, lines=True).take_all()
    assert rows == [{"0": "ray", "1": "rocks", "2": "hello"}, {"0": "oh", "1": "no", "2": None}]


def test_lines_true_keeps_mixed_nested_types(tmp_path: Path, max_block_size: None) -> None:
    data = [{"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": {"hello": "world"}}}]
    ds = ed.read_json(_write_lines(tmp_path / "m.jsonl", data), lines=True)
    assert ds.take_all() == data
    assert ds.map(lambda r: {"c": str(r["b"]["c"])}).take_all() == \
        [{"c": "2"}, {"c": "{'hello': 'world'}"}]


def test_lines_true_with_objects_and_many_chunks(tmp_path: Path,
                                                 fresh_context: ed.DataContext) -> None:
    fresh_context.target_max_block_size = 64  # a chunk of a row or two
    data = [{"id": i, "s": f"v{i}"} for i in range(50)]
    ds = ed.read_json(_write_lines(tmp_path / "o.jsonl", data), lines=True)
    assert sorted(ds.take_all(), key=lambda r: r["id"]) == data


def test_lines_true_refuses_arrow_json_args(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "a.jsonl", [{"a": 1}])
    with pytest.raises(ValueError, match="not supported when `lines=True`"):
        ed.read_json(path, lines=True, read_options=pajson.ReadOptions())


def test_unusable_block_size_falls_back_to_whole_file_parse(tmp_path: Path) -> None:
    lines = _write_lines(tmp_path / "l.json", [{"one": 1}, {"one": 2}])
    with pytest.raises(json.JSONDecodeError, match="Extra data"):
        ed.read_json(lines, read_options=pajson.ReadOptions(block_size=0)).take_all()
    array = tmp_path / "arr.json"
    array.write_text(json.dumps([{"one": [1]}, {"one": [1, 2]}]))
    ds = ed.read_json(array, read_options=pajson.ReadOptions(block_size=0))
    assert ds.take_all() == [{"one": [1]}, {"one": [1, 2]}]


def test_malformed_json_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match=r"bad\.json"):
        ed.read_json(bad).take_all()


def test_reads_with_unlimited_block_size(tmp_path: Path, fresh_context: ed.DataContext) -> None:
    fresh_context.target_max_block_size = None
    gz = tmp_path / "x.json.gz"
    with gzip.open(gz, "wt") as f:
        f.write(json.dumps({"a": 1}) + "\n")
    empty = tmp_path / "e.json.gz"
    with gzip.open(empty, "wt"):
        pass
    assert ed.read_json([gz, empty]).take_all() == [{"a": 1}]
    assert ed.range(100, override_num_blocks=4).map_batches(lambda b: b).count() == 100
    (tmp_path / "p").mkdir()
    ed.range(10).write_parquet(tmp_path / "p")
    assert ed.read_parquet(tmp_path / "p").count() == 10


def test_writes_take_pathlike(tmp_path: Path) -> None:
    ed.range(100, override_num_blocks=20).write_json(tmp_path / "j", min_rows_per_file=50)
    counts = [len((tmp_path / "j" / f).read_text().splitlines())
              for f in os.listdir(tmp_path / "j")]
    assert sorted(counts) == [50, 50]
    ed.range_tensor(3).write_numpy(tmp_path / "n", column="data")
    assert ed.read_numpy(tmp_path / "n").count() == 3
    ed.from_items([{"a": 1}]).write_csv(tmp_path / "c")
    assert ed.read_csv(tmp_path / "c").take_all() == [{"a": 1}]
    with pytest.raises(TypeError, match=r"os\.PathLike"):
        ed.range(1).write_json(5)  # type: ignore[arg-type]


def test_snappy_files(tmp_path: Path) -> None:
    snappy = pytest.importorskip("snappy")
    payload = b"hello, world"
    for name in ("plain", "inferred.snappy"):
        with open(tmp_path / name, "wb") as f:
            snappy.stream_compress(io.BytesIO(payload), f)
    explicit = ed.read_binary_files(tmp_path / "plain",
                                    arrow_open_stream_args={"compression": "snappy"})
    assert [r["bytes"] for r in explicit.take_all()] == [payload]
    inferred = ed.read_binary_files(tmp_path / "inferred.snappy")
    assert [r["bytes"] for r in inferred.take_all()] == [payload]
    text = tmp_path / "t.jsonl.snappy"
    with open(text, "wb") as f:
        snappy.stream_compress(io.BytesIO(b'{"a": 1}\n{"a": 2}\n'), f)
    assert ed.read_json(text, file_extensions=None).take_all() == [{"a": 1}, {"a": 2}]
