"""Errors through the public API: a UDF that raises (in a task, in an actor, in its
constructor), a UDF that returns something that is not a batch or row, and bad arguments.

A UDF failure surfaces as an error that is both ``engine.UserCodeError`` and an instance of
the original exception type, with its message, the UDF's own traceback (its source line)
and the operator's name. Bad arguments fail eagerly with ``ValueError``/``TypeError`` naming
the argument. After every test the cluster must still run a pipeline.

Ray Data 2.60, for comparison: its UDF errors are ``RayTaskError(UserCodeException)``, not
instances of the original type; it silently yields nothing for ``iter_batches(batch_size=0)``,
ignores ``fn_constructor_kwargs`` given with a function, accepts ``limit(-1)``, and hangs on
``num_cpus`` the cluster cannot give. The engine does better in each case.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import engine as ed
from engine.errors import ResourceUnavailableError, UDFOutputError


def _plus_one(batch):
    return {"id": batch["id"] + 1}


@pytest.fixture(autouse=True)
def cluster_still_works():
    """After each error, the same cluster runs a fresh pipeline correctly."""
    yield
    assert ed.range(20, override_num_blocks=2).map_batches(_plus_one).sum("id") == 210


def _source_line(fn) -> str:
    """The line of ``fn`` that raises, as a traceback quotes it."""
    import inspect

    lines, _ = inspect.getsourcelines(fn)
    return next(line.strip() for line in lines if line.strip().startswith("raise "))


# ============================================================================ UDFs that raise


def failing_udf(batch):
    raise ValueError("boom from the UDF")


def test_task_udf_error_is_typed_and_names_the_operator():
    with pytest.raises(ValueError, match="boom from the UDF") as info:
        ed.range(10).map_batches(failing_udf).take_all()
    err = info.value
    assert isinstance(err, ed.UserCodeError) and isinstance(err, ed.EngineError)
    assert "MapBatches(failing_udf)" in err.operator
    assert "MapBatches(failing_udf)" in str(err)
    tb = err.remote_traceback
    assert __file__ in tb and "in failing_udf" in tb
    assert _source_line(failing_udf) in tb  # 'raise ValueError("boom from the UDF")'
    assert tb.rstrip().endswith("ValueError: boom from the UDF")
    assert "engine/physical" not in tb and "engine/runtime" not in tb  # internals trimmed


def test_udf_pickled_by_value_keeps_its_file_and_source_line():
    # A nested function is shipped by value; cloudpickle alone would name its file
    # "<dynamic-code>" and quote no source.
    def nested_udf(batch):
        raise RuntimeError("nested failure")

    with pytest.raises(RuntimeError, match="nested failure") as info:
        ed.range(5).map_batches(nested_udf).take_all()
    tb = info.value.remote_traceback
    assert "<dynamic-code>" not in tb
    assert __file__ in tb and _source_line(nested_udf) in tb


class ExplodingModel:
    def __init__(self):
        self.ready = True

    def __call__(self, batch):
        raise KeyError("no such feature")


def test_actor_udf_error():
    with pytest.raises(KeyError) as info:
        ed.range(10).map_batches(ExplodingModel, concurrency=1).take_all()
    err = info.value
    assert isinstance(err, ed.UserCodeError)
    assert "MapBatches(ExplodingModel)" in err.operator and "no such feature" in str(err)
    assert _source_line(ExplodingModel.__call__) in err.remote_traceback


class UnbuildableModel:
    def __init__(self, path):
        raise FileNotFoundError(f"weights not found at {path}")

    def __call__(self, batch):
        return batch


def test_actor_constructor_error():
    with pytest.raises(FileNotFoundError, match="weights not found at /models/x") as info:
        ed.range(10).map_batches(UnbuildableModel, fn_constructor_args=("/models/x",),
                                 concurrency=2).take_all()
    assert "MapBatches(UnbuildableModel)" in info.value.operator
    assert _source_line(UnbuildableModel.__init__) in info.value.remote_traceback


def bad_row(row):
    raise ArithmeticError("bad row")


@pytest.mark.parametrize(("make", "operator"), [
    (lambda ds: ds.map(bad_row), "Map(bad_row)"),
    (lambda ds: ds.flat_map(bad_row), "FlatMap(bad_row)"),
    (lambda ds: ds.filter(bad_row), "Filter(bad_row)"),
    (lambda ds: ds.map_batches(_plus_one).map(bad_row), "Map(bad_row)"),
])
def test_row_udf_errors_name_their_operator(make, operator):
    with pytest.raises(ArithmeticError, match="bad row") as info:
        make(ed.range(6)).take_all()
    assert operator in info.value.operator and operator in str(info.value)


class CodedError(Exception):
    """An exception whose constructor takes the user's own arguments."""

    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")
        self.code = code


def raise_coded(batch):
    raise CodedError(42, "upstream refused")


def test_exception_with_custom_constructor_survives():
    # Building the driver-side error once called CodedError.__init__(message) and crashed
    # the executor with an unrelated TypeError.
    with pytest.raises(CodedError, match="42: upstream refused") as info:
        ed.range(4).map_batches(raise_coded).take_all()
    assert isinstance(info.value, ed.UserCodeError)


def raise_os_error(batch):
    raise FileNotFoundError(2, "missing", "/data/part-0")


def test_os_error_subclass_keeps_its_type():
    with pytest.raises(FileNotFoundError, match="missing") as info:
        ed.range(4).map_batches(raise_os_error).take_all()
    assert isinstance(info.value, OSError) and isinstance(info.value, ed.UserCodeError)


def test_user_code_error_pickles_with_its_types():
    with pytest.raises(ValueError) as info:
        ed.range(3).map_batches(failing_udf).take_all()
    again = pickle.loads(pickle.dumps(info.value))
    assert isinstance(again, ValueError) and isinstance(again, ed.UserCodeError)
    assert again.operator == info.value.operator
    assert again.remote_traceback == info.value.remote_traceback


def test_error_while_iterating_batches():
    with pytest.raises(ValueError, match="boom from the UDF"):
        for _ in ed.range(100, override_num_blocks=4).map_batches(failing_udf).iter_batches(
                batch_size=10):
            pass


# ============================================================================ non-batch returns


def returns_int(batch):
    return 1


def returns_list(batch):
    return [1, 2]


def returns_none(batch):
    return None


def returns_array(batch):
    return batch["id"] * 2


@pytest.mark.parametrize(("udf", "type_name"), [
    (returns_int, "int"), (returns_list, "list"), (returns_none, "NoneType"),
    (returns_array, "ndarray")])
def test_map_batches_returning_a_non_batch(udf, type_name):
    with pytest.raises(UDFOutputError) as info:
        ed.range(10).map_batches(udf).take_all()
    err = info.value
    # a TypeError by nature, a ValueError as in Ray Data: either `except` catches it
    assert isinstance(err, TypeError) and isinstance(err, ValueError)
    assert isinstance(err, ed.UserCodeError)
    assert f"map_batches UDF '{udf.__name__}' must return a batch" in str(err)
    assert f"got {type_name}" in str(err)
    assert f"MapBatches({udf.__name__})" in err.operator


def test_map_batches_returning_a_scalar_column():
    with pytest.raises(UDFOutputError, match="returned column 'x' as a scalar"):
        ed.range(10).map_batches(lambda b: {"x": 1}).take_all()


def test_map_batches_returning_ragged_columns():
    with pytest.raises(ValueError, match="'a' has 10 rows, 'b' has 1"):
        ed.range(10, override_num_blocks=1).map_batches(
            lambda b: {"a": b["id"], "b": b["id"][:1]}).take_all()


@pytest.mark.parametrize(("make", "match"), [
    (lambda ds: ds.map(lambda r: 1), "map UDF '<lambda>' must return a dict per row; got int"),
    (lambda ds: ds.map(lambda r: [r]), "must return a dict per row; got list"),
    (lambda ds: ds.flat_map(lambda r: r),
     "flat_map UDF '<lambda>' must return a list of rows \\(dicts\\); got dict"),
    (lambda ds: ds.flat_map(lambda r: 3), "must return a list of rows \\(dicts\\); got int"),
    (lambda ds: ds.filter(lambda r: np.array([1, 2])),
     "filter UDF '<lambda>' must return a bool; got ndarray"),
])
def test_row_udfs_returning_the_wrong_thing(make, match):
    with pytest.raises(UDFOutputError, match=match) as info:
        make(ed.range(5)).take_all()
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


# ============================================================================ bad arguments


class Identity:
    def __call__(self, batch):
        return batch


def _identity(batch):
    return batch


@pytest.mark.parametrize(("call", "error", "match"), [
    # batch formats and sizes
    (lambda ds: ds.map_batches(_identity, batch_format="bad"), ValueError,
     r"batch_format must be one of \['default', 'numpy', 'pandas', 'pyarrow'\] or None, "
     r"got 'bad'"),
    (lambda ds: ds.take_batch(3, batch_format="dict"), ValueError, "got 'dict'"),
    (lambda ds: list(ds.iter_batches(batch_format="bad")), ValueError, "got 'bad'"),
    (lambda ds: ds.map_batches(_identity, batch_size=0), ValueError,
     "map_batches: batch_size must be a positive int or None; got 0"),
    (lambda ds: ds.map_batches(_identity, batch_size=-1), ValueError, "got -1"),
    (lambda ds: ds.map_batches(_identity, batch_size=2.5), ValueError, "got 2.5"),
    (lambda ds: ds.map_batches(_identity, batch_size="x"), ValueError, "got 'x'"),
    (lambda ds: list(ds.iter_batches(batch_size=0)), ValueError,
     "batch_size must be a positive integer or None; got 0"),
    (lambda ds: ds.take_batch(0), ValueError, "take_batch: batch_size must be a positive"),
    (lambda ds: ds.take_batch(-1), ValueError, "take_batch: batch_size .* got -1"),
    # functions, classes and compute
    (lambda ds: ds.map_batches(_identity, concurrency=(1, 2)), ValueError,
     r"concurrency=\(1, 2\) \(a tuple\) needs a callable class"),
    (lambda ds: ds.map_batches(_identity, fn_constructor_args=(1,)), ValueError,
     "map_batches: fn_constructor_args can only be given with a callable class"),
    (lambda ds: ds.map_batches(_identity, fn_constructor_kwargs={"a": 1}), ValueError,
     "map_batches: fn_constructor_kwargs can only be given with a callable class"),
    (lambda ds: ds.map(lambda r: r, fn_constructor_args=(1,)), ValueError,
     "map: fn_constructor_args can only be given"),
    (lambda ds: ds.filter(lambda r: True, fn_constructor_kwargs={}), ValueError,
     "filter: fn_constructor_kwargs can only be given"),
    (lambda ds: ds.map_batches(_identity, compute=ed.ActorPoolStrategy(size=1)), ValueError,
     "a plain function cannot run on an actor pool"),
    (lambda ds: ds.map_batches(Identity, compute=ed.TaskPoolStrategy()), ValueError,
     "the callable class Identity needs an actor pool"),
    (lambda ds: ds.map_batches(Identity, concurrency=0), ValueError,
     "concurrency must be at least 1; got 0"),
    (lambda ds: ds.map_batches(Identity, concurrency=(2, 1)), ValueError,
     r"concurrency=\(2, 1\): need 1 <= min <= max"),
    (lambda ds: ds.map_batches(Identity, concurrency="2"), ValueError,
     "concurrency must be an int or a tuple of ints; got '2'"),
    (lambda ds: ds.map_batches(Identity, concurrency=1.5), ValueError, "got 1.5"),
    (lambda ds: ds.map_batches(3), TypeError,
     "map_batches needs a function or callable class; got int"),
    (lambda ds: ds.map("f"), TypeError, "map needs a function or callable class; got str"),
    (lambda ds: ds.flat_map(None), TypeError, "flat_map needs a function"),
    (lambda ds: ds.map_batches(_identity, fn_args=5), TypeError,
     "map_batches: fn_args must be a tuple or list; got int"),
    (lambda ds: ds.map(lambda r: r, fn_kwargs=[1]), TypeError,
     "map: fn_kwargs must be a dict; got list"),
    (lambda ds: ds.filter(), ValueError, "Exactly one of 'fn' or 'expr' must be provided"),
    (lambda ds: ds.limit(-1), ValueError, "limit must be a non-negative int; got -1"),
    (lambda ds: ds.take_all(limit=3), ValueError, "more than the given limit of 3"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(ed.range(10))


@pytest.mark.parametrize(("make", "match"), [
    (lambda: ed.range(-1), "range needs a non-negative integer n; got -1"),
    (lambda: ed.range(10, override_num_blocks=0), "override_num_blocks must be positive"),
    (lambda: ed.from_items([1], override_num_blocks=0), "override_num_blocks must be positive"),
])
def test_bad_source_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_impossible_num_cpus_fails_when_planned():
    ds = ed.range(10).map_batches(_identity, num_cpus=10_000)
    with pytest.raises(ResourceUnavailableError, match=r"num_cpus=10000\.0") as info:
        ds.take_all()
    assert isinstance(info.value, ValueError)
    assert "MapBatches(_identity)" in str(info.value)
