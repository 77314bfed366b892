"""Map-side partial aggregation of the built-ins, merged and finalized in the reduce, all on
pyarrow's hash kernels (no Python per group).

For ``Count``, ``Sum``, ``Min``, ``Max``, ``Mean`` and ``Std`` a map task reduces each block
to one row per group (``Table.group_by``): per aggregation the valid and total counts and
its partial (a sum, a min, a max, or a mean and M2 for std), then partitions those rows by
the hash of the keys. Only the partials cross the exchange: with 1000 groups, a block of
millions of rows sends 1000 rows. The reduce groups the partials again and finalizes with
vector kernels: null handling follows ``engine.aggregate`` (``ignore_nulls=False`` and a
null give null; no values give null; std needs more than ``ddof`` values, else NaN).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.aggregate import Count, Max, Mean, Min, Std, Sum, output_names
from engine.block import python_scalar
from engine.physical.exchange.acero import group_aggregate
from engine.physical.exchange.partition import split_by_ids
from engine.physical.exchange.tasks import HashPartitioner, combine, sort_table
from engine.physical.transform import Step, TaskInfo

_KINDS = (Count, Sum, Min, Max, Mean, Std)
# Python numbers passed to a kernel become scalars through pa.scalar, which imports pandas.
_ZERO = python_scalar(0.0)


def supports_partials(aggs: Sequence[Any]) -> bool:
    """Whether every aggregation is a built-in this module merges (not a user subclass)."""
    return bool(aggs) and all(type(a) in _KINDS for a in aggs)


def _source(table: pa.Table, agg: Any) -> pa.ChunkedArray:
    column = agg._column(table)  # checks the column and its type; decodes dictionaries
    if isinstance(agg, (Sum, Mean, Std)) and pa.types.is_decimal(column.type):
        column = column.cast(pa.float64())
    return column


def partial_table(table: pa.Table, keys: Sequence[str], aggs: Sequence[Any]) -> pa.Table:
    """One row per group of ``table``: the keys, then ``a<i>_n`` (valid values),
    ``a<i>_t`` (rows) and the partial columns of each aggregation."""
    columns: dict[str, Any] = {k: table.column(k) for k in keys}
    specs: list[tuple[str, str, Any]] = []
    names: list[str] = []
    for i, agg in enumerate(aggs):
        on = agg._target_col_name
        if on is None:  # Count(): rows
            columns[f"c{i}"] = pa.nulls(table.num_rows, pa.int8())
            specs.append((f"c{i}", "count", pc.CountOptions("all")))
            names.append(f"a{i}_t")
            continue
        columns[f"c{i}"] = _source(table, agg)
        specs += [(f"c{i}", "count", pc.CountOptions("only_valid")),
                  (f"c{i}", "count", pc.CountOptions("all"))]
        names += [f"a{i}_n", f"a{i}_t"]
        if isinstance(agg, (Sum, Mean)):
            specs.append((f"c{i}", "sum", pc.ScalarAggregateOptions(min_count=0)))
            names.append(f"a{i}_s")
        elif isinstance(agg, (Min, Max)):
            specs.append((f"c{i}", "min" if isinstance(agg, Min) else "max", None))
            names.append(f"a{i}_v")
        elif isinstance(agg, Std):
            specs += [(f"c{i}", "mean", None),
                      (f"c{i}", "variance", pc.VarianceOptions(ddof=0))]
            names += [f"a{i}_m", f"a{i}_q"]
    result = _group(columns, keys, specs, names)
    for i, agg in enumerate(aggs):  # M2 = variance * n (0 for a group without values)
        if isinstance(agg, Std):
            n = pc.cast(result.column(f"a{i}_n"), pa.float64())
            m2 = pc.fill_null(pc.multiply(result.column(f"a{i}_q"), n), _ZERO)
            result = result.set_column(result.column_names.index(f"a{i}_q"), f"a{i}_q", m2)
    return result


def _check_keys(table: pa.Table, keys: Sequence[str]) -> None:
    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise ValueError(f"groupby: key column(s) {missing} not found; the dataset has "
                         f"columns {table.column_names}")


class PartialGroupsStep(Step):
    """The partial aggregation as the last step of the upstream map task (the planner
    appends it there): each block becomes its partial rows as soon as it is produced, so
    the task yields one small table of partials instead of its blocks, which then never
    reach the store. Partials of one group from several blocks stay separate rows: the
    reduce merges them all."""

    def __init__(self, keys: Sequence[str], aggs: Sequence[Any]) -> None:
        self.keys = list(keys)
        self.aggs = list(aggs)

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        partials: list[pa.Table] = []
        empty: pa.Table | None = None
        for table in blocks:
            if not table.num_rows:
                empty = empty if empty is not None else table
                continue
            _check_keys(table, self.keys)
            partials.append(partial_table(table, self.keys, self.aggs))
        if partials:
            yield partials[0] if len(partials) == 1 else pa.concat_tables(partials)
        elif empty is not None:
            yield empty.slice(0, 0)


class PartialAggregateMap:
    """Map task: partial aggregates of a bundle, cut into hash partitions of the keys.
    With ``partials_in`` the bundle already holds partial rows (``PartialGroupsStep``
    ran upstream): they are only partitioned."""

    def __init__(self, keys: Sequence[str], aggs: Sequence[Any], num_partitions: int,
                 partials_in: bool = False) -> None:
        self.keys = list(keys)
        self.aggs = list(aggs)
        self.num_partitions = num_partitions
        self.partials_in = partials_in

    def __call__(self, tables: list[pa.Table], seqs: Sequence[int] = ()) -> \
            Iterator[pa.Table]:
        table = combine(tables)
        if table is None or not table.num_rows:  # no groups (and no key check, as Ray)
            for _ in range(self.num_partitions):
                yield pa.table({})
            return
        _check_keys(table, self.keys)
        partials = table if self.partials_in else partial_table(table, self.keys, self.aggs)
        ids = HashPartitioner(self.keys).ids(partials, self.num_partitions, 0)
        yield from split_by_ids(partials, ids, self.num_partitions)


def _merged(partials: pa.Table, keys: Sequence[str], aggs: Sequence[Any]) -> pa.Table:
    """Partials of the same group summed, min-ed or max-ed into one row per group."""
    columns: dict[str, Any] = {k: partials.column(k) for k in keys}
    specs: list[tuple[str, str]] = []
    names: list[str] = []
    for i, agg in enumerate(aggs):
        parts = ["t"] if agg._target_col_name is None else ["n", "t"]
        if isinstance(agg, (Sum, Mean)):
            parts.append("s")
        elif isinstance(agg, (Min, Max)):
            parts.append("v")
        elif isinstance(agg, Std):
            n = pc.cast(partials.column(f"a{i}_n"), pa.float64())
            mean = pc.fill_null(partials.column(f"a{i}_m"), _ZERO)
            columns[f"a{i}_w"] = pc.multiply(n, mean)  # n * mean
            columns[f"a{i}_ww"] = pc.multiply(pc.multiply(n, mean), mean)  # n * mean^2
            specs += [(f"a{i}_w", "sum"), (f"a{i}_ww", "sum")]
            names += [f"a{i}_w", f"a{i}_ww"]
            parts.append("q")
        for part in parts:
            name = f"a{i}_{part}"
            columns[name] = partials.column(name)
            func = {"v": "min" if isinstance(agg, Min) else "max"}.get(part, "sum")
            specs.append((name, func))
            names.append(name)
    return _group(columns, keys, specs, names)


def _group(columns: dict[str, Any], keys: Sequence[str], specs: list[Any],
           names: list[str]) -> pa.Table:
    """``group_by(keys).aggregate(specs)`` with the aggregates named ``names``. Keys are
    renamed ``__k<i>`` for the call, so no key name meets an aggregate's."""
    temp = {f"__k{j}": columns[k] for j, k in enumerate(keys)}
    temp |= {n: c for n, c in columns.items() if n not in keys}
    aggregations = [(spec[0], spec[1], spec[2] if len(spec) > 2 else None, f"__a{i}")
                    for i, spec in enumerate(specs)]
    grouped = group_aggregate(pa.table(temp), list(temp)[:len(keys)], aggregations)
    return pa.Table.from_arrays(grouped.columns, names=[*keys, *names])


def _null_unless_valid(values: Any, agg: Any, n: Any, t: Any) -> Any:
    invalid = pc.equal(n, python_scalar(0))
    if not agg._ignore_nulls:
        invalid = pc.or_(invalid, pc.less(n, t))
    return pc.if_else(invalid, pa.nulls(1, values.type)[0], values)


def finalize(merged: pa.Table, keys: Sequence[str], aggs: Sequence[Any]) -> pa.Table:
    """The result rows: the keys, then one column per aggregation (Ray Data's names)."""
    out: dict[str, Any] = {k: merged.column(k) for k in keys}
    for i, (agg, name) in enumerate(zip(aggs, output_names(list(aggs)), strict=True)):
        t = merged.column(f"a{i}_t")
        if agg._target_col_name is None:
            out[name] = t
            continue
        n = merged.column(f"a{i}_n")
        if isinstance(agg, Count):
            out[name] = n if agg._ignore_nulls else t
        elif isinstance(agg, Sum):
            out[name] = _null_unless_valid(merged.column(f"a{i}_s"), agg, n, t)
        elif isinstance(agg, (Min, Max)):
            out[name] = _null_unless_valid(merged.column(f"a{i}_v"), agg, n, t)
        elif isinstance(agg, Mean):
            mean = pc.divide(pc.cast(merged.column(f"a{i}_s"), pa.float64()),
                             pc.cast(n, pa.float64()))
            out[name] = _null_unless_valid(mean, agg, n, t)
        else:  # Std: M2 = sum(M2_i) + sum(n_i mean_i^2) - N mean^2 (Chan et al.)
            nf = pc.cast(n, pa.float64())
            mean = pc.divide(merged.column(f"a{i}_w"), nf)
            m2 = pc.subtract(pc.add(merged.column(f"a{i}_q"), merged.column(f"a{i}_ww")),
                             pc.multiply(pc.multiply(mean, mean), nf))
            m2 = pc.max_element_wise(m2, _ZERO)
            dof = pc.subtract(nf, python_scalar(float(agg._ddof)))
            std = pc.if_else(pc.greater(dof, _ZERO), pc.sqrt(pc.divide(m2, dof)),
                             python_scalar(float("nan")))
            out[name] = _null_unless_valid(std, agg, n, t)
    return pa.table(out)


class PartialAggregateReduce:
    """Reduce task: merge one partition's partials and finalize, sorted by the keys."""

    def __init__(self, keys: Sequence[str], aggs: Sequence[Any]) -> None:
        self.keys = list(keys)
        self.aggs = list(aggs)

    def __call__(self, parts: list[pa.Table], index: int, extra: Any = None) -> \
            Iterator[pa.Table]:
        partials = combine(parts)
        if partials is None or not partials.num_rows:
            return
        result = finalize(_merged(partials, self.keys, self.aggs), self.keys, self.aggs)
        yield sort_table(result, [(k, "ascending") for k in self.keys])
