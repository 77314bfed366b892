"""Async UDFs in ``map_batches``/``map``/``flat_map``, as Ray Data 2.60 runs them: a callable
class whose ``__call__`` is a coroutine or an async generator runs several calls at once
inside each actor (proven by a handshake: each call waits until another one has started,
which would never happen one call at a time), and outputs keep the input order.

These tests start workers. None depends on timing (the wait_for bound only turns a broken
engine's hang into a failure).
"""

from __future__ import annotations

import asyncio

import pytest

import engine as ed


@pytest.fixture(autouse=True)
def _in_order(fresh_context: ed.DataContext) -> None:
    fresh_context.execution_options.preserve_order = True


class Rendezvous:
    """Each call returns only once ``needed`` calls have started: concurrency or a hang."""

    def __init__(self, needed: int = 2) -> None:
        self.needed = needed
        self.started = 0
        self.ready: asyncio.Event | None = None

    async def meet(self) -> None:
        if self.ready is None:
            self.ready = asyncio.Event()
        self.started += 1
        if self.started >= self.needed:
            self.ready.set()
        await asyncio.wait_for(self.ready.wait(), 120)


class AsyncDouble(Rendezvous):
    async def __call__(self, batch: dict) -> dict:
        await self.meet()
        return {"id": batch["id"] * 2}


class AsyncSplit(Rendezvous):
    async def __call__(self, batch: dict):
        await self.meet()
        for value in batch["id"]:
            yield {"id": [int(value)], "neg": [-int(value)]}


class AsyncRow(Rendezvous):
    async def __call__(self, row: dict) -> dict:
        await self.meet()
        return {"id": row["id"] + 100}


class AsyncRows(Rendezvous):
    async def __call__(self, row: dict):
        await self.meet()
        yield {"id": row["id"]}
        yield {"id": -row["id"]}


def test_async_batch_udf_runs_calls_concurrently_in_order() -> None:
    ds = ed.range(8, override_num_blocks=1).map_batches(AsyncDouble, batch_size=2,
                                                       concurrency=1)
    assert [r["id"] for r in ds.take_all()] == [0, 2, 4, 6, 8, 10, 12, 14]


def test_async_generator_batch_udf() -> None:
    ds = ed.range(4, override_num_blocks=1).map_batches(AsyncSplit, batch_size=2,
                                                       concurrency=1)
    assert ds.take_all() == [{"id": i, "neg": -i} for i in range(4)]


def test_async_row_udfs() -> None:
    ds = ed.range(5, override_num_blocks=1)
    assert [r["id"] for r in ds.map(AsyncRow, concurrency=1).take_all()] == \
        [100, 101, 102, 103, 104]
    flat = ds.flat_map(AsyncRows, concurrency=1).take_all()
    assert [r["id"] for r in flat] == [0, 0, 1, -1, 2, -2, 3, -3, 4, -4]


def test_async_function_udf_and_errors() -> None:
    async def plus_one(batch: dict) -> dict:
        await asyncio.sleep(0)
        return {"id": batch["id"] + 1}

    assert ed.range(3).map_batches(plus_one).take_all() == [{"id": 1}, {"id": 2}, {"id": 3}]

    class Fails:
        async def __call__(self, batch: dict) -> dict:
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        ed.range(3).map_batches(Fails, concurrency=1).take_all()
