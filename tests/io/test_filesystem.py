"""Path and filesystem handling shared by every datasource."""

from __future__ import annotations

import os
import pickle

import fsspec
import pyarrow.fs as pafs
import pytest

from engine.io.binary_datasource import BinaryDatasource
from engine.io.filesystem import has_file_extension, resolve_filesystem
from engine.io.text_datasource import TextDatasource


def _tree(root, files):
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)


def _paths(ds):
    return [os.path.basename(p) for p in ds.input_files()]


def test_directory_is_listed_recursively_in_path_order_skipping_hidden(tmp_path):
    _tree(tmp_path, {"b.txt": "b", "a/z.txt": "z", "a/y.txt": "y", ".hidden.txt": "h",
                     "_SUCCESS": "", "a/.tmp/x.txt": "x", "a/_meta/m.txt": "m"})
    ds = TextDatasource(str(tmp_path))
    assert ds.input_files() == [str(tmp_path / "a/y.txt"), str(tmp_path / "a/z.txt"),
                                str(tmp_path / "b.txt")]


def test_list_of_paths_keeps_the_given_order(tmp_path):
    _tree(tmp_path, {"x/1.txt": "1", "y/2.txt": "2"})
    ds = TextDatasource([str(tmp_path / "y"), str(tmp_path / "x" / "1.txt")])
    assert _paths(ds) == ["2.txt", "1.txt"]


def test_glob_patterns(tmp_path):
    _tree(tmp_path, {"d1/a.csv": "", "d1/b.txt": "", "d2/c.csv": "", "d2/sub/d.csv": ""})
    assert _paths(BinaryDatasource(str(tmp_path / "*" / "*.csv"))) == ["a.csv", "c.csv"]
    assert _paths(BinaryDatasource(str(tmp_path / "**.csv"))) == ["a.csv", "c.csv", "d.csv"]
    assert _paths(BinaryDatasource(str(tmp_path / "d[2]"))) == ["c.csv", "d.csv"]
    assert _paths(BinaryDatasource(str(tmp_path / "d1" / "?.txt"))) == ["b.txt"]


def test_missing_path_raises_file_not_found_naming_it(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="nope") as info:
        TextDatasource([str(tmp_path), missing])
    assert info.value.filename == missing
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        TextDatasource(str(tmp_path / "nothing-here*.txt"))


def test_ignore_missing_paths(tmp_path):
    _tree(tmp_path, {"a.txt": "a"})
    ds = TextDatasource([str(tmp_path / "nope"), str(tmp_path / "a.txt")],
                        ignore_missing_paths=True)
    assert _paths(ds) == ["a.txt"]
    with pytest.raises(ValueError, match="No files found"):
        TextDatasource([str(tmp_path / "nope")], ignore_missing_paths=True)


def test_empty_directory_and_unmatched_extensions_raise_value_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No files found"):
        TextDatasource(str(tmp_path / "empty"))
    _tree(tmp_path, {"d/a.txt": "a"})
    with pytest.raises(ValueError, match="extensions"):
        TextDatasource(str(tmp_path / "d"), file_extensions=["csv"])


def test_file_extensions_filter_case_insensitively(tmp_path):
    _tree(tmp_path, {"a.TXT": "a", "b.txt.gz": "", "c.log": "c"})
    assert _paths(TextDatasource(str(tmp_path), file_extensions=["txt"])) == ["a.TXT"]
    assert _paths(TextDatasource(str(tmp_path), file_extensions=[".log", "txt"])) == \
        ["a.TXT", "c.log"]
    assert has_file_extension("x.json.gz", ["json.gz"])
    assert not has_file_extension("x.json.gz", ["json"])


def test_file_urls_and_relative_paths_resolve_to_absolute_local_paths(tmp_path, monkeypatch):
    _tree(tmp_path, {"a.txt": "a"})
    monkeypatch.chdir(tmp_path)
    assert TextDatasource("a.txt").input_files() == [str(tmp_path / "a.txt")]
    assert TextDatasource(f"file://{tmp_path}/a.txt").input_files() == \
        [str(tmp_path / "a.txt")]


def test_memory_urls(memory_root, read_all):
    fs = fsspec.filesystem("memory")
    root = "/" + memory_root[len("memory://"):]
    fs.pipe(f"{root}/a.txt", b"x\ny\n")
    fs.pipe(f"{root}/sub/b.txt", b"z\n")
    ds = TextDatasource(memory_root)
    assert ds.input_files() == [f"{memory_root}/a.txt", f"{memory_root}/sub/b.txt"]
    assert read_all(ds).column("text").to_pylist() == ["x", "y", "z"]


def test_filesystem_argument_accepts_fsspec_and_pyarrow(tmp_path, read_all):
    _tree(tmp_path, {"a.txt": "hello"})
    for fs in (fsspec.filesystem("file"), pafs.LocalFileSystem(),
               pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("file")))):
        ds = TextDatasource(str(tmp_path), filesystem=fs)
        assert read_all(ds).column("text").to_pylist() == ["hello"]
    sub = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    assert read_all(TextDatasource("a.txt", filesystem=sub)).num_rows == 1


def test_bad_arguments_are_rejected_naming_them():
    with pytest.raises(TypeError, match="filesystem"):
        resolve_filesystem("x", filesystem=object())
    with pytest.raises(ValueError, match="at least one"):
        resolve_filesystem([])
    with pytest.raises(ValueError, match="mix"):
        resolve_filesystem(["/tmp/a", "memory://b"])
    with pytest.raises(TypeError, match="strings"):
        resolve_filesystem([1])


def test_handles_pickle():
    _, handle = resolve_filesystem("memory://x")
    clone = pickle.loads(pickle.dumps(handle))
    assert clone.scheme == "memory" and not clone.object_store
    _, local = resolve_filesystem("/tmp")
    assert pickle.loads(pickle.dumps(local)).is_local
