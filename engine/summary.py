"""``Dataset.summary()``: per-column statistics chosen by column type, in one pass.

Which statistics a column gets depends on its :class:`~engine.datatype.DataType`:

- numbers (integers, floats, decimals, booleans): ``count``, ``mean``, ``min``, ``max``,
  ``std`` (population, ddof=0), ``approx_quantile`` (the median), ``missing_pct``,
  ``zero_pct``;
- strings and binary: ``count``, ``missing_pct``, ``approx_topk`` (the 10 most frequent);
- temporal (timestamp, date, time, duration): ``count``, ``min``, ``max``, ``missing_pct``;
- a column of nulls only: ``count``; anything else: as strings.

Every aggregation of every column runs in a single :meth:`Dataset.aggregate` call. A
statistic whose result is a list (quantiles, top-k) becomes one row per element,
``approx_quantile[0]``, ``approx_topk[0]``, ``approx_topk[1]``...
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from engine.aggregate import AggregateFnV2, Count, Max, Mean, Min, Std
from engine.aggregate_profile import (
    ApproximateQuantile,
    ApproximateTopK,
    MissingValuePercentage,
    ZeroPercentage,
)
from engine.datatype import DataType, TypeCategory

if TYPE_CHECKING:
    from engine.dataset import Dataset

logger = logging.getLogger(__name__)

AggFactory = Callable[[str], list[AggregateFnV2]]
STATISTIC_COLUMN = "statistic"


def numerical_aggregators(column: str) -> list[AggregateFnV2]:
    """The default statistics of a numeric column."""
    return [Count(on=column, ignore_nulls=False), Mean(on=column), Min(on=column),
            Max(on=column), Std(on=column, ddof=0),
            ApproximateQuantile(on=column, quantiles=[0.5]),
            MissingValuePercentage(on=column), ZeroPercentage(on=column)]


def temporal_aggregators(column: str) -> list[AggregateFnV2]:
    """The default statistics of a date, time, timestamp or duration column."""
    return [Count(on=column, ignore_nulls=False), Min(on=column), Max(on=column),
            MissingValuePercentage(on=column)]


def basic_aggregators(column: str) -> list[AggregateFnV2]:
    """The default statistics of a string, binary or other column."""
    return [Count(on=column, ignore_nulls=False), MissingValuePercentage(on=column),
            ApproximateTopK(on=column, k=10)]


def _default_factory(dtype: DataType) -> AggFactory:
    t = dtype.to_arrow_dtype()
    if pa.types.is_null(t):
        return lambda column: [Count(on=column, ignore_nulls=False)]
    if dtype.is_numerical_type() or pa.types.is_boolean(t):
        return numerical_aggregators
    if dtype.is_temporal_type():
        return temporal_aggregators
    return basic_aggregators


def _factory_for(dtype: DataType, overrides: Mapping[Any, AggFactory]) -> AggFactory:
    for key, factory in overrides.items():  # an exact type first, then a category
        if isinstance(key, DataType) and key == dtype:
            return factory
    for key, factory in overrides.items():
        if isinstance(key, TypeCategory | str) and dtype.is_of(key):
            return factory
    return _default_factory(dtype)


@dataclass
class DatasetSummary:
    """The statistics computed by :meth:`Dataset.summary`.

    Statistics whose values keep their column's type (``min``/``max`` of an int64 column)
    and those that change it (``mean``, ``missing_pct``) are held apart, each as a table
    with a ``statistic`` column and one column per summarized column.

    Attributes:
        dataset_schema: the Arrow schema of the summarized dataset.
        columns: the summarized columns.
    """

    STATISTIC_COLUMN = STATISTIC_COLUMN
    _stats_matching_column_dtype: pa.Table | pd.DataFrame
    _stats_mismatching_column_dtype: pa.Table | pd.DataFrame
    dataset_schema: pa.Schema
    columns: list[str] = field(default_factory=list)

    def to_pandas(self) -> pd.DataFrame:
        """Return every statistic as one DataFrame: a ``statistic`` column (sorted) and one
        column per summarized column; a statistic a column lacks is null."""
        matching = _indexed(self._stats_matching_column_dtype)
        changing = _indexed(self._stats_mismatching_column_dtype)
        if matching.empty and changing.empty:
            return pd.DataFrame(columns=[STATISTIC_COLUMN])
        combined = matching.combine_first(changing)
        combined.index.name = STATISTIC_COLUMN
        return combined.reset_index().sort_values(STATISTIC_COLUMN).reset_index(drop=True)

    def get_column_stats(self, column: str) -> pd.DataFrame:
        """Return the statistics of ``column`` as a DataFrame with columns ``statistic`` and
        ``value``. Raises ``ValueError`` if ``column`` was not summarized."""
        if column not in self.columns:
            raise ValueError(f"column {column!r} is not in the summary; summarized columns: "
                             f"{sorted(self.columns)}")
        values: dict[str, Any] = {}
        for table in (self._stats_matching_column_dtype, self._stats_mismatching_column_dtype):
            frame = _indexed(table)
            if column not in frame.columns:
                continue
            for stat, value in frame[column].items():
                if values.get(stat) is None and not _missing(value):
                    values[stat] = value
                else:
                    values.setdefault(stat, None)
        stats = sorted(values)
        return pd.DataFrame({STATISTIC_COLUMN: stats, "value": [values[s] for s in stats]})


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or dict value
        return False


def _indexed(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    frame = table.to_pandas() if isinstance(table, pa.Table) else table
    if STATISTIC_COLUMN not in frame.columns:
        return pd.DataFrame()
    return frame.set_index(STATISTIC_COLUMN)


def summarize(ds: Dataset, columns: Sequence[str] | None,
              override_dtype_agg_mapping: Mapping[Any, AggFactory] | None) -> DatasetSummary:
    """Compute :meth:`Dataset.summary` of ``ds`` (see there)."""
    schema = ds.schema()
    if schema is None:
        raise ValueError("summary() needs the dataset's schema, but the dataset has none "
                         "(it holds no blocks)")
    arrow_schema: pa.Schema = schema.base_schema
    if columns is None:
        names = list(arrow_schema.names)
    elif isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise TypeError(f"columns must be a list of column names, got {columns!r}")
    else:
        names = list(columns)
    missing = [c for c in names if c not in arrow_schema.names]
    if missing:
        raise ValueError(f"summary(columns=...): columns {missing} not found; the dataset "
                         f"has columns {arrow_schema.names}")
    overrides = dict(override_dtype_agg_mapping or {})
    per_column: dict[str, list[AggregateFnV2]] = {}
    for name in names:
        dtype = DataType.from_arrow(arrow_schema.field(name).type)
        aggs = list(_factory_for(dtype, overrides)(name))
        for agg in aggs:
            if not isinstance(agg, AggregateFnV2) or agg.get_target_column() != name:
                raise ValueError(f"the aggregator factory for column {name!r} (type {dtype}) "
                                 f"must return AggregateFnV2 objects on that column; got "
                                 f"{agg!r}")
        per_column[name] = aggs
    all_aggs = [agg for aggs in per_column.values() for agg in aggs]
    if not all_aggs:
        raise ValueError(f"summary() has no statistic to compute for columns {names}")
    result = ds.aggregate(*all_aggs)
    assert result is not None, "a whole-dataset aggregate always gives a row"
    values = iter(result.values())  # output names may be suffixed (sum(x)_2): go by order
    matching: dict[str, dict[str, Any]] = {}  # statistic -> column -> value
    changing: dict[str, dict[str, Any]] = {}
    for name, aggs in per_column.items():
        col_type = arrow_schema.field(name).type
        for agg in aggs:
            for stat, value in _rows_of(agg.get_agg_name(), next(values)):
                keeps_type = value is not None and _arrow_type(value) == col_type
                (matching if keeps_type else changing).setdefault(stat, {})[name] = value
    return DatasetSummary(
        _stats_matching_column_dtype=_table(matching, names, arrow_schema),
        _stats_mismatching_column_dtype=_table(changing, names, None),
        dataset_schema=arrow_schema,
        columns=names,
    )


def _rows_of(stat: str, value: Any) -> list[tuple[str, Any]]:
    """One row per element of a list result (``approx_topk[0]``...), else one row."""
    if isinstance(value, list):
        return [(f"{stat}[{i}]", v) for i, v in enumerate(value)]
    return [(stat, value)]


def _arrow_type(value: Any) -> pa.DataType | None:
    try:
        return pa.array([value]).type
    except (pa.ArrowException, TypeError, ValueError):
        return None


def _table(stats: dict[str, dict[str, Any]], names: list[str],
           schema: pa.Schema | None) -> pa.Table | pd.DataFrame:
    """A table of ``stats`` (statistic -> column -> value): typed as ``schema``'s columns
    where given, else as inferred; a pandas frame where Arrow cannot hold a column."""
    order = sorted(stats)
    if not order:
        return pa.table({})
    data: dict[str, Any] = {STATISTIC_COLUMN: pa.array(order, pa.string())}
    arrow_ok = True
    for name in sorted(names):
        column = [stats[s].get(name) for s in order]
        try:
            data[name] = pa.array(column, schema.field(name).type if schema else None)
        except (pa.ArrowException, TypeError, ValueError):
            data[name] = column  # mixed kinds (a count beside top-k dicts)
            arrow_ok = False
    if arrow_ok:
        return pa.table(data)
    return pd.DataFrame({k: (v.to_pandas() if isinstance(v, pa.Array) else
                             pd.Series(v, dtype=object)) for k, v in data.items()})
