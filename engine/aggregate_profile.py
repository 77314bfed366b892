"""Profiling aggregations (a leaf module: imports only :mod:`engine.aggregate`).

:class:`MissingValuePercentage`, :class:`ZeroPercentage`, :class:`ApproximateQuantile` and
:class:`ApproximateTopK` carry Ray Data's names, arguments and output names
(``missing_pct(x)``, ``zero_pct(x)``, ``approx_quantile(x)``, ``approx_topk(x)``); they are
what :meth:`engine.Dataset.summary` computes besides the basic built-ins.

The "approximate" two are exact on small data and bounded in memory on large data, without
the ``datasketches`` package Ray Data uses. ``ApproximateQuantile`` is exact up to
``128 * quantile_precision`` non-null values (102,400 by default); past that it answers from
a uniform random sample of that many values (bottom-k sampling, which merges exactly), a
rank error of a fraction of a percent. A quantile is a value of the column (the smallest
whose share of values at or below it exceeds ``q``), as the sketch gives, never an
interpolation. ``ApproximateTopK`` counts exactly up to ``0.75 * 2**log_capacity`` distinct
values (24,576 by default); past that it keeps that many counters (Misra-Gries): every value
more frequent than total/counters is kept, its count low by at most total/counters.
"""

from __future__ import annotations

import pickle
import zlib
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.aggregate import _ColumnAggregate


class _Profile(_ColumnAggregate):
    """A built-in that reads only its column (so projection pushdown keeps just that)."""

    def columns_read(self) -> tuple[str, ...] | None:
        return (self._target_col_name,) if self._target_col_name is not None else ()

    def _state_from_groups(self, values: list[Any], valid: int) -> Any:
        raise NotImplementedError("profiling aggregations run per group slice")


class MissingValuePercentage(_Profile):
    """The percentage (0 to 100) of null values in column ``on``, NaN counting as null;
    ``None`` for an empty dataset. Output name ``missing_pct(on)``."""

    def __init__(self, on: str, alias_name: str | None = None) -> None:
        super().__init__("missing_pct", on, ignore_nulls=False, alias_name=alias_name)

    def aggregate_block(self, block: pa.Table) -> tuple[int, int]:
        column = self._column(block)
        missing = pc.sum(pc.is_null(column, nan_is_null=True)).as_py() or 0
        return missing, len(column)

    def _column_state(self, column: pa.ChunkedArray) -> Any:
        raise AssertionError("MissingValuePercentage overrides aggregate_block")

    def combine(self, current_accumulator: tuple[int, int],
                new: tuple[int, int]) -> tuple[int, int]:
        return current_accumulator[0] + new[0], current_accumulator[1] + new[1]

    def finalize(self, accumulator: tuple[int, int]) -> float | None:
        missing, total = accumulator
        return None if total == 0 else 100.0 * missing / total


class ZeroPercentage(_Profile):
    """The percentage (0 to 100) of zeros in the numeric column ``on``. With
    ``ignore_nulls=True`` (the default) nulls are left out of the total, else they count as
    non-zero values. ``None`` when there is nothing to count. Output name ``zero_pct(on)``."""

    _numeric_only = True

    def __init__(self, on: str, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        super().__init__("zero_pct", on, ignore_nulls=ignore_nulls, alias_name=alias_name)

    def aggregate_block(self, block: pa.Table) -> tuple[int, int]:
        column = self._column(block)
        zeros = pc.sum(pc.equal(column, pa.scalar(0, column.type))).as_py() or 0
        total = len(column) - (column.null_count if self._ignore_nulls else 0)
        return zeros, total

    def _column_state(self, column: pa.ChunkedArray) -> Any:
        raise AssertionError("ZeroPercentage overrides aggregate_block")

    def combine(self, current_accumulator: tuple[int, int],
                new: tuple[int, int]) -> tuple[int, int]:
        return current_accumulator[0] + new[0], current_accumulator[1] + new[1]

    def finalize(self, accumulator: tuple[int, int]) -> float | None:
        zeros, total = accumulator
        return None if total == 0 else 100.0 * zeros / total


class ApproximateQuantile(_Profile):
    """The ``quantiles`` (each between 0 and 1) of the numeric column ``on`` as a list of
    floats, nulls skipped; ``None`` for a column without values. Output name
    ``approx_quantile(on)``. Exact up to ``128 * quantile_precision`` values, else from a
    uniform sample of that many (see the module docstring)."""

    _numeric_only = True

    def __init__(self, on: str, quantiles: list[float], quantile_precision: int = 800,
                 alias_name: str | None = None) -> None:
        qs = list(quantiles) if isinstance(quantiles, list | tuple) else None
        if not qs or not all(isinstance(q, int | float) and 0 <= q <= 1 for q in qs):
            raise ValueError(f"quantiles must be a non-empty list of numbers between 0 and 1, "
                             f"got {quantiles!r}")
        if not isinstance(quantile_precision, int) or quantile_precision <= 0:
            raise ValueError(f"quantile_precision must be a positive int, got "
                             f"{quantile_precision!r}")
        super().__init__("approx_quantile", on, ignore_nulls=True, alias_name=alias_name)
        self._quantiles = [float(q) for q in qs]
        self._capacity = 128 * quantile_precision

    def _column_state(self, column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        values = pc.drop_null(column).cast(pa.float64()).to_numpy()
        # Seeded from the block's data: the same data gives the same summary on every run,
        # and blocks of the same length still draw different priorities.
        seed = zlib.crc32(values[:1024].tobytes(), len(values))
        priorities = np.random.default_rng(seed).random(len(values))
        return self._bounded(values, priorities)

    def _bounded(self, values: np.ndarray,
                 priorities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep the values of the ``capacity`` smallest priorities: a uniform sample."""
        if len(values) <= self._capacity:
            return values, priorities
        keep = np.argpartition(priorities, self._capacity - 1)[:self._capacity]
        return values[keep], priorities[keep]

    def combine(self, current_accumulator: tuple[np.ndarray, np.ndarray],
                new: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self._bounded(np.concatenate([current_accumulator[0], new[0]]),
                             np.concatenate([current_accumulator[1], new[1]]))

    def finalize(self, accumulator: tuple[np.ndarray, np.ndarray]) -> list[float] | None:
        values = accumulator[0]
        n = len(values)
        if n == 0:
            return None
        ranks = [min(int(q * n), n - 1) for q in self._quantiles]
        picked = np.partition(values, sorted(set(ranks)))
        return [float(picked[r]) for r in ranks]


class _Pickled(bytes):
    """A top-k key standing for an unhashable value (a list, a dict), by its pickle."""


class ApproximateTopK(_Profile):
    """The ``k`` most frequent non-null values of column ``on``, as a list of
    ``{on: value, "count": n}`` dicts by count, most frequent first (ties: the value seen
    first comes first). With ``encode_lists=True`` the elements of a list column are counted
    instead of whole lists. Output name ``approx_topk(on)``. Exact up to
    ``0.75 * 2**log_capacity`` distinct values, else bounded (see the module docstring)."""

    def __init__(self, on: str, k: int, log_capacity: int = 15,
                 alias_name: str | None = None, encode_lists: bool = False) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if not isinstance(log_capacity, int) or not 3 <= log_capacity <= 26:
            raise ValueError(f"log_capacity must be an int from 3 to 26, got {log_capacity!r}")
        super().__init__("approx_topk", on, ignore_nulls=True, alias_name=alias_name)
        self.k = k
        self._encode_lists = encode_lists
        self._counters = 3 * 2 ** log_capacity // 4

    def _column_state(self, column: pa.ChunkedArray) -> Counter[Any]:
        if self._encode_lists and (pa.types.is_list(column.type)
                                   or pa.types.is_large_list(column.type)
                                   or pa.types.is_fixed_size_list(column.type)):
            column = pc.list_flatten(column)
        column = pc.drop_null(column)
        try:  # the C++ kernel: one Python object per distinct value, not per row
            counted = pc.value_counts(column)
            pairs = zip(counted.field("values").to_pylist(),
                        counted.field("counts").to_pylist(), strict=True)
            counts = Counter({_key(v): n for v, n in pairs})
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            counts = Counter(_key(v) for v in column.to_pylist())
        return self._bounded(counts)

    def _bounded(self, counts: Counter[Any]) -> Counter[Any]:
        """Misra-Gries: past ``counters`` values, take the next-largest count off every
        count and drop the values left with none."""
        if len(counts) <= self._counters:
            return counts
        cut = sorted(counts.values(), reverse=True)[self._counters]
        return Counter({key: n - cut for key, n in counts.items() if n > cut})

    def combine(self, current_accumulator: Counter[Any], new: Counter[Any]) -> Counter[Any]:
        return self._bounded(current_accumulator + new)

    def finalize(self, accumulator: Counter[Any]) -> list[dict[str, Any]]:
        on = self._target_col_name
        assert on is not None, "on is required"
        return [{on: _value(key), "count": n} for key, n in accumulator.most_common(self.k)]


def _key(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return _Pickled(pickle.dumps(value))


def _value(key: Any) -> Any:
    return pickle.loads(key) if isinstance(key, _Pickled) else key
