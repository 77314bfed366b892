"""``engine.exceptions`` and the log records of a failed execution, as Ray Data 2.60 has
them: ``UserCodeException`` (still an instance of the UDF's own exception type),
``SystemException``, ``ExecutionTimeoutError``; a failing UDF logs "Exception occurred in
user code" and a "Full stack trace:" record marked ``hide``; Ray's public module paths
import. These tests start workers. None depends on timing.
"""

from __future__ import annotations

import importlib
import logging

import pytest

import engine as ed
from engine.context import DataContext
from engine.errors import ObjectLostError, UserCodeError
from engine.exceptions import ExecutionTimeoutError, SystemException, UserCodeException
from engine.physical.failure_log import log_failure


def _divide(row: dict) -> dict:
    return {"x": 1 / 0}


@pytest.mark.parametrize("to_stdout", [True, False])
def test_user_code_error_records(to_stdout: bool, fresh_context: DataContext,
                                 caplog: pytest.LogCaptureFixture) -> None:
    fresh_context.log_internal_stack_trace_to_stdout = to_stdout
    with caplog.at_level(logging.ERROR), pytest.raises(UserCodeException) as info:
        ed.range(1).map(_divide).take_all()
    assert isinstance(info.value, ZeroDivisionError)
    assert "ZeroDivisionError" in str(info.value)
    user = [r for r in caplog.records if "Exception occurred in user code" in r.message]
    assert bool(user) == (not to_stdout)
    full = [r for r in caplog.records if r.message == "Full stack trace:"]
    assert len(full) == 1 and full[0].hide == (not to_stdout)
    assert full[0].levelno == logging.ERROR and full[0].exc_info is not None


def test_raise_original_map_exception_logs_nothing(fresh_context: DataContext,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    fresh_context.raise_original_map_exception = True
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="test error"):
        ed.range(1).map(lambda r: (_ for _ in ()).throw(ValueError("test error"))).take_all()
    assert not [r for r in caplog.records if "user code" in r.message]


def test_system_errors_are_logged_as_internal(caplog: pytest.LogCaptureFixture) -> None:
    error = ObjectLostError("block b1 is gone")
    with caplog.at_level(logging.ERROR):
        log_failure(error, DataContext())
    messages = [r.message for r in caplog.records]
    assert any("internal code" in m for m in messages)
    assert [r.hide for r in caplog.records if r.message == "Full stack trace:"] == [False]


def test_other_errors_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        log_failure(FileNotFoundError("x"), DataContext())
    assert not caplog.records


def test_public_names() -> None:
    assert UserCodeException is UserCodeError
    assert issubclass(ObjectLostError, SystemException)
    assert issubclass(ExecutionTimeoutError, TimeoutError)


@pytest.mark.parametrize("module", ["engine.exceptions", "engine.context", "engine.aggregate",
                                    "engine.datasource", "engine.datasource.datasource",
                                    "engine.datasource.datasink",
                                    "engine.datasource.partitioning",
                                    "engine.datasource.file_based_datasource",
                                    "engine.iterator", "engine.block", "engine.dataset",
                                    "engine.read_api", "engine.expressions"])
def test_ray_module_paths_import(module: str) -> None:
    importlib.import_module(module)


def test_datasource_names() -> None:
    from engine.datasource import Datasink, Datasource, Partitioning, ReadTask, SaveMode

    assert Datasource is ed.Datasource and Datasink is ed.Datasink
    assert ReadTask is ed.ReadTask and SaveMode is ed.SaveMode
    assert Partitioning("hive").style == "hive"
