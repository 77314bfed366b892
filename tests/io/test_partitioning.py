"""Partition values parsed from paths, for every file format."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from engine.io.csv_datasource import CSVDatasource
from engine.io.partitioning import (
    Partitioning,
    PathPartitionFilter,
    PathPartitionParser,
    typed_value,
)
from engine.io.text_datasource import TextDatasource


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(content)


def test_hive_parser_decodes_values_and_nulls():
    parse = PathPartitionParser(Partitioning("hive"))
    assert parse("/data/year=2024/city=New%20York/part.csv") == \
        {"year": "2024", "city": "New York"}
    assert parse("/data/k=__HIVE_DEFAULT_PARTITION__/x") == {"k": None}
    assert parse("/data/plain/x.csv") == {}


def test_hive_parser_respects_base_dir_and_field_names():
    parse = PathPartitionParser(Partitioning("hive", base_dir="/data/a=1"))
    assert parse("/data/a=1/b=2/x") == {"b": "2"}
    assert parse("/other/b=2/x") == {}
    strict = PathPartitionParser(Partitioning("hive", field_names=["b", "a"]))
    with pytest.raises(ValueError, match="field_names"):
        strict("/d/a=1/b=2/x")


def test_directory_style():
    with pytest.raises(ValueError, match="field_names"):
        Partitioning("dir")
    parse = PathPartitionParser(Partitioning("dir", base_dir="/root",
                                             field_names=["animal", "size"]))
    assert parse("/root/dog/big/1.png") == {"animal": "dog", "size": "big"}
    assert parse("/root/1.png") == {}
    with pytest.raises(ValueError, match="field_names"):
        parse("/root/dog/1.png")
    loose = PathPartitionParser(Partitioning("dir", field_names=["animal"]))
    assert loose("/anywhere/deep/cat/1.png") == {"animal": "cat"}


def test_bad_partitioning_arguments():
    with pytest.raises(ValueError, match="style"):
        Partitioning("flat")
    with pytest.raises(ValueError, match="field_types"):
        Partitioning("hive", field_types={"a": list})
    assert typed_value("true", pa.bool_()) is True
    assert typed_value("7", pa.int64()) == 7
    with pytest.raises(ValueError):
        typed_value("maybe", pa.bool_())


def test_csv_reads_hive_partitions_by_default_as_strings(tmp_path, read_all):
    _write(str(tmp_path / "k=a" / "x.csv"), "v\n1\n2\n")
    _write(str(tmp_path / "k=b" / "y.csv"), "v\n3\n")
    table = read_all(CSVDatasource(str(tmp_path), include_paths=True))
    assert table.column_names == ["v", "k", "path"]
    assert table.schema.field("k").type == pa.string()
    assert table.column("k").to_pylist() == ["a", "a", "b"]
    assert table.column("path").to_pylist()[2] == str(tmp_path / "k=b" / "y.csv")
    plain = read_all(CSVDatasource(str(tmp_path), partitioning=None))
    assert plain.column_names == ["v"]


def test_field_types_and_missing_keys(tmp_path, read_all):
    _write(str(tmp_path / "n=1" / "a.txt"), "x\n")
    _write(str(tmp_path / "n=2" / "m=q" / "b.txt"), "y\n")
    _write(str(tmp_path / "c.txt"), "z\n")
    ds = TextDatasource(str(tmp_path), partitioning=Partitioning("hive", field_types={"n": int}))
    assert ds.schema().names == ["text", "n", "m"]
    assert ds.schema().field("n").type == pa.int64()
    rows = read_all(ds).to_pylist()
    assert rows == [{"text": "z", "n": None, "m": None}, {"text": "x", "n": 1, "m": None},
                    {"text": "y", "n": 2, "m": "q"}]


def test_text_does_not_parse_partitions_unless_asked(tmp_path, read_all):
    _write(str(tmp_path / "k=a" / "x.txt"), "x\n")
    assert read_all(TextDatasource(str(tmp_path))).column_names == ["text"]


def test_path_partition_filter_skips_files_before_reading(tmp_path, read_all):
    for k in "abc":
        _write(str(tmp_path / f"k={k}" / "x.txt"), f"{k}\n")
    keep_b = PathPartitionFilter.of(lambda values: values.get("k") == "b")
    ds = TextDatasource(str(tmp_path), partition_filter=keep_b)
    assert ds.input_files() == [str(tmp_path / "k=b" / "x.txt")]
    assert read_all(ds).column("text").to_pylist() == ["b"]
    with pytest.raises(ValueError, match="partition_filter"):
        TextDatasource(str(tmp_path), partition_filter=PathPartitionFilter.of(lambda v: False))
