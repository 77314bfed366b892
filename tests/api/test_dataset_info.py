"""What a dataset says about itself, as Ray Data 2.60 does: ``repr``/``str`` (the plan, and
the source's rows and schema once known, without running anything), ``name``/``set_name``,
``context``, ``Dataset.copy`` and ``get_internal_block_refs``.

These tests start workers. None depends on timing.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import engine as ed


def test_repr_shows_the_plan_rows_and_schema() -> None:
    ds = ed.range(10).map(lambda r: r).filter(lambda r: True)
    assert repr(ds) == ("Filter(<lambda>)\n+- Map(<lambda>)\n"
                        "   +- Dataset(num_rows=10, schema={id: int64})")
    assert str(ed.range(3).materialize()) == \
        "MaterializedDataset(num_blocks=1, num_rows=3, schema={id: int64})"


def test_repr_of_a_read_names_the_columns(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"abc")
    assert "bytes" in str(ed.read_binary_files(tmp_path))


def test_repr_with_unknown_schema_and_long_lines() -> None:
    assert str(ed.from_items([])) == \
        "MaterializedDataset(num_blocks=1, num_rows=0, schema=Unknown schema)"
    wide = ed.from_arrow(pa.table({"c" * 40: [1], "d" * 40: ["x"]}))
    lines = str(wide).splitlines()  # past 80 characters: one field a line
    assert lines[:3] == ["MaterializedDataset(", "   num_blocks=1,", "   num_rows=1,"]
    assert lines[3].startswith("   schema={cccc") and lines[4] == ")"


def test_name_is_kept_by_derived_datasets() -> None:
    ds = ed.range(3)
    assert ds.name is None
    ds.set_name("train")
    assert ds.map(lambda r: r).name == "train"
    assert ds.materialize().name == "train"
    assert "name=train" in str(ds)
    with pytest.raises(TypeError, match="str or None"):
        ds.set_name(3)  # type: ignore[arg-type]


def test_context_is_the_current_context(fresh_context: ed.DataContext) -> None:
    assert ed.range(1).context is fresh_context


def test_copy() -> None:
    ds = ed.range(4)
    ds.set_name("x")
    lazy = ed.Dataset.copy(ds)
    assert lazy is not ds and lazy.name == "x" and lazy.count() == 4
    mat = ds.materialize()
    again = ed.Dataset.copy(mat)
    assert isinstance(again, ed.MaterializedDataset) and again.num_blocks() == mat.num_blocks()
    assert type(ed.Dataset.copy(mat, _as=ed.Dataset)) is ed.Dataset
    with pytest.raises(TypeError, match="materialize"):
        ed.Dataset.copy(ds, _as=ed.MaterializedDataset)


def test_get_internal_block_refs() -> None:
    refs = ed.range(10, override_num_blocks=2).get_internal_block_refs()
    assert sum(ed.get(r).num_rows for r in refs) == 10
    assert ed.from_items([]).get_internal_block_refs() != [None]
