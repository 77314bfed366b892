"""GroupedData: what ``Dataset.groupby`` returns (Ray Data's ``GroupedData``).

Aggregations run as a hash exchange: every block is cut by the hash of the keys on the
workers, and each reduce task aggregates whole groups (see ``physical/exchange``).
``map_groups`` runs the UDF on each group, as tasks or on an actor pool.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engine.arguments import check_callable, check_udf_args, udf_name
from engine.block import validate_batch_format
from engine.compute import resolve_compute
from engine.logical import all_to_all as la

if TYPE_CHECKING:
    from engine.dataset import Dataset


class GroupedData:
    """Rows of a dataset grouped by ``key`` (a column, a list of columns, or ``None`` for
    one group of every row)."""

    def __init__(self, dataset: Dataset, key: str | list[str] | None,
                 num_partitions: int | None = None) -> None:
        self._dataset = dataset
        self._key = key
        self._keys: tuple[str, ...] = () if key is None else \
            ((key,) if isinstance(key, str) else tuple(key))
        self._num_partitions = num_partitions

    def __repr__(self) -> str:
        return f"GroupedData(dataset={self._dataset!r}, key={self._key!r})"

    def aggregate(self, *aggs: Any) -> Dataset:
        """One row per group: the key columns, then one column per ``AggregateFn``.

        Example: ``ds.groupby("A").aggregate(Sum("B"), Max("C"))``.
        """
        from engine.aggregate import AggregateFn

        if not aggs:
            raise ValueError("aggregate needs at least one AggregateFn")
        for agg in aggs:
            if not isinstance(agg, AggregateFn):
                raise TypeError(f"aggregate takes AggregateFn objects; got "
                                f"{type(agg).__name__}")
        self._check_keys()
        return self._dataset._with(la.Aggregate(self._dataset._dag, keys=self._keys,
                                                aggs=tuple(aggs),
                                                num_partitions=self._num_partitions))

    def _check_keys(self) -> None:
        columns = self._dataset.columns(fetch_if_missing=False)
        if columns is None:
            return
        missing = [k for k in self._keys if k not in columns]
        if missing:
            raise ValueError(f"groupby: key column(s) {missing} not found; the dataset has "
                             f"columns {columns}")

    def _aggregate_on(self, agg_cls: Any, on: str | list[str] | None,
                      **kwargs: Any) -> Dataset:
        if on is None:
            columns = self._dataset.columns() or []
            on = [c for c in columns if c not in self._keys]
        cols = [on] if isinstance(on, str) else list(on)
        return self.aggregate(*[agg_cls(c, **kwargs) for c in cols])

    def count(self) -> Dataset:
        """Rows per group, as column ``count()``."""
        from engine.aggregate import Count

        return self.aggregate(Count())

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Dataset:
        """Sum of ``on`` per group (every non-key column if ``None``), as ``sum(on)``."""
        from engine.aggregate import Sum

        return self._aggregate_on(Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Dataset:
        """Minimum of ``on`` per group, as ``min(on)``."""
        from engine.aggregate import Min

        return self._aggregate_on(Min, on, ignore_nulls=ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Dataset:
        """Maximum of ``on`` per group, as ``max(on)``."""
        from engine.aggregate import Max

        return self._aggregate_on(Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Dataset:
        """Mean of ``on`` per group, as ``mean(on)``."""
        from engine.aggregate import Mean

        return self._aggregate_on(Mean, on, ignore_nulls=ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1,
            ignore_nulls: bool = True) -> Dataset:
        """Standard deviation of ``on`` per group (``ddof`` as pandas), as ``std(on)``."""
        from engine.aggregate import Std

        return self._aggregate_on(Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    def map_groups(self, fn: Any, *, zero_copy_batch: bool = True, compute: Any = None,
                   batch_format: str | None = "default",
                   fn_args: Iterable[Any] | None = None,
                   fn_kwargs: dict[str, Any] | None = None,
                   fn_constructor_args: Iterable[Any] | None = None,
                   fn_constructor_kwargs: dict[str, Any] | None = None,
                   num_cpus: float | None = None, num_gpus: float | None = None,
                   memory: float | None = None, concurrency: Any = None,
                   **ray_remote_args: Any) -> Dataset:
        """Apply ``fn`` to each group (a whole batch in ``batch_format``: ``"default"`` is a
        pandas DataFrame, as in Ray Data) and keep the rows it returns (a batch, or an
        iterator of batches). ``fn`` may be a callable class, built once per actor
        (``concurrency``).

        Example: ``ds.groupby("A").map_groups(lambda g: {"n": [len(g["B"])]})``.
        """
        check_callable(fn, "map_groups")
        # Ray Data hands each group as a pandas DataFrame for "default" (its to_default()
        # of a table block), unlike map_batches' numpy default.
        fmt = validate_batch_format("pandas" if batch_format in ("default", "native")
                                    else batch_format)
        check_udf_args("map_groups", fn, fn_args, fn_kwargs, fn_constructor_args,
                        fn_constructor_kwargs)
        self._check_keys()
        strategy = resolve_compute(fn, compute, concurrency)
        partitioned = la.GroupPartition(self._dataset._dag, keys=self._keys,
                                        num_partitions=self._num_partitions)
        return self._dataset._with(la.MapGroups(
            partitioned, fn=fn, udf_name=udf_name(fn), keys=self._keys, batch_format=fmt,
            fn_args=tuple(fn_args or ()), fn_kwargs=dict(fn_kwargs or {}),
            fn_constructor_args=tuple(fn_constructor_args or ()),
            fn_constructor_kwargs=dict(fn_constructor_kwargs or {}), strategy=strategy,
            cpus=1.0 if num_cpus is None else float(num_cpus),
            gpus=0.0 if num_gpus is None else float(num_gpus), memory=memory))
