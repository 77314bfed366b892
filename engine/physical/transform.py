"""The map transformer: what a map task (or an actor-pool call) runs on a worker.

A :class:`MapTransformer` is a picklable chain of steps, each turning an iterator of blocks
into an iterator of blocks; fused logical maps become one chain. The last stage shapes the
output: small outputs are coalesced up to ``target_min_block_size`` and large ones split to
``target_max_block_size`` as they are produced, so a task streams bounded blocks.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.block import (
    batch_to_table,
    concat_tables,
    number_array,
    rebatch,
    rows_to_table,
    split_by_size,
    table_to_batch,
    table_to_rows,
    validate_batch_format,
)
from engine.context import DataContext
from engine.errors import UDFOutputError
from engine.physical.async_udf import (
    BATCH_MAX_CONCURRENCY,
    ROW_MAX_CONCURRENCY,
    is_async_udf,
    ordered_async_map,
)

if TYPE_CHECKING:
    import asyncio


class Step:
    """One stage of a transform chain."""

    def init(self) -> None:
        """Prepare state that must live on the worker (e.g. construct a UDF class)."""

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        raise NotImplementedError


class TaskInfo:
    """Per-task facts steps may need (the write step names its files with them)."""

    def __init__(self, task_idx: int, attempt: int = 0) -> None:
        self.task_idx = task_idx
        self.attempt = attempt


def udf_display_name(fn: Any) -> str:
    if inspect.isclass(fn):
        return fn.__name__
    name = getattr(fn, "__name__", None)
    if name is None:
        name = type(fn).__name__
    return str(name)


def _writable(batch: Any) -> Any:
    """Copy read-only numpy columns so a UDF may modify its batch in place."""
    if isinstance(batch, dict):
        return {k: (np.array(v) if isinstance(v, np.ndarray) and not v.flags.writeable else v)
                for k, v in batch.items()}
    return batch


class _UdfMixin:
    fn: Any
    fn_constructor_args: tuple[Any, ...]
    fn_constructor_kwargs: dict[str, Any]
    _callable: Any = None

    def init(self) -> None:
        if inspect.isclass(self.fn):
            self._callable = self.fn(*self.fn_constructor_args, **self.fn_constructor_kwargs)
        else:
            self._callable = self.fn

    def callable(self) -> Callable[..., Any]:
        if self._callable is None:
            self.init()
        return self._callable  # type: ignore[no-any-return]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_callable"] = None  # constructed on the worker
        state.pop("_loop", None)
        return state

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop async UDF calls run on (one per step, made on the worker)."""
        import asyncio  # here: only async UDFs need it (15 ms of every worker's start)

        loop = self.__dict__.get("_loop")
        if loop is None or loop.is_closed():
            loop = self.__dict__["_loop"] = asyncio.new_event_loop()
        return loop  # type: ignore[no-any-return]


class BatchStep(_UdfMixin, Step):
    """``map_batches``: call the UDF on batches of ``batch_size`` rows."""

    def __init__(self, fn: Any, batch_size: int | None, batch_format: str,
                 zero_copy_batch: bool, fn_args: tuple[Any, ...], fn_kwargs: dict[str, Any],
                 fn_constructor_args: tuple[Any, ...] = (),
                 fn_constructor_kwargs: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.batch_size = batch_size
        self.batch_format = validate_batch_format(batch_format)
        self.zero_copy_batch = zero_copy_batch
        self.fn_args = fn_args
        self.fn_kwargs = fn_kwargs
        self.fn_constructor_args = fn_constructor_args
        self.fn_constructor_kwargs = fn_constructor_kwargs or {}
        self.udf_name = udf_display_name(fn)

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        fn = self.callable()
        bind_task = getattr(fn, "bind_task", None)  # engine-internal UDFs seeded per task
        if bind_task is not None:
            fn = bind_task(ctx.task_idx)
        what = f"map_batches UDF {self.udf_name!r}"
        if is_async_udf(fn):
            batches = (self._batch_of(t) for t in rebatch(blocks, self.batch_size))
            for outputs in ordered_async_map(self.event_loop(), fn, batches,
                                             BATCH_MAX_CONCURRENCY, self.fn_args,
                                             self.fn_kwargs):
                for item in outputs:
                    yield batch_to_table(item, what)
            return
        for table in rebatch(blocks, self.batch_size):
            batch = table_to_batch(table, self.batch_format)
            if not self.zero_copy_batch:
                batch = _writable(batch)
            out = fn(batch, *self.fn_args, **self.fn_kwargs)
            del table, batch  # neither held while the next block is read
            if isinstance(out, Iterator):
                for item in out:
                    yield batch_to_table(item, what)
                    del item
            else:
                yield batch_to_table(out, what)
            del out

    def _batch_of(self, table: pa.Table) -> Any:
        batch = table_to_batch(table, self.batch_format)
        return batch if self.zero_copy_batch else _writable(batch)


class RowStep(_UdfMixin, Step):
    """``map`` (one row in, one row out) or ``flat_map`` (one row in, a list out)."""

    def __init__(self, fn: Any, flat: bool, fn_args: tuple[Any, ...] = (),
                 fn_kwargs: dict[str, Any] | None = None,
                 fn_constructor_args: tuple[Any, ...] = (),
                 fn_constructor_kwargs: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.flat = flat
        self.fn_args = fn_args
        self.fn_kwargs = fn_kwargs or {}
        self.fn_constructor_args = fn_constructor_args
        self.fn_constructor_kwargs = fn_constructor_kwargs or {}
        self.udf_name = udf_display_name(fn)

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        fn = self.callable()
        what = f"{'flat_map' if self.flat else 'map'} UDF {self.udf_name!r}"
        if is_async_udf(fn):
            yield from self._apply_async(fn, blocks, what)
            return
        for table in blocks:
            if not table.num_rows:
                continue
            out: list[Any] = []
            for row in table_to_rows(table):
                result = fn(row, *self.fn_args, **self.fn_kwargs)
                if self.flat:
                    if isinstance(result, (dict, str, bytes)) or not isinstance(result, Iterable):
                        raise UDFOutputError(f"{what} must return a list of rows (dicts); "
                                             f"got {type(result).__name__}")
                    out.extend(result)
                else:
                    out.append(result)
            if out:
                yield rows_to_table(out, what)

    def _apply_async(self, fn: Any, blocks: Iterator[Any], what: str) -> Iterator[pa.Table]:
        """Rows of a block through an async UDF, many at once; a block out per block in."""
        for table in blocks:
            if not table.num_rows:
                continue
            out: list[Any] = []
            for results in ordered_async_map(self.event_loop(), fn, table_to_rows(table),
                                             ROW_MAX_CONCURRENCY, self.fn_args,
                                             self.fn_kwargs):
                if self.flat:
                    out.extend(results)  # an async generator's rows
                elif len(results) != 1 or isinstance(results[0], list):
                    raise UDFOutputError(f"{what} must return one row (a dict) per call")
                else:
                    out.append(results[0])
            if out:
                yield rows_to_table(out, what)


class FilterStep(_UdfMixin, Step):
    """``filter``: by a row predicate function, or vectorized by an expression."""

    def __init__(self, fn: Any = None, expr: Any = None, fn_args: tuple[Any, ...] = (),
                 fn_kwargs: dict[str, Any] | None = None,
                 fn_constructor_args: tuple[Any, ...] = (),
                 fn_constructor_kwargs: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.expr = expr
        self.fn_args = fn_args
        self.fn_kwargs = fn_kwargs or {}
        self.fn_constructor_args = fn_constructor_args
        self.fn_constructor_kwargs = fn_constructor_kwargs or {}
        self.udf_name = udf_display_name(fn) if fn is not None else repr(expr)

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        if self.expr is not None:
            from engine.expressions import evaluate_predicate

            for table in blocks:
                if not table.num_columns and not table.num_rows:
                    yield table  # `from_items([])`: no rows and no schema to filter on
                    continue
                yield evaluate_predicate(self.expr, table)
            return
        fn = self.callable()
        for table in blocks:
            if not table.num_rows:
                continue
            mask = []
            for row in table_to_rows(table):
                keep = fn(row, *self.fn_args, **self.fn_kwargs)
                try:  # any truthy value keeps the row, as in Ray Data (`r["id"] % 2` works)
                    mask.append(bool(keep))
                except (TypeError, ValueError) as exc:  # e.g. a numpy array of several values
                    raise UDFOutputError(f"filter UDF {self.udf_name!r} must return a bool; "
                                         f"got {type(keep).__name__} ({exc})") from exc
            yield table.filter(number_array(np.array(mask, dtype=np.bool_)))


class LimitStep(Step):
    """Stop a task once it produced ``limit`` rows (a pushed-down ``limit``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        remaining = self.limit
        for table in blocks:
            if remaining <= 0:
                return
            if table.num_rows > remaining:
                table = table.slice(0, remaining)
            remaining -= table.num_rows
            yield table


class ReadStep(Step):
    """The first step of a read stage: its inputs are read tasks, not blocks."""

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        for read_task in blocks:
            yield from read_task()


class MapTransformer:
    """A chain of steps plus output shaping; called as ``transformer(inputs, task_idx)``."""

    def __init__(self, steps: list[Step], target_max_block_size: int,
                 target_min_block_size: int, shape_output: bool = True,
                 context: DataContext | None = None) -> None:
        self.steps = steps
        self.target_max_block_size = target_max_block_size
        self.target_min_block_size = target_min_block_size
        self.shape_output = shape_output
        # The driver's settings, made current in the worker that runs the transform (what
        # Ray Data does too), so conversions there follow them (pandas dtypes...).
        self.context = context
        self._driver_pid = os.getpid()
        self._initialized = False

    def init(self) -> None:
        """Construct UDF classes (once per worker or actor)."""
        for step in self.steps:
            step.init()
        self._initialized = True

    def __call__(self, inputs: list[Any], task_idx: int = 0) -> Iterator[Any]:
        if self.context is not None and os.getpid() != self._driver_pid:
            DataContext._set_current(self.context)
        if not self._initialized:
            self.init()
        ctx = TaskInfo(task_idx)
        stream: Iterator[Any] = iter(inputs)
        for step in self.steps:
            stream = step.apply(stream, ctx)
        if not self.shape_output:
            yield from stream
            return
        yield from self._shape(stream)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_initialized"] = False
        return state

    def _shape(self, stream: Iterator[Any]) -> Iterator[Any]:
        pending: list[pa.Table] = []
        pending_bytes = 0
        emitted = False
        empty: pa.Table | None = None
        for table in stream:
            if not isinstance(table, pa.Table):
                yield table  # a value (write result, partial aggregate)
                emitted = True
                continue
            if not table.num_rows:
                empty = empty or table
                continue
            pending.append(table)
            pending_bytes += table.nbytes
            del table  # held by ``pending`` only, which lets go once it is yielded
            if pending_bytes >= self.target_min_block_size:
                yield from self._coalesced(pending)
                pending, pending_bytes, emitted = [], 0, True
        if pending:
            yield from self._coalesced(pending)
        elif not emitted and empty is not None:
            yield empty  # keeps the schema known for an all-empty result

    def _coalesced(self, tables: list[pa.Table]) -> Iterator[pa.Table]:
        """``tables`` as blocks of at most the target size; tables whose schemas cannot be
        merged (tensors of different shapes: images of different sizes) stay apart."""
        try:
            merged = [concat_tables(tables)]
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            runs: list[list[pa.Table]] = []
            for table in tables:
                if runs and runs[-1][0].schema.equals(table.schema):
                    runs[-1].append(table)
                else:
                    runs.append([table])
            merged = [concat_tables(run) for run in runs]
        for table in merged:
            yield from split_by_size(table, self.target_max_block_size)


class MapActor:
    """The object an actor-pool actor holds: a transformer whose UDF classes it built once."""

    def __init__(self, transformer: MapTransformer) -> None:
        self.transformer = transformer
        transformer.init()


def call_map_actor(actor: MapActor, inputs: list[Any], task_idx: int = 0) -> Iterator[Any]:
    """The function an actor-pool call runs on its actor."""
    return actor.transformer(inputs, task_idx)


class PruneColumnsStep(Step):
    """Keep the listed columns, zero-copy, if the block has them all (see
    ``logical.PruneColumns``)."""

    def __init__(self, keep: tuple[str, ...]) -> None:
        self.keep = keep

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        for table in blocks:
            present = set(table.column_names)
            yield table.select(list(self.keep)) if present.issuperset(self.keep) else table


class ProjectStep(Step):
    """Column operations on whole blocks: add (expressions, batch UDFs), rename, drop,
    select. Each names the missing column when one is absent."""

    def __init__(self, select: tuple[str, ...] | None, drop: tuple[str, ...],
                 rename: tuple[tuple[str, str], ...], exprs: tuple[tuple[str, Any], ...],
                 udf_columns: tuple[tuple[str, Any, str], ...]) -> None:
        self.select = select
        self.drop = drop
        self.rename = dict(rename)
        self.exprs = exprs
        self.udf_columns = udf_columns

    def init(self) -> None:
        # callable-class UDFs in the expressions are built once per worker or actor
        if self.exprs:
            from engine.expressions import class_udfs

            for _, expr in self.exprs:
                for class_udf in class_udfs(expr):
                    class_udf.init()

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        for table in blocks:
            yield self.project_block(table)

    def project_block(self, table: pa.Table) -> pa.Table:
        """``project``, except that an empty block without columns (``from_items([])``: no
        schema to check against) passes as it is; as in Ray Data, ``select_columns`` of such
        a dataset gives an empty dataset. Any other block is checked as written."""
        if not table.num_rows and not table.num_columns:
            return table
        return self.project(table)

    def project(self, table: pa.Table) -> pa.Table:
        if self.exprs:
            from engine.expressions import evaluate

            # every expression reads the input block (``with_columns`` is one projection)
            values = [(name, evaluate(expr, table)) for name, expr in self.exprs]
            for name, column in values:
                table = _set_column(table, name, column)
        for name, fn, batch_format in self.udf_columns:
            batch = table_to_batch(table, batch_format)
            values = fn(batch)
            if hasattr(values, "to_numpy") and not isinstance(values, (pa.Array,
                                                                        pa.ChunkedArray)):
                values = values.to_numpy()
            from engine.block import numpy_to_column

            column = numpy_to_column(values, name)
            if len(column) != table.num_rows:
                raise ValueError(f"add_column function for {name!r} returned {len(column)} "
                                 f"values for a batch of {table.num_rows} rows")
            table = _set_column(table, name, column)
        if self.rename:
            _require(table, self.rename.keys(), "rename_columns")
            names = [self.rename.get(c, c) for c in table.column_names]
            clashes = sorted({n for n in names if names.count(n) > 1})
            if clashes:
                raise ValueError(f"rename_columns: the new name(s) {clashes} are already "
                                 f"taken; the dataset has columns {table.column_names}")
            table = table.rename_columns(names)
        if self.drop:
            _require(table, self.drop, "drop_columns")
            table = table.drop_columns(list(self.drop))
        if self.select is not None:
            _require(table, self.select, "select_columns")
            table = table.select(list(self.select))
        return table


def _require(table: pa.Table, names: Iterable[str], what: str) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ValueError(f"{what}: column(s) {missing} not found; the dataset has columns "
                         f"{table.column_names}")


def _set_column(table: pa.Table, name: str, values: Any) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


class WriteStep(Step):
    """Hand a task's blocks to ``datasink.write`` and yield its result with totals."""

    def __init__(self, datasink: Any) -> None:
        self.datasink = datasink

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        from engine.io.interfaces import TaskContext

        totals = {"num_rows": 0, "size_bytes": 0}

        def counted() -> Iterator[pa.Table]:
            for table in blocks:
                totals["num_rows"] += table.num_rows
                totals["size_bytes"] += table.nbytes
                yield table

        result = self.datasink.write(counted(), TaskContext(task_idx=ctx.task_idx))
        for _ in counted():  # a sink that stopped early still consumed its input
            pass
        yield WriteOutput(totals["num_rows"], totals["size_bytes"], result)


class WriteOutput:
    """What one write task returns to the driver."""

    def __init__(self, num_rows: int, size_bytes: int, write_return: Any) -> None:
        self.num_rows = num_rows
        self.size_bytes = size_bytes
        self.write_return = write_return


class PartialAggregateStep(Step):
    """Fold every block of a task into aggregation states; yield them once."""

    def __init__(self, aggs: list[Any]) -> None:
        self.aggs = aggs

    def apply(self, blocks: Iterator[Any], ctx: TaskInfo) -> Iterator[Any]:
        from engine.aggregate import accumulate_block, init_states

        states = init_states(self.aggs)
        for table in blocks:
            states = accumulate_block(self.aggs, states, table)
        yield PartialStates(states)


class PartialStates:
    """Aggregation states of one task, merged in the driver."""

    def __init__(self, states: list[Any]) -> None:
        self.states = states
