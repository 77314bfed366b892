"""``streaming_split`` consumers that are Ray tasks: one that dies in the middle of a pass
fails the epoch for the others with a typed error (never a hang), and one that stops early
with a goodbye holds nobody back."""

from __future__ import annotations

import os

import pytest
import ray

import engine as ed
from engine.errors import SplitConsumerDiedError

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]


@ray.remote(num_cpus=0, max_retries=0)
def _die_mid_pass(it) -> None:
    for _ in it.iter_batches(batch_size=10):
        os._exit(1)  # the worker process dies with its pass open


@ray.remote(num_cpus=0, max_retries=0)
def _two_passes(it) -> tuple[list[int], str | None]:
    rows: list[int] = []
    try:
        for _ in range(2):
            rows.append(sum(len(b["id"]) for b in it.iter_batches(batch_size=10)))
    except SplitConsumerDiedError as exc:
        return rows, str(exc)
    return rows, None


@ray.remote(num_cpus=0, max_retries=0)
def _stop_early(it) -> int:
    batches = it.iter_batches(batch_size=10)
    rows = len(next(batches)["id"])
    batches.close()  # leaves the pass: the iterator says goodbye
    return rows


def test_a_consumer_that_dies_mid_pass_fails_the_epoch_for_the_others(ray_single):
    first, second = ed.range(1000, override_num_blocks=20).streaming_split(2, equal=False)
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(_die_mid_pass.remote(first))
    # consumer 1 gets the typed error, in this epoch or when it begins the next one
    rows, error = ray.get(_two_passes.remote(second))
    assert error is not None and "consumer 0" in error, (rows, error)
    assert len(rows) <= 1


def test_a_consumer_that_stops_early_holds_nobody_back(ray_single):
    first, second = ed.range(1000, override_num_blocks=20).streaming_split(2, equal=False)
    assert ray.get(_stop_early.remote(first)) == 10
    rows, error = ray.get(_two_passes.remote(second))
    assert error is None and rows[0] + 10 <= 1000 and rows[1] > 0
