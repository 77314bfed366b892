"""CSV, JSON, text, binary, NumPy and image datasources: columns, streaming, bad input."""

from __future__ import annotations

import gzip
import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pytest

from engine.errors import DatasetReadError
from engine.io.binary_datasource import BinaryDatasource
from engine.io.csv_datasource import CSVDatasource
from engine.io.json_datasource import JSONDatasource
from engine.io.numpy_datasource import NumpyDatasource
from engine.io.text_datasource import TextDatasource


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return str(path)


# -- CSV ---------------------------------------------------------------------------------


def test_csv_reads_files_in_order_with_types(tmp_path, read_all):
    _write(tmp_path / "a.csv", "x,y\n1,a\n2,b\n")
    _write(tmp_path / "b.csv", "x,y\n3,c\n")
    ds = CSVDatasource(str(tmp_path), include_paths=True)
    assert ds.get_name() == "CSV" and ds.schema() is None
    table = read_all(ds)
    assert table.column_names == ["x", "y", "path"]
    assert table.column("x").to_pylist() == [1, 2, 3]
    assert table.schema.field("x").type == pa.int64()


def test_csv_passes_arrow_options_through(tmp_path, read_all):
    _write(tmp_path / "a.csv", "skip me\nx;y\n1;2\n")
    ds = CSVDatasource(str(tmp_path), arrow_csv_args={
        "read_options": pacsv.ReadOptions(skip_rows=1),
        "parse_options": pacsv.ParseOptions(delimiter=";"),
        "convert_options": pacsv.ConvertOptions(column_types={"y": pa.string()})})
    assert read_all(ds).to_pylist() == [{"x": 1, "y": "2"}]
    with pytest.raises(TypeError, match="unsupported"):
        CSVDatasource(str(tmp_path), arrow_csv_args={"delimiter": ";"})
    with pytest.raises(TypeError, match="arrow_open_stream_args"):
        CSVDatasource(str(tmp_path), arrow_open_stream_args={"mode": "rb"})


def test_csv_compressed_by_extension_or_open_stream_args(tmp_path, read_all):
    _write(tmp_path / "a.csv.gz", gzip.compress(b"x\n1\n2\n"))
    assert read_all(CSVDatasource(str(tmp_path / "a.csv.gz"))).num_rows == 2
    _write(tmp_path / "b.csv", gzip.compress(b"x\n5\n"))
    ds = CSVDatasource(str(tmp_path / "b.csv"), arrow_open_stream_args={"compression": "gzip"})
    assert read_all(ds).to_pylist() == [{"x": 5}]


def test_csv_streams_large_files_in_bounded_blocks(tmp_path, small_blocks, run_tasks):
    rows = "".join(f"{i},{'v' * 20}\n" for i in range(5000))
    _write(tmp_path / "big.csv", "i,v\n" + rows)
    ds = CSVDatasource(str(tmp_path), arrow_csv_args={
        "read_options": pacsv.ReadOptions(block_size=16384, use_threads=False)})
    blocks = run_tasks(ds, 1)
    assert len(blocks) > 10
    assert all(b.nbytes <= small_blocks.target_max_block_size for b in blocks)
    assert pa.concat_tables(blocks).column("i").to_pylist() == list(range(5000))


def test_ragged_csv_names_the_file_and_line(tmp_path, run_tasks):
    _write(tmp_path / "ragged.csv", "a,b\n1,2\n3,4\n5\n6,7\n")
    with pytest.raises(DatasetReadError, match=r"ragged\.csv \(line 4\)") as info:
        run_tasks(CSVDatasource(str(tmp_path)))
    assert info.value.path == str(tmp_path / "ragged.csv")


def test_non_utf8_csv_is_an_error_naming_file_and_column(tmp_path, run_tasks, read_all):
    _write(tmp_path / "latin.csv", b"name,n\n" + "caf\u00e9,1\n".encode("latin-1"))
    with pytest.raises(DatasetReadError, match=r"latin\.csv.*\['name'\].*UTF-8"):
        run_tasks(CSVDatasource(str(tmp_path)))
    ds = CSVDatasource(str(tmp_path), arrow_csv_args={
        "read_options": pacsv.ReadOptions(encoding="latin-1")})
    assert read_all(ds).column("name").to_pylist() == ["caf\u00e9"]


def test_empty_csv_file_yields_no_rows(tmp_path, run_tasks):
    _write(tmp_path / "empty.csv", b"")
    assert all(b.num_rows == 0 for b in run_tasks(CSVDatasource(str(tmp_path))))


def test_failing_file_fails_its_task_only(tmp_path):
    _write(tmp_path / "a_good.csv", "x\n1\n")
    _write(tmp_path / "b_bad.csv", "x,y\n1\n")
    tasks = CSVDatasource(str(tmp_path)).get_read_tasks(2)
    assert sum(b.num_rows for b in tasks[0]()) == 1
    with pytest.raises(DatasetReadError, match=r"b_bad\.csv"):
        list(tasks[1]())


# -- JSON --------------------------------------------------------------------------------


def test_json_lines_and_json_arrays_are_detected(tmp_path, read_all):
    _write(tmp_path / "a.jsonl", '{"x": 1, "s": "a"}\n\n{"x": 2, "s": "b"}\n')
    _write(tmp_path / "b.json", json.dumps([{"x": 3, "s": "c"}, {"x": 4, "s": "d"}], indent=2))
    _write(tmp_path / "c.json", json.dumps({"x": 5, "s": "e"}, indent=2))
    _write(tmp_path / "ignored.txt", "not json")
    ds = JSONDatasource(str(tmp_path))
    table = read_all(ds, parallelism=1)
    assert table.column("x").to_pylist() == [1, 2, 3, 4, 5]
    assert JSONDatasource(str(tmp_path / "a.jsonl"), lines=True).input_files()


def test_json_streams_in_pieces_with_consistent_types(tmp_path, monkeypatch, run_tasks):
    import engine.io.json_datasource as module

    monkeypatch.setattr(module, "_PIECE_BYTES", 256)
    lines = [json.dumps({"i": i, "v": None if i < 20 else f"s{i}"}) for i in range(100)]
    _write(tmp_path / "a.jsonl", "\n".join(lines) + "\n")
    blocks = run_tasks(JSONDatasource(str(tmp_path)), 1)
    table = pa.concat_tables(blocks, promote_options="permissive")
    assert table.column("i").to_pylist() == list(range(100))
    assert table.column("v").to_pylist()[19:21] == [None, "s20"]


def test_bad_json_line_names_the_file_and_line(tmp_path, run_tasks):
    _write(tmp_path / "bad.jsonl", '{"x": 1}\n{"x": 2}\n{"x": \n{"x": 4}\n')
    with pytest.raises(DatasetReadError, match=r"bad\.jsonl \(line 3\)"):
        run_tasks(JSONDatasource(str(tmp_path)))
    _write(tmp_path / "arr" / "bad.json", '[{"x": 1},\n {"x": }]')
    with pytest.raises(DatasetReadError, match=r"bad\.json \(line 2\)"):
        run_tasks(JSONDatasource(str(tmp_path / "arr")))
    _write(tmp_path / "scalars" / "s.jsonl", '{"x": 1}\n[1, 2]\n')
    with pytest.raises(DatasetReadError, match=r"line 2.*object"):
        run_tasks(JSONDatasource(str(tmp_path / "scalars")))


def test_json_compressed_and_parse_options(tmp_path, read_all):
    _write(tmp_path / "a.jsonl.gz", gzip.compress(b'{"x": 1, "y": 2}\n'))
    schema = pa.schema([("x", pa.float64())])
    ds = JSONDatasource(str(tmp_path), arrow_json_args={
        "parse_options": pajson.ParseOptions(explicit_schema=schema,
                                             unexpected_field_behavior="ignore")})
    assert read_all(ds).to_pylist() == [{"x": 1.0}]


# -- text --------------------------------------------------------------------------------


def test_text_lines(tmp_path, read_all):
    _write(tmp_path / "a.txt", "one\r\ntwo\n\n   \nthree")
    assert read_all(TextDatasource(str(tmp_path))).column("text").to_pylist() == \
        ["one", "two", "three"]
    kept = read_all(TextDatasource(str(tmp_path), drop_empty_lines=False))
    assert kept.column("text").to_pylist() == ["one", "two", "", "   ", "three"]


def test_text_streams_across_chunk_boundaries(tmp_path, monkeypatch, read_all):
    import engine.io.text_datasource as module

    monkeypatch.setattr(module, "_CHUNK_BYTES", 7)
    text = "héllo wörld\r\nsecond line\rthird\n\u00e9\u00e9\u00e9\u00e9\n"
    _write(tmp_path / "a.txt", text)
    assert read_all(TextDatasource(str(tmp_path))).column("text").to_pylist() == \
        text.splitlines()


def test_text_encoding_and_decoding_errors(tmp_path, read_all, run_tasks):
    _write(tmp_path / "latin" / "a.txt", "caf\u00e9\nok\n".encode("latin-1"))
    ds = TextDatasource(str(tmp_path / "latin"), encoding="latin-1")
    assert read_all(ds).column("text").to_pylist() == ["caf\u00e9", "ok"]
    _write(tmp_path / "bad" / "b.txt", b"fine\nalso fine\nbroken \xff here\n")
    with pytest.raises(DatasetReadError, match=r"b\.txt \(line 3\)"):
        run_tasks(TextDatasource(str(tmp_path / "bad")))
    with pytest.raises(LookupError):
        TextDatasource(str(tmp_path / "bad"), encoding="no-such-codec")


# -- binary ------------------------------------------------------------------------------


def test_binary_one_row_per_file(tmp_path, read_all):
    _write(tmp_path / "a.bin", b"\x00\x01")
    _write(tmp_path / "b.bin", b"")
    ds = BinaryDatasource(str(tmp_path), include_paths=True)
    assert ds.num_rows() == 2
    assert ds.schema() == pa.schema([("bytes", pa.binary()), ("path", pa.string())])
    table = read_all(ds)
    assert table.to_pylist() == [{"bytes": b"\x00\x01", "path": str(tmp_path / "a.bin")},
                                 {"bytes": b"", "path": str(tmp_path / "b.bin")}]
    assert [t.metadata.num_rows for t in ds.get_read_tasks(2)] == [1, 1]


# -- NumPy -------------------------------------------------------------------------------


def test_numpy_rows_along_the_first_axis(tmp_path, read_all, small_blocks, run_tasks):
    np.save(tmp_path / "a.npy", np.arange(6).reshape(3, 2))
    np.save(tmp_path / "b.npy", np.arange(3, dtype=np.float32))
    table = read_all(NumpyDatasource(str(tmp_path / "a.npy"), include_paths=True))
    assert table.column_names == ["data", "path"]
    np.testing.assert_array_equal(table.column("data").combine_chunks().to_numpy_ndarray(),
                                  np.arange(6).reshape(3, 2))
    assert read_all(NumpyDatasource(str(tmp_path / "b.npy"))).column("data").to_pylist() == \
        [0.0, 1.0, 2.0]
    np.save(tmp_path / "big.npy", np.ones((100, 8, 8)))
    blocks = run_tasks(NumpyDatasource(str(tmp_path / "big.npy")), 1)
    assert len(blocks) > 1 and sum(b.num_rows for b in blocks) == 100
    assert all(b.nbytes <= small_blocks.target_max_block_size for b in blocks)


def test_numpy_fortran_order_objects_and_truncation(tmp_path, read_all, run_tasks):
    np.save(tmp_path / "f.npy", np.asfortranarray(np.arange(6).reshape(2, 3)))
    table = read_all(NumpyDatasource(str(tmp_path / "f.npy")))
    np.testing.assert_array_equal(table.column("data").combine_chunks().to_numpy_ndarray(),
                                  np.arange(6).reshape(2, 3))
    np.save(tmp_path / "o.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetReadError, match=r"o\.npy"):
        run_tasks(NumpyDatasource(str(tmp_path / "o.npy")))
    np.save(tmp_path / "t.npy", np.arange(100))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-40])
    with pytest.raises(DatasetReadError, match=r"t\.npy.*truncated"):
        run_tasks(NumpyDatasource(str(tmp_path / "t.npy")))


# -- images ------------------------------------------------------------------------------


def test_images_with_size_and_mode(tmp_path, read_all):
    from PIL import Image

    from engine.io.image_datasource import ImageDatasource

    for i, size in enumerate([(4, 3), (4, 3), (5, 2)]):
        Image.new("RGB", size, color=(i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("skip")
    same = read_all(ImageDatasource(str(tmp_path), size=(2, 2), mode="L", include_paths=True))
    assert same.column_names == ["image", "path"]
    images = same.column("image").combine_chunks().to_numpy_ndarray()
    assert images.shape == (3, 2, 2) and images.dtype == np.uint8
    natural = ImageDatasource(str(tmp_path)).get_read_tasks(1)[0]
    blocks = list(natural())
    assert [b.column("image").type.shape for b in blocks] == [[3, 4, 3], [2, 5, 3]]
    with pytest.raises(ValueError, match="size"):
        ImageDatasource(str(tmp_path), size=(0, 2))


def test_images_without_pillow_raise_a_clear_import_error(tmp_path, monkeypatch):
    from engine.io.image_datasource import ImageDatasource

    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        ImageDatasource(str(tmp_path))


def test_corrupt_image_names_the_file(tmp_path, run_tasks):
    from engine.io.image_datasource import ImageDatasource

    _write(tmp_path / "broken.png", b"\x89PNG not really")
    with pytest.raises(DatasetReadError, match=r"broken\.png"):
        run_tasks(ImageDatasource(str(tmp_path)))
