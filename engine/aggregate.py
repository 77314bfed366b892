"""Aggregations (a leaf module: imports nothing of the engine).

An aggregation runs in three steps and never pulls all rows to one place: every block is
reduced to a small partial state (:func:`accumulate_block`, vectorized with
``pyarrow.compute``), partial states are merged pairwise (:func:`merge_states`), and the
final state becomes a Python value (:func:`finalize_states`). States are picklable: they
travel from worker tasks to the driver.

Two ways to write a custom aggregation, as in Ray Data: :class:`AggregateFn` takes the four
functions (``init``, ``accumulate_row`` or ``accumulate_block``, ``merge``, ``finalize``);
:class:`AggregateFnV2` is subclassed with ``aggregate_block``/``combine``/``finalize`` and
handles nulls for you. The built-ins (:class:`Count`, :class:`Sum`, :class:`Min`,
:class:`Max`, :class:`Mean`, :class:`Std`, :class:`AbsMax`, :class:`Quantile`,
:class:`Unique`, :class:`AsList`, :class:`CountDistinct`) use Ray Data's names, arguments,
defaults and output names (``sum(x)``, ``count()``...).

Null handling of the built-ins: with ``ignore_nulls=True`` nulls are skipped and a column
with no values gives ``None``; with ``ignore_nulls=False`` one null makes the result
``None``. ``NaN`` is a value, not a null, and propagates as in numpy.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# ---------------------------------------------------------------- the aggregation contract


class AggregateFn:
    """A custom aggregation built from plain functions (Ray Data's ``AggregateFn``).

    Args:
        init: ``init(key) -> state``; ``key`` is the group key (a value for one key column,
            a tuple for several, ``()`` for a whole-dataset aggregation).
        merge: ``merge(state_a, state_b) -> state``; combines partial states of two blocks.
        name: the output column name.
        accumulate_row: ``accumulate_row(state, row) -> state``, ``row`` a dict. Slow: one
            Python call per row. Give this or ``accumulate_block``, not both.
        accumulate_block: ``accumulate_block(state, block) -> state``, ``block`` a
            ``pyarrow.Table``.
        finalize: ``finalize(state) -> value``; the identity if omitted.

    Example:
        >>> count = AggregateFn(init=lambda k: 0, accumulate_block=lambda a, b: a + len(b),
        ...                     merge=lambda a, b: a + b, name="rows")
    """

    def __init__(
        self,
        init: Callable[[Any], Any],
        merge: Callable[[Any, Any], Any],
        name: str,
        accumulate_row: Callable[[Any, dict[str, Any]], Any] | None = None,
        accumulate_block: Callable[[Any, pa.Table], Any] | None = None,
        finalize: Callable[[Any], Any] | None = None,
    ) -> None:
        if (accumulate_row is None) == (accumulate_block is None):
            raise ValueError("give exactly one of accumulate_row and accumulate_block")
        if not isinstance(name, str) or not name:
            raise TypeError(f"AggregateFn needs a name (a non-empty str), got {name!r}")
        self.name = name
        self.init = init
        self.merge = merge
        self.accumulate_row = accumulate_row
        self.accumulate_block = accumulate_block if accumulate_block else self._rows_into
        self.finalize = finalize if finalize else _identity

    def _rows_into(self, state: Any, block: pa.Table) -> Any:
        assert self.accumulate_row is not None, "set by __init__"
        for row in block.to_pylist():
            state = self.accumulate_row(state, row)
        return state

    # The engine drives every aggregation through these four hooks.
    def _init_state(self, key: Any) -> Any:
        return self.init(key)

    def _accumulate(self, state: Any, block: pa.Table) -> Any:
        return self.accumulate_block(state, block) if block.num_rows else state

    def _merge(self, a: Any, b: Any) -> Any:
        return self.merge(a, b)

    def _finalize(self, state: Any) -> Any:
        return self.finalize(state)

    def _validate(self, schema: pa.Schema) -> None:
        """Raise if this aggregation cannot run on blocks of ``schema``."""

    def columns_read(self) -> tuple[str, ...] | None:
        """The columns this aggregation reads of a block (``None``: it may read any, so
        the optimizer must keep them all)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _identity(state: Any) -> Any:
    return state


class AggregateFnV2(AggregateFn, abc.ABC):
    """Base class for a vectorized custom aggregation (Ray Data's ``AggregateFnV2``).

    Subclasses implement ``aggregate_block(block) -> state`` (the partial state of one
    block), ``combine(a, b) -> state`` and optionally ``finalize(state) -> value``. A null
    state (``None`` or NaN) means "no value": with ``ignore_nulls=True`` it is skipped, with
    ``ignore_nulls=False`` it wins and the result is ``None``.

    Args:
        name: the output column name.
        zero_factory: returns the identity state (``0`` for a sum).
        on: the column aggregated, or ``None``.
        ignore_nulls: whether null partial states are skipped.
    """

    def __init__(
        self, name: str, zero_factory: Callable[[], Any], *, on: str | None, ignore_nulls: bool
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"an aggregation needs a non-empty name, got {name!r}")
        if on is not None and not isinstance(on, str):
            raise TypeError(f"on must be a column name (str) or None, got {on!r}")
        self.name = name
        self._zero_factory = zero_factory
        self._target_col_name = on
        self._ignore_nulls = ignore_nulls

    def get_target_column(self) -> str | None:
        """Return the name of the aggregated column (``on``)."""
        return self._target_col_name

    def get_agg_name(self) -> str:
        """Return the kind of aggregation: ``"sum"`` for ``sum(x)``."""
        return self.name.split("(", 1)[0]

    @abc.abstractmethod
    def aggregate_block(self, block: pa.Table) -> Any:
        """Return the partial state of one block."""

    @abc.abstractmethod
    def combine(self, current_accumulator: Any, new: Any) -> Any:
        """Return the merge of two partial states."""

    def finalize(self, accumulator: Any) -> Any:  # type: ignore[override]
        """Return the result for the final state (the state itself by default)."""
        return accumulator

    # Ray's names for the hooks, kept for code that calls them directly.
    def init(self, key: Any) -> Any:  # type: ignore[override]
        return self._init_state(key)

    def merge(self, a: Any, b: Any) -> Any:  # type: ignore[override]
        return self._merge(a, b)

    def accumulate_block(self, state: Any, block: pa.Table) -> Any:  # type: ignore[override]
        return self._accumulate(state, block)

    def _init_state(self, key: Any) -> Any:
        return None if self._ignore_nulls else self._zero_factory()

    def _accumulate(self, state: Any, block: pa.Table) -> Any:
        if not block.num_rows:
            return state
        partial = self.aggregate_block(block)
        return self._merge(state, None if _is_null(partial) and self._ignore_nulls else partial)

    def _merge(self, a: Any, b: Any) -> Any:
        if self._ignore_nulls:
            return b if _is_null(a) else a if _is_null(b) else self.combine(a, b)
        return b if _is_null(b) else a if _is_null(a) else self.combine(a, b)

    def _finalize(self, state: Any) -> Any:
        return None if _is_null(state) else self.finalize(state)

    def _validate(self, schema: pa.Schema) -> None:
        on = self._target_col_name
        if on is not None and on not in schema.names:
            raise ValueError(f"{self!r}: column {on!r} not found; the dataset has columns "
                             f"{schema.names}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(on={self._target_col_name!r}, name={self.name!r})"


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# ---------------------------------------------------------------- the built-ins


class _NullSeen:
    """The state of a built-in with ``ignore_nulls=False`` that met a null."""

    def __reduce__(self) -> str:
        return "_NULL"  # unpickles to the module's singleton

    def __repr__(self) -> str:
        return "<null seen>"


_NULL = _NullSeen()


def _no_state() -> None:
    return None


class _ColumnAggregate(AggregateFnV2):
    """A built-in: a state of ``None`` means "no values yet", ``_NULL`` "a null was met"."""

    _numeric_only = False
    _fast_funcs: tuple[tuple[str, Any], ...] = ()  # hash kernels for accumulate_groups

    def __init__(self, kind: str, on: str | None, ignore_nulls: bool, alias_name: str | None,
                 on_required: bool = True) -> None:
        if on_required and on is None:
            raise ValueError(f"{type(self).__name__} needs the column to aggregate (on=...)")
        super().__init__(alias_name or f"{kind}({on if on is not None else ''})",
                         _no_state, on=on, ignore_nulls=ignore_nulls)

    def aggregate_block(self, block: pa.Table) -> Any:
        column = self._column(block)
        if column.null_count and not self._ignore_nulls:
            return _NULL
        if column.null_count == len(column):
            return None
        return self._column_state(column)

    @abc.abstractmethod
    def _column_state(self, column: pa.ChunkedArray) -> Any:
        """Return the state of a column that holds at least one value."""

    def _state_from_groups(self, values: list[Any], valid: int) -> Any:
        """Return one group's state from the ``_fast_funcs`` results (``valid`` > 0)."""
        raise NotImplementedError

    def _empty_result(self) -> Any:
        return None

    def _init_state(self, key: Any) -> Any:
        return None

    def _accumulate(self, state: Any, block: pa.Table) -> Any:
        if not block.num_rows:
            self._column(block)  # still check the column
            return state
        return self._merge(state, self.aggregate_block(block))

    def _merge(self, a: Any, b: Any) -> Any:
        if a is _NULL or b is _NULL:
            return _NULL
        return b if a is None else a if b is None else self.combine(a, b)

    def _finalize(self, state: Any) -> Any:
        if state is None:
            return self._empty_result()
        return None if state is _NULL else self.finalize(state)

    def _column(self, block: pa.Table) -> pa.ChunkedArray:
        on = self._target_col_name
        if on not in block.column_names:
            raise ValueError(f"{self!r}: column {on!r} not found in block with columns "
                             f"{block.column_names}")
        column = block.column(on)
        self._check_type(column.type)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if self._numeric_only and pa.types.is_boolean(column.type):
            column = column.cast(pa.int64())  # True counts as 1, as in numpy
        return column

    def columns_read(self) -> tuple[str, ...] | None:
        if type(self).__module__ != __name__:
            return None  # a user's subclass may read blocks its own way
        on = self._target_col_name
        return () if on is None else (on,)

    def _check_type(self, arrow_type: pa.DataType) -> None:
        if self._numeric_only and not _is_numeric(arrow_type):
            raise TypeError(f"{self!r} needs a numeric column, but column "
                            f"{self._target_col_name!r} has type {arrow_type}")

    def _validate(self, schema: pa.Schema) -> None:
        super()._validate(schema)
        if self._target_col_name is not None:
            self._check_type(schema.field(self._target_col_name).type)


def _is_numeric(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return (pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)
            or pa.types.is_boolean(arrow_type) or pa.types.is_decimal(arrow_type)
            or pa.types.is_null(arrow_type))


class Count(_ColumnAggregate):
    """Count rows: all rows with ``on=None``, else rows (or, ``ignore_nulls=True``, non-null
    values) of column ``on``. Output name ``count()`` or ``count(on)``.
    """

    def __init__(self, on: str | None = None, ignore_nulls: bool = False,
                 alias_name: str | None = None) -> None:
        super().__init__("count", on, ignore_nulls, alias_name, on_required=False)

    def aggregate_block(self, block: pa.Table) -> int:
        if self._target_col_name is None:
            return block.num_rows
        column = self._column(block)
        return len(column) - column.null_count if self._ignore_nulls else len(column)

    def _column_state(self, column: pa.ChunkedArray) -> int:
        raise AssertionError("Count overrides aggregate_block")

    def combine(self, current_accumulator: int, new: int) -> int:
        return current_accumulator + new

    def _empty_result(self) -> int:
        return 0

    def _column(self, block: pa.Table) -> pa.ChunkedArray:
        if self._target_col_name is None:
            return pa.chunked_array([], pa.null())
        return super()._column(block)


class Sum(_ColumnAggregate):
    """Sum the numeric column ``on``; output name ``sum(on)``. ``None`` if it has no values."""

    _numeric_only = True
    _fast_funcs = (("sum", None),)

    def __init__(self, on: str | None = None, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        super().__init__("sum", on, ignore_nulls, alias_name)

    def _column_state(self, column: pa.ChunkedArray) -> Any:
        return pc.sum(column).as_py()

    def _state_from_groups(self, values: list[Any], valid: int) -> Any:
        return values[0]

    def combine(self, current_accumulator: Any, new: Any) -> Any:
        return current_accumulator + new

    def _empty_result(self) -> Any:
        return None if self._ignore_nulls else 0  # Ray's identity for ignore_nulls=False


class Min(_ColumnAggregate):
    """The smallest value of column ``on`` (any orderable type); output name ``min(on)``."""

    _fast_funcs = (("min", None),)

    def __init__(self, on: str | None = None, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        super().__init__("min", on, ignore_nulls, alias_name)

    def _column_state(self, column: pa.ChunkedArray) -> Any:
        return pc.min(column).as_py()

    def _state_from_groups(self, values: list[Any], valid: int) -> Any:
        return values[0]

    def combine(self, current_accumulator: Any, new: Any) -> Any:
        return min(current_accumulator, new)


class Max(_ColumnAggregate):
    """The largest value of column ``on`` (any orderable type); output name ``max(on)``."""

    _fast_funcs = (("max", None),)

    def __init__(self, on: str | None = None, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        super().__init__("max", on, ignore_nulls, alias_name)

    def _column_state(self, column: pa.ChunkedArray) -> Any:
        return pc.max(column).as_py()

    def _state_from_groups(self, values: list[Any], valid: int) -> Any:
        return values[0]

    def combine(self, current_accumulator: Any, new: Any) -> Any:
        return max(current_accumulator, new)


class Mean(_ColumnAggregate):
    """The arithmetic mean of the numeric column ``on``; output name ``mean(on)``."""

    _numeric_only = True
    _fast_funcs = (("sum", None),)

    def __init__(self, on: str | None = None, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        super().__init__("mean", on, ignore_nulls, alias_name)

    def _column_state(self, column: pa.ChunkedArray) -> tuple[Any, int]:
        return pc.sum(column).as_py(), len(column) - column.null_count

    def _state_from_groups(self, values: list[Any], valid: int) -> tuple[Any, int]:
        return values[0], valid

    def combine(self, current_accumulator: tuple[Any, int], new: tuple[Any, int]) -> Any:
        return current_accumulator[0] + new[0], current_accumulator[1] + new[1]

    def finalize(self, accumulator: tuple[Any, int]) -> float:
        return float(accumulator[0] / accumulator[1])


class Std(_ColumnAggregate):
    """The standard deviation of the numeric column ``on`` with ``ddof`` delta degrees of
    freedom (1: the sample std, as pandas); output name ``std(on)``. NaN when there are
    ``ddof`` values or fewer.

    Partial states are ``(count, mean, M2)`` merged with Chan et al.'s parallel update,
    which stays accurate where the textbook sum-of-squares formula cancels.
    """

    _numeric_only = True
    _fast_funcs = (("mean", None), ("variance", pc.VarianceOptions(ddof=0)))

    def __init__(self, on: str | None = None, ddof: int = 1, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        if not isinstance(ddof, int) or ddof < 0:
            raise ValueError(f"ddof must be a non-negative int, got {ddof!r}")
        super().__init__("std", on, ignore_nulls, alias_name)
        self._ddof = ddof

    def _column_state(self, column: pa.ChunkedArray) -> tuple[int, float, float]:
        count = len(column) - column.null_count
        mean = pc.mean(column).as_py()
        return count, float(mean), pc.variance(column, ddof=0).as_py() * count

    def _state_from_groups(self, values: list[Any], valid: int) -> tuple[int, float, float]:
        return valid, float(values[0]), values[1] * valid

    def combine(self, current_accumulator: tuple[int, float, float],
                new: tuple[int, float, float]) -> tuple[int, float, float]:
        (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = current_accumulator, new
        n = n_a + n_b
        delta = mean_b - mean_a
        mean = mean_a + delta * n_b / n
        return n, mean, m2_a + m2_b + delta * delta * n_a * n_b / n

    def finalize(self, accumulator: tuple[int, float, float]) -> float:
        count, _, m2 = accumulator
        if count <= self._ddof:
            return math.nan
        return math.sqrt(max(m2, 0.0) / (count - self._ddof))


class AbsMax(_ColumnAggregate):
    """The largest absolute value of the numeric column ``on``; output name ``abs_max(on)``."""

    _numeric_only = True
    _fast_funcs = (("min_max", None),)

    def __init__(self, on: str | None = None, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        super().__init__("abs_max", on, ignore_nulls, alias_name)

    def _column_state(self, column: pa.ChunkedArray) -> Any:
        low_high = pc.min_max(column)
        return max(abs(low_high["min"].as_py()), abs(low_high["max"].as_py()))

    def _state_from_groups(self, values: list[Any], valid: int) -> Any:
        return max(abs(values[0]["min"]), abs(values[0]["max"]))

    def combine(self, current_accumulator: Any, new: Any) -> Any:
        return max(current_accumulator, new)


class Quantile(_ColumnAggregate):
    """The ``q``-quantile of the numeric column ``on``, interpolated linearly between the
    two nearest values (numpy's default); output name ``quantile(on)``.

    Exact quantiles need every value, so the state is a numpy array of the column's values.
    """

    _numeric_only = True

    def __init__(self, on: str | None = None, q: float = 0.5, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        if not isinstance(q, int | float) or not 0 <= q <= 1:
            raise ValueError(f"q must be a number between 0 and 1, got {q!r}")
        super().__init__("quantile", on, ignore_nulls, alias_name)
        self._q = float(q)

    def _column_state(self, column: pa.ChunkedArray) -> np.ndarray:
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            column = column.cast(pa.float64())  # decimals
        return pc.drop_null(column).to_numpy()

    def combine(self, current_accumulator: np.ndarray, new: np.ndarray) -> np.ndarray:
        return np.concatenate([current_accumulator, new])

    def finalize(self, accumulator: np.ndarray) -> float:
        return float(np.quantile(accumulator, self._q))


class Unique(_ColumnAggregate):
    """The distinct values of column ``on`` in order of first appearance, as a list; output
    name ``unique(on)``. With ``ignore_nulls=False`` (the default) ``None`` is a value.
    """

    def __init__(self, on: str | None = None, ignore_nulls: bool = False,
                 alias_name: str | None = None, encode_lists: bool | None = None) -> None:
        if encode_lists:
            raise NotImplementedError("Unique(encode_lists=True) is not supported")
        super().__init__(self._kind(), on, ignore_nulls, alias_name)

    def _kind(self) -> str:
        return "unique"

    def aggregate_block(self, block: pa.Table) -> pa.Array:
        column = self._column(block)
        return pc.unique(pc.drop_null(column) if self._ignore_nulls else column)

    def _column_state(self, column: pa.ChunkedArray) -> pa.Array:
        raise AssertionError("Unique overrides aggregate_block")

    def combine(self, current_accumulator: pa.Array, new: pa.Array) -> pa.Array:
        return pc.unique(_concat(current_accumulator, new))

    def finalize(self, accumulator: pa.Array) -> Any:
        return accumulator.to_pylist()

    def _empty_result(self) -> Any:
        return self.finalize(pa.array([]))


class CountDistinct(Unique):
    """The number of distinct values of column ``on``; output name ``count_distinct(on)``."""

    def __init__(self, on: str | None = None, ignore_nulls: bool = True,
                 alias_name: str | None = None) -> None:
        super().__init__(on, ignore_nulls, alias_name)

    def _kind(self) -> str:
        return "count_distinct"

    def finalize(self, accumulator: pa.Array) -> int:
        return len(accumulator)


class AsList(Unique):
    """All values of column ``on`` as one list; output name ``list(on)``."""

    def __init__(self, on: str | None = None, alias_name: str | None = None,
                 ignore_nulls: bool = False) -> None:
        super().__init__(on, ignore_nulls, alias_name)

    def _kind(self) -> str:
        return "list"

    def aggregate_block(self, block: pa.Table) -> pa.Array:
        column = self._column(block)
        return (pc.drop_null(column) if self._ignore_nulls else column).combine_chunks()

    def combine(self, current_accumulator: pa.Array, new: pa.Array) -> pa.Array:
        return _concat(current_accumulator, new)


def _concat(a: pa.Array, b: pa.Array) -> pa.Array:
    """Concatenate two partial arrays whose types can differ (an all-null block, int32)."""
    if a.type != b.type:
        if pa.types.is_null(a.type):
            a = a.cast(b.type)
        else:
            b = b.cast(a.type)
    return pa.concat_arrays([a, b])


# ---------------------------------------------------------------- what the executor calls


def validate_aggregations(aggs: list[AggregateFn], schema: pa.Schema) -> None:
    """Raise ``ValueError`` (missing column) or ``TypeError`` (non-numeric column for
    ``Sum``/``Mean``/``Std``...) if ``aggs`` cannot run on blocks of ``schema``.
    """
    for agg in aggs:
        agg._validate(schema)


def init_states(aggs: list[AggregateFn]) -> list[Any]:
    """Return the initial state of each aggregation for a whole-dataset aggregate."""
    return [agg._init_state(()) for agg in aggs]


def accumulate_block(aggs: list[AggregateFn], states: list[Any], table: pa.Table) -> list[Any]:
    """Return ``states`` updated with the rows of the block ``table``."""
    if table.num_rows == 0 and table.num_columns == 0:
        return list(states)  # a block without schema holds nothing to check
    return [agg._accumulate(state, table) for agg, state in zip(aggs, states, strict=True)]


def merge_states(aggs: list[AggregateFn], a: list[Any], b: list[Any]) -> list[Any]:
    """Return the merge of two lists of partial states (from disjoint sets of rows)."""
    return [agg._merge(x, y) for agg, x, y in zip(aggs, a, b, strict=True)]


def finalize_states(aggs: list[AggregateFn], states: list[Any]) -> dict[str, Any]:
    """Return the result row: output name -> Python value.

    A repeated output name gets a suffix, as in Ray Data: ``sum(x)``, ``sum(x)_2``...
    """
    names = output_names(aggs)
    return {name: agg._finalize(s) for name, agg, s in zip(names, aggs, states, strict=True)}


def output_names(aggs: list[AggregateFn]) -> list[str]:
    """Return the result column names of ``aggs``, suffixing repeats with ``_2``, ``_3``..."""
    seen: dict[str, int] = {}
    names = []
    for agg in aggs:
        seen[agg.name] = seen.get(agg.name, 0) + 1
        names.append(agg.name if seen[agg.name] == 1 else f"{agg.name}_{seen[agg.name]}")
    return names


# ---------------------------------------------------------------- grouped aggregation

_ROW = "__engine_row__"


def accumulate_groups(
    aggs: list[AggregateFn], table: pa.Table, keys: list[str]
) -> dict[tuple[Any, ...], list[Any]]:
    """Return ``{group key tuple: states}`` for the groups of ``table`` by the ``keys`` columns.

    Built-ins with a hash kernel (count, sum, min, max, mean, std, abs_max) are computed for
    all groups at once with ``pyarrow.Table.group_by``; other aggregations run per group on
    zero-copy slices of the table sorted by group. Null keys form a group of their own.
    """
    missing = [k for k in keys if k not in table.column_names]
    if not keys or missing:
        raise ValueError(f"group keys {missing or keys!r} not found in block with columns "
                         f"{table.column_names}")
    if table.num_rows == 0:
        return {}
    for agg in aggs:
        agg._validate(table.schema)
    plan = _GroupPlan(aggs, table, keys)
    grouped = plan.run()
    key_tuples = list(zip(*(grouped.column(f"k{i}").to_pylist() for i in range(len(keys))),
                          strict=True))
    per_agg = [plan.fast_states(i, grouped) if plan.is_fast(agg) else None
               for i, agg in enumerate(aggs)]
    slow = [i for i, agg in enumerate(aggs) if not plan.is_fast(agg)]
    if slow:
        for i, states in plan.slow_states(slow, grouped, key_tuples).items():
            per_agg[i] = states
    return {key: [states[g] for states in per_agg]  # type: ignore[index]
            for g, key in enumerate(key_tuples)}


class _GroupPlan:
    """One ``group_by().aggregate()`` call computing every hash kernel the aggregations need."""

    def __init__(self, aggs: list[AggregateFn], table: pa.Table, keys: list[str]) -> None:
        self.aggs, self.table, self.keys = aggs, table, keys
        self.specs: dict[tuple[str, str, str], int] = {}  # (column, func, options) -> index
        self.inputs: list[tuple[Any, str, Any]] = []
        for agg in aggs:
            if self.is_fast(agg):
                assert isinstance(agg, _ColumnAggregate), "fast aggregations are built-ins"
                for func, options in self.funcs(agg):
                    self.spec(agg._target_col_name, func, options)
        if any(not self.is_fast(agg) for agg in aggs):
            self.spec(_ROW, "list", None)

    @staticmethod
    def is_fast(agg: AggregateFn) -> bool:
        return isinstance(agg, _ColumnAggregate) and (bool(agg._fast_funcs) or
                                                      isinstance(agg, Count))

    @staticmethod
    def funcs(agg: _ColumnAggregate) -> list[tuple[str, Any]]:
        if agg._target_col_name is None:
            return [("count_all", None)]
        counts = [("count", pc.CountOptions("only_valid")), ("count", pc.CountOptions("all"))]
        return counts + list(agg._fast_funcs)

    def spec(self, column: str | None, func: str, options: Any) -> int:
        key = (column or "", func, repr(options))
        if key not in self.specs:
            self.specs[key] = len(self.inputs)
            self.inputs.append((column, func, options))
        return self.specs[key]

    def run(self) -> pa.Table:
        """Return the grouped table: key columns ``k0..``, then one column ``s<i>`` per spec."""
        columns = {f"k{i}": self.table.column(k) for i, k in enumerate(self.keys)}
        sources = sorted({c for c, _, _ in self.inputs if c is not None and c != _ROW})
        for j, name in enumerate(sources):
            columns[f"c{j}"] = self.table.column(name)
        if any(c == _ROW for c, _, _ in self.inputs):
            columns[_ROW] = pa.array(np.arange(self.table.num_rows))
        renamed = {name: f"c{j}" for j, name in enumerate(sources)} | {_ROW: _ROW}
        aggregations = [([] if c is None else renamed[c], f, o) for c, f, o in self.inputs]
        grouped = pa.table(columns).group_by(list(columns)[:len(self.keys)], use_threads=False)
        result = grouped.aggregate(aggregations)
        out = {f"k{i}": result.column(f"k{i}") for i in range(len(self.keys))}
        # Output names can repeat ("c0_count" twice), so take the aggregates by position.
        positions = [i for i, name in enumerate(result.column_names) if name not in out]
        out |= {f"s{j}": result.column(i) for j, i in enumerate(positions)}
        return pa.table(out)

    def fast_states(self, i: int, grouped: pa.Table) -> list[Any]:
        agg = self.aggs[i]
        assert isinstance(agg, _ColumnAggregate), "fast aggregations are built-ins"
        cols = [grouped.column(f"s{self.spec(agg._target_col_name, f, o)}").to_pylist()
                for f, o in self.funcs(agg)]
        if agg._target_col_name is None:
            return cols[0]
        valid, total, values = cols[0], cols[1], list(zip(*cols[2:], strict=True))
        if isinstance(agg, Count):
            return valid if agg._ignore_nulls else total
        return [_NULL if (n < t and not agg._ignore_nulls) else None if n == 0
                else agg._state_from_groups(list(v), n)
                for n, t, v in zip(valid, total, values, strict=True)]

    def slow_states(self, slow: list[int], grouped: pa.Table,
                    key_tuples: list[tuple[Any, ...]]) -> dict[int, list[Any]]:
        rows = grouped.column(f"s{self.spec(_ROW, 'list', None)}").combine_chunks()
        ordered = self.table.take(rows.flatten())
        ends = np.cumsum(rows.value_lengths().to_numpy())
        out: dict[int, list[Any]] = {i: [] for i in slow}
        start = 0
        for g, end in enumerate(ends.tolist()):
            part = ordered.slice(start, end - start)
            key = key_tuples[g][0] if len(key_tuples[g]) == 1 else key_tuples[g]
            for i in slow:
                agg = self.aggs[i]
                out[i].append(agg._accumulate(agg._init_state(key), part))
            start = end
        return out


def merge_group_states(
    aggs: list[AggregateFn],
    a: dict[tuple[Any, ...], list[Any]],
    b: dict[tuple[Any, ...], list[Any]],
) -> dict[tuple[Any, ...], list[Any]]:
    """Return the merge of two ``{group key: states}`` maps from :func:`accumulate_groups`."""
    out = dict(a)
    for key, states in b.items():
        out[key] = merge_states(aggs, out[key], states) if key in out else states
    return out


_PROFILE_AGGREGATES = ("ApproximateQuantile", "ApproximateTopK", "MissingValuePercentage",
                       "ZeroPercentage")


def __getattr__(name: str) -> Any:
    # Ray Data imports these from its aggregate module too; they live in a module of their
    # own (which imports this one), so they are looked up on first use.
    if name in _PROFILE_AGGREGATES:
        from engine import aggregate_profile

        return getattr(aggregate_profile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
