"""Column UDFs in expressions (``engine.expressions.udf``) and ``with_column``/``with_columns``.

Evaluation-level tests need no workers; the dataset tests start them (and actor pools for
callable classes). Expected values follow Ray Data 2.60's behaviour for the same calls.
"""

from __future__ import annotations

import asyncio
import pickle

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import engine as ed
from engine.datatype import DataType
from engine.errors import ResourceUnavailableError, UserCodeError
from engine.expressions import UDFExpr, can_push_down, col, evaluate, lit, udf

TABLE = pa.table({"a": [1, 2, None], "b": [10, 20, 30], "s": ["x", "yy", None]})


@udf(DataType.int64())
def add(x, y):
    return pc.add(x, y)


@pytest.fixture(autouse=True)
def _in_order(fresh_context: ed.DataContext) -> None:
    fresh_context.execution_options.preserve_order = True


# ---------------------------------------------------------------- evaluation (no workers)


def test_function_udf_builds_an_expression_usable_in_larger_ones() -> None:
    expr = add(col("a"), col("b")) * 2
    assert repr(expr) == "add(col('a'), col('b')) * lit(2)"
    assert evaluate(expr, TABLE).to_pylist() == [22, 44, None]
    assert evaluate(add(col("a") + 1, 5) > 6, TABLE).to_pylist() == [True, True, None]
    assert add.__name__ == "add"  # the decorated function keeps its name


def test_udf_receives_arrow_columns_and_python_literals() -> None:
    seen = []

    @udf(DataType.string())
    def describe(values, *, suffix):
        seen.append((type(values), suffix))
        return pc.binary_join_element_wise(values, suffix, "")

    assert evaluate(describe(col("s"), suffix="!"), TABLE).to_pylist() == ["x!", "yy!", None]
    assert seen == [(pa.ChunkedArray, "!")]

    @udf(DataType.bool())
    def member(values, options):
        seen.append(options)
        return pc.is_in(values, pa.array(options))

    assert evaluate(member(col("b"), [10, 30]), TABLE).to_pylist() == [True, False, True]
    assert seen[-1] == [10, 30]  # a list stays a list


@pytest.mark.parametrize("result", [
    lambda x: np.arange(len(x)), lambda x: pd.Series(range(len(x))),
    lambda x: pa.array(range(len(x))),
])
def test_numpy_pandas_and_arrow_results_become_the_declared_type(result) -> None:
    values = evaluate(udf(DataType.int32())(result)(col("b")), TABLE)
    assert values.type == pa.int32() and values.to_pylist() == [0, 1, 2]


@pytest.mark.parametrize(("returned", "type_name"), [({"k": 1}, "dict"), ("text", "str"),
                                                     (42, "int"), ([1, 2, 3], "list")])
def test_a_result_that_is_not_an_array_is_a_type_error(returned, type_name) -> None:
    bad = udf(DataType.int64())(lambda x: returned)
    with pytest.raises(TypeError, match=f"returned invalid type {type_name}. Expected type "
                                        r"\(pandas.Series, numpy.ndarray"):
        evaluate(bad(col("a")), TABLE)


def test_results_are_checked_against_rows_and_declared_type() -> None:
    with pytest.raises(ValueError, match="returned 1 values for a batch of 3 rows"):
        evaluate(udf(DataType.int64())(lambda x: pa.array([1]))(col("a")), TABLE)
    with pytest.raises(TypeError, match="declared return_dtype DataType\\(arrow:int64\\)"):
        evaluate(udf(DataType.int64())(lambda s: s)(col("s")), TABLE)


def test_async_function_and_async_generator_udfs() -> None:
    @udf(DataType.int64())
    async def slow_double(x):
        await asyncio.sleep(0)
        return pc.multiply(x, 2)

    @udf(DataType.int64())
    async def refine(x):
        yield pc.add(x, 1)
        yield pc.add(x, 100)  # the last yield is the value

    assert evaluate(slow_double(col("b")), TABLE).to_pylist() == [20, 40, 60]
    assert evaluate(refine(col("b")), TABLE).to_pylist() == [110, 120, 130]


def test_callable_class_is_built_on_first_use_and_keeps_state() -> None:
    built = []

    @udf(DataType.int64())
    class Counter:
        def __init__(self, start):
            built.append(start)
            self.calls = start

        def __call__(self, x):
            self.calls += 1
            return pc.add(x, self.calls)

    counter = Counter(100)
    assert built == []  # nothing is built on the driver
    expr = counter(col("b"))
    assert isinstance(expr, UDFExpr) and repr(expr) == "Counter(col('b'))"
    assert evaluate(expr, TABLE).to_pylist() == [111, 121, 131]
    assert evaluate(expr, TABLE).to_pylist() == [112, 122, 132]
    assert built == [100]
    copy = pickle.loads(cloudpickle.dumps(expr))  # an actor's copy builds its own instance
    assert evaluate(copy, TABLE).to_pylist() == [111, 121, 131]


def test_udf_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="takes a DataType"):
        udf(pa.int64())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="decorates a function or a callable class"):
        udf(DataType.int64())(5)


def test_udfs_are_never_pushed_down() -> None:
    assert not can_push_down(add(col("a"), 1) > 2, TABLE.schema)


# ---------------------------------------------------------------- through datasets


def test_with_column_udfs_and_integer_division() -> None:
    ds = ed.range(6, override_num_blocks=2)
    out = ds.with_column("x", add(col("id"), lit(10)) / 4).with_column(
        "half", (col("id") / 2).cast(DataType.float64()))
    assert out.take_all() == [{"id": i, "x": (i + 10) // 4, "half": float(i // 2)}
                              for i in range(6)]
    assert out.schema().types == [pa.int64(), pa.int64(), pa.float64()]


def test_callable_class_udfs_run_on_actors_with_constructor_arguments() -> None:
    @udf(return_dtype=DataType.int32())
    class AddOffset:
        def __init__(self, offset):
            self.offset = offset

        def __call__(self, x):
            return pc.add(x, self.offset)

    ds = ed.range(8, override_num_blocks=4)
    out = ds.with_column("p5", AddOffset(5)(col("id"))).with_column(
        "p10", AddOffset(10)(col("id")), compute=ed.ActorPoolStrategy(size=2))
    assert out.take_all() == [{"id": i, "p5": i + 5, "p10": i + 10} for i in range(8)]
    assert out.schema().types[1] == pa.int32()
    with pytest.raises(ValueError, match="needs an actor pool"):
        ds.with_column("p", AddOffset(1)(col("id")), compute=ed.TaskPoolStrategy())


def test_one_actor_keeps_its_instance_across_blocks() -> None:
    @udf(return_dtype=DataType.int64())
    class CallCounter:
        def __init__(self):
            self.calls = 0

        def __call__(self, x):
            self.calls += 1
            return pa.array([self.calls] * len(x))

    out = ed.range(8, override_num_blocks=4).with_column(
        "call", CallCounter()(col("id")), compute=ed.ActorPoolStrategy(size=1))
    calls = sorted({row["call"] for row in out.take_all()})
    assert calls == list(range(1, len(calls) + 1)) and len(calls) == 4


def test_async_callable_class_on_actors() -> None:
    @udf(return_dtype=DataType.int64())
    class AsyncScale:
        def __init__(self, factor):
            self.factor = factor
            self.lock = asyncio.Lock()  # bound to the actor's loop on first use

        async def __call__(self, x):
            async with self.lock:
                await asyncio.sleep(0)
                return pc.multiply(x, self.factor)

    out = ed.range(6, override_num_blocks=3).with_column("y", AsyncScale(3)(col("id")))
    assert [r["y"] for r in out.take_all()] == [3 * i for i in range(6)]


def test_with_columns_evaluates_every_expression_on_the_input() -> None:
    ds = ed.from_items([{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    out = ds.with_columns({"a": col("a") * 10, "c": col("a") + col("b")})
    assert out.take_all() == [{"a": 10, "b": 2, "c": 3}, {"a": 30, "b": 4, "c": 7}]
    with pytest.raises(TypeError, match="non-empty dict"):
        ds.with_columns({})
    with pytest.raises(TypeError, match="needs an expression"):
        ds.with_columns({"c": 1})


def test_udf_errors_reach_the_caller_with_their_type() -> None:
    @udf(DataType.int64())
    def boom(x):
        raise KeyError("no such thing")

    with pytest.raises(KeyError, match="no such thing") as info:
        ed.range(3).with_column("y", boom(col("id"))).materialize()
    assert isinstance(info.value, UserCodeError)
    bad = udf(DataType.int64())(lambda x: 42)
    with pytest.raises(TypeError, match="returned invalid type int"):
        ed.range(3).with_column("y", bad(col("id"))).take(1)


def test_udfs_on_empty_datasets_and_nulls() -> None:
    empty = ed.range(0).with_column("y", add(col("id"), 1))
    assert empty.take_all() == []
    rows = ed.from_items([{"a": 1}, {"a": None}]).with_column("y", add(col("a"), 1)).take_all()
    assert rows == [{"a": 1, "y": 2}, {"a": None, "y": None}]


def test_with_column_resources_are_checked_when_the_plan_is_built(
        fresh_context: ed.DataContext) -> None:
    fresh_context.execution_options.resource_limits.gpu = 0  # refused with or without a GPU
    ds = ed.range(4)
    with pytest.raises(ValueError, match="num_cpus must be non-negative"):
        ds.with_column("y", add(col("id"), 1), num_cpus=-1)
    with pytest.raises(ResourceUnavailableError, match="num_gpus=1"):
        ds.with_column("y", add(col("id"), 1), num_gpus=1).materialize()
    out = ds.with_column("y", add(col("id"), 1), num_cpus=0.5)
    assert [r["y"] for r in out.take_all()] == [1, 2, 3, 4]
