"""Checks of the arguments the public API takes, shared by its calls: each raises a
``TypeError``/``ValueError`` that names the call and the argument, when the plan is built."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from engine.compute import resolve_compute


def udf_name(fn: Any) -> str:
    if inspect.isclass(fn):
        return fn.__name__
    return str(getattr(fn, "__name__", type(fn).__name__))


def check_resource_args(**amounts: float | None) -> None:
    for name, value in amounts.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number; got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be non-negative; got {value}")


def column_list(cols: Any, what: str) -> list[str]:
    """``cols`` (a name or a list of names) as a list, or a ``TypeError`` naming ``what``."""
    names = [cols] if isinstance(cols, str) else cols
    if not isinstance(names, (list, tuple)) or not all(isinstance(c, str) for c in names):
        raise TypeError(f"{what} takes a column name or a list of column names; got {cols!r}")
    return list(names)


def check_seed(seed: Any, what: str) -> int | None:
    """``seed`` as a Python int (numpy integers included), or a ``TypeError``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{what}: seed must be an int or None; got {type(seed).__name__}")
    return int(seed)


def check_callable(fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"{what} needs a function or callable class; got {type(fn).__name__}")


def check_filter_fn(fn: Any) -> None:
    """``filter(fn=...)`` takes a function or callable class: Ray Data's ``ValueError``."""
    if not callable(fn):
        raise ValueError(f"filter: fn must be a UserDefinedFunction (a function or callable "
                         f"class), but got {type(fn).__name__} instead; for a predicate "
                         f"expression pass expr=")


def check_gpu_batch_size(num_gpus: Any, batch_size: Any) -> None:
    """A GPU stage needs an explicit ``batch_size`` (Ray Data refuses the default too)."""
    if isinstance(num_gpus, (int, float)) and num_gpus > 0 and \
            batch_size in (None, "auto", "default"):
        raise ValueError("map_batches: you must provide `batch_size` when requesting GPUs "
                         f"(num_gpus={num_gpus}); the best size depends on the model, the "
                         "data and the GPU: the largest that does not run the GPU out of "
                         "memory")


def check_udf_args(what: str, fn: Any, fn_args: Any, fn_kwargs: Any,
                    fn_constructor_args: Any, fn_constructor_kwargs: Any) -> None:
    """Validate a UDF's extra arguments eagerly, naming the call and the argument."""
    for name, value, kind in (("fn_args", fn_args, Iterable),
                              ("fn_constructor_args", fn_constructor_args, Iterable),
                              ("fn_kwargs", fn_kwargs, Mapping),
                              ("fn_constructor_kwargs", fn_constructor_kwargs, Mapping)):
        if value is not None and (not isinstance(value, kind) or isinstance(value, str)):
            wanted = "a tuple or list" if kind is Iterable else "a dict"
            raise TypeError(f"{what}: {name} must be {wanted}; got {type(value).__name__}")
    for name, value in (("fn_constructor_args", fn_constructor_args),
                        ("fn_constructor_kwargs", fn_constructor_kwargs)):
        # Ray Data ignores fn_constructor_kwargs for a function; silently dropping them
        # hides a mistake, so both are refused.
        if value is not None and not inspect.isclass(fn):
            raise ValueError(f"{what}: {name} can only be given with a callable class (built "
                             f"once per actor); {udf_name(fn)!r} is not a class")


def check_max_retries(max_retries: Any, what: str) -> None:
    if max_retries is not None and (isinstance(max_retries, bool) or
                                    not isinstance(max_retries, int) or max_retries < -1):
        raise ValueError(f"{what}: max_retries must be an int >= -1 (-1: retry forever); "
                         f"got {max_retries!r}")


def row_udf_fields(what: str, fn: Any, compute: Any, concurrency: Any, fn_args: Any,
                    fn_kwargs: Any, fn_constructor_args: Any, fn_constructor_kwargs: Any,
                    num_cpus: float | None, remote_args: dict[str, Any]) -> dict[str, Any]:
    """The logical fields of ``map``/``flat_map``/``filter(fn)`` (see ``lo.UdfMap``);
    ``num_gpus``, ``memory`` and ``max_retries`` come, as in Ray Data, among the remote args
    (others, such as ``scheduling_strategy``, mean nothing on one machine)."""
    check_udf_args(what, fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
    num_gpus, memory = remote_args.get("num_gpus"), remote_args.get("memory")
    max_retries = remote_args.get("max_retries")
    check_resource_args(num_cpus=num_cpus, num_gpus=num_gpus, memory=memory)
    check_max_retries(max_retries, what)
    return dict(fn=fn, fn_args=tuple(fn_args or ()), fn_kwargs=dict(fn_kwargs or {}),
                fn_constructor_args=tuple(fn_constructor_args or ()),
                fn_constructor_kwargs=dict(fn_constructor_kwargs or {}),
                strategy=resolve_compute(fn, compute, concurrency),
                cpus=1.0 if num_cpus is None else float(num_cpus),
                gpus=0.0 if num_gpus is None else float(num_gpus), memory=memory,
                max_retries=max_retries, resources=custom_resources(remote_args))


def custom_resources(remote_args: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """The custom resources (``resources={name: amount}``) among Ray remote args."""
    found = remote_args.get("resources") or {}
    if not isinstance(found, dict) or not all(
            isinstance(v, (int, float)) and v >= 0 for v in found.values()):
        raise ValueError(f"resources must be a dict of non-negative amounts; got {found!r}")
    return tuple(sorted((str(k), float(v)) for k, v in found.items()))


def check_count(n: Any, what: str) -> int:
    """``n`` as a positive int (of splits, consumers...), or a ``TypeError``/``ValueError``."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what}: n must be an int; got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{what}: n must be a positive int; got {n!r}")
    return n
