"""Compute strategies users pass as ``compute=`` (Ray Data compatible)."""

from __future__ import annotations

import inspect
from typing import Any

from engine.logical.operators import TASKS, ComputeStrategy


class TaskPoolStrategy:
    """Run a map as tasks; ``size`` caps how many run at once."""

    def __init__(self, size: int | None = None) -> None:
        if size is not None and size < 1:
            raise ValueError(f"TaskPoolStrategy size must be at least 1, got {size}")
        self.size = size


class ActorPoolStrategy:
    """Run a map on a pool of actors: fixed (``size``) or autoscaling (``min_size``..
    ``max_size``, starting at ``initial_size``)."""

    def __init__(self, *, size: int | None = None, min_size: int | None = None,
                 max_size: int | None = None, initial_size: int | None = None,
                 max_tasks_in_flight_per_actor: int | None = None) -> None:
        for name, value in (("size", size), ("min_size", min_size), ("max_size", max_size),
                            ("initial_size", initial_size),
                            ("max_tasks_in_flight_per_actor", max_tasks_in_flight_per_actor)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"ActorPoolStrategy {name} must be an int; got "
                                f"{type(value).__name__}")
            if value < 1:
                raise ValueError(f"ActorPoolStrategy {name} must be at least 1, got {value}")
        if size is not None:
            if min_size is not None or max_size is not None:
                raise ValueError("ActorPoolStrategy: give either size or min_size/max_size")
            min_size = max_size = size
        self.min_size = min_size or 1
        self.max_size = max_size
        if self.max_size is not None and self.max_size < self.min_size:
            raise ValueError(f"ActorPoolStrategy: max_size={max_size} < min_size={min_size}")
        self.initial_size = initial_size
        self.max_tasks_in_flight_per_actor = max_tasks_in_flight_per_actor


def resolve_compute(fn: Any, compute: Any, concurrency: Any) -> ComputeStrategy:
    """Translate ``compute``/``concurrency`` the way Ray Data does, with clear errors."""
    is_class = inspect.isclass(fn)
    if isinstance(compute, str):
        # Ray Data 2.5 dropped the string forms; it raises this when the plan runs.
        raise ValueError(f"compute must be a TaskPoolStrategy or an ActorPoolStrategy (the "
                         f"strings 'tasks'/'actors' are gone since Ray 2.5); got {compute!r}")
    if compute is not None:
        if isinstance(compute, TaskPoolStrategy):
            if is_class:
                raise ValueError(f"the callable class {fn.__name__} needs an actor pool, not "
                                 "the task pool strategy: pass ActorPoolStrategy or no compute")
            size = getattr(compute, "size", None)
            return ComputeStrategy("tasks", max_size=size)
        if isinstance(compute, ActorPoolStrategy):
            if not is_class:
                raise ValueError("a plain function cannot run on an actor pool; pass a "
                                 "callable class, or TaskPoolStrategy")
            return ComputeStrategy("actors", compute.min_size, compute.max_size,
                                   compute.max_tasks_in_flight_per_actor)
        raise ValueError(f"compute must be a TaskPoolStrategy or an ActorPoolStrategy; got "
                         f"{compute!r}")
    if concurrency is not None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, (int, tuple)):
            raise ValueError(f"concurrency must be an int or a tuple of ints; got "
                             f"{concurrency!r}")
        if isinstance(concurrency, tuple):
            if len(concurrency) not in (2, 3) or not all(isinstance(c, int) for c in
                                                         concurrency):
                raise ValueError(f"concurrency must be (min, max) or (min, max, initial) "
                                 f"ints; got {concurrency!r}")
            if not is_class:
                raise ValueError(f"concurrency={concurrency} (a tuple) needs a callable "
                                 "class; use concurrency=n to cap a function's tasks")
            lo_, hi = concurrency[0], concurrency[1]
            if lo_ < 1 or hi < lo_:
                raise ValueError(f"concurrency={concurrency}: need 1 <= min <= max")
            return ComputeStrategy("actors", lo_, hi)
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1; got {concurrency}")
        if is_class:
            return ComputeStrategy("actors", concurrency, concurrency)
        return ComputeStrategy("tasks", max_size=concurrency)
    return ComputeStrategy("actors", 1, None) if is_class else TASKS


def expression_compute(exprs: list[Any], compute: Any) -> ComputeStrategy:
    """How a projection of ``exprs`` runs: on an actor pool when they hold callable-class
    UDFs (each actor builds them once) or ``compute`` asks for one; else on tasks."""
    from engine.expressions import class_udfs

    classes = [u.cls for e in exprs for u in class_udfs(e)]
    if compute is None:
        return ComputeStrategy("actors", 1, None) if classes else TASKS
    if compute == "tasks" or isinstance(compute, TaskPoolStrategy):
        if classes:
            raise ValueError(f"the callable class UDF {classes[0].__name__} needs an actor "
                             "pool, not the task pool strategy: pass ActorPoolStrategy or no "
                             "compute")
        return ComputeStrategy("tasks", max_size=getattr(compute, "size", None))
    if compute == "actors":
        return ComputeStrategy("actors", 1, None)
    if isinstance(compute, ActorPoolStrategy):
        return ComputeStrategy("actors", compute.min_size, compute.max_size,
                               compute.max_tasks_in_flight_per_actor)
    raise ValueError(f"compute must be 'tasks', 'actors', TaskPoolStrategy or "
                     f"ActorPoolStrategy; got {compute!r}")
