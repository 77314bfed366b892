"""Arguments Ray Data 2.60 refuses with a ``ValueError``, refused the same way (when the
plan is built, where Ray refuses only when it runs): ``compute`` as a string, ``num_gpus``
without ``batch_size``, ``filter(fn=<not callable>)``, UDF outputs that are not batches or
rows, and a local shuffle without a ``batch_size``."""

from __future__ import annotations

from collections import UserDict

import numpy as np
import pytest

import engine as ed


@pytest.mark.parametrize("compute", ["tasks", "actors"])
def test_compute_strings_are_refused(compute: str) -> None:
    with pytest.raises(ValueError, match="TaskPoolStrategy or an ActorPoolStrategy"):
        ed.range(10).map(lambda r: r, compute=compute)


def test_gpus_need_a_batch_size() -> None:
    for batch_size in (None, "auto"):
        with pytest.raises(ValueError, match=r"must provide `batch_size`.*num_gpus=1"):
            ed.range(1).map_batches(lambda b: b, num_gpus=1, batch_size=batch_size)
    ed.range(1).map_batches(lambda b: b, num_gpus=0)  # no GPU asked: fine


def test_filter_fn_must_be_callable() -> None:
    with pytest.raises(ValueError, match=r"must be a UserDefinedFunction.*str"):
        ed.range(3).filter(fn="id > 1")  # type: ignore[arg-type]


@pytest.mark.parametrize("fn", [lambda b: np.array([0]), lambda b: object(),
                                lambda b: {"x": object()}, lambda b: {"id": "string"}])
def test_map_batches_outputs_that_are_not_batches(fn) -> None:
    with pytest.raises(ValueError):
        ed.range(1).map_batches(fn, max_retries=0).materialize()


@pytest.mark.parametrize("fn", [lambda r: 0, lambda r: np.ones(3), lambda r: object()])
def test_map_outputs_that_are_not_rows(fn) -> None:
    with pytest.raises(ValueError):
        ed.range(1).map(fn, max_retries=0).materialize()


def test_mappings_and_lists_of_objects_are_accepted() -> None:
    ds = ed.range(1)
    assert ds.map(lambda r: UserDict({"id": 0})).take_all() == [{"id": 0}]
    assert ds.map_batches(lambda b: UserDict({"x": np.ones(2)})).count() == 2
    assert ds.map(lambda r: {"x": np.ones(3)}).take_all()[0]["x"].tolist() == [1.0] * 3


def test_local_shuffle_needs_a_batch_size() -> None:
    with pytest.raises(ValueError, match="local shuffle needs a batch_size"):
        list(ed.range(100).iter_batches(batch_size=None, local_shuffle_buffer_size=10))
