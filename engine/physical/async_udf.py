"""Async UDFs: a callable class (or function) whose ``__call__`` is a coroutine or an async
generator, run concurrently inside the worker or actor, as Ray Data runs them.

Up to ``max_concurrency`` calls are in flight at once (Ray Data's defaults: 4 for
``map_batches``, 16 for ``map``/``flat_map``); outputs come out in input order. An async
generator is drained inside its call (all it yields belongs to that input). The event loop
belongs to the step that runs the UDF and lives as long as its actor; it runs while the task
waits for the oldest call, so every call in flight makes progress meanwhile.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where an async UDF runs: 15 ms of every worker's start
    import asyncio

BATCH_MAX_CONCURRENCY = 4
ROW_MAX_CONCURRENCY = 16


def is_async_udf(fn: Any) -> bool:
    """Whether calling ``fn`` (a function or an instance of a callable class) gives a
    coroutine or an async generator."""
    call = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else \
        type(fn).__dict__.get("__call__") or type(fn).__call__
    return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)


def _outputs_of(fn: Callable[..., Any], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Callable[[Any], Any]:
    """A coroutine function giving the list of outputs of one call of ``fn``."""

    async def run(item: Any) -> list[Any]:
        result = fn(item, *args, **kwargs)
        if inspect.isasyncgen(result):
            return [out async for out in result]
        return [await result]

    return run


def ordered_async_map(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any],
                      items: Iterable[Any], max_concurrency: int,
                      args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
                      ) -> Iterator[list[Any]]:
    """For each of ``items`` in order, the list of outputs of ``fn(item, *args, **kwargs)``,
    with up to ``max_concurrency`` calls running at once on ``loop``."""
    run = _outputs_of(fn, args, kwargs or {})
    pending: deque[asyncio.Task[list[Any]]] = deque()
    try:
        for item in items:
            pending.append(loop.create_task(run(item)))
            if len(pending) >= max_concurrency:
                yield loop.run_until_complete(pending.popleft())
        while pending:
            yield loop.run_until_complete(pending.popleft())
    finally:  # a failed call or an abandoned task: cancel the calls still in flight
        for task in pending:
            task.cancel()
        if pending:
            import asyncio

            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
