"""DriverTasks: ``local_ok`` tasks on the driver's threads, their blocks on its heap, and
everything else on the wrapped cluster."""

from __future__ import annotations

import os
import pickle
import threading
import time

import pyarrow as pa
import pytest

import engine
from engine import session
from engine.runtime.block_store import BlockLocation, read_location
from engine.runtime.driver_tasks import DriverTasks, HeapBlockRef
from engine.runtime.interfaces import RemoteError

pytestmark = pytest.mark.usefixtures("module_cluster")


@pytest.fixture
def tasks() -> DriverTasks:
    wrapped = session.driver_tasks()
    assert wrapped is not None
    return wrapped


def _tables(n: int, made: list[int]):
    for i in range(n):
        made.append(i)
        yield pa.table({"i": [i] * 1000})


def test_a_local_task_runs_on_a_thread_of_this_process(tasks):
    def where():
        yield pa.table({"pid": [os.getpid()], "thread": [threading.current_thread().name]})

    handle = tasks.submit(where, local_ok=True)
    (ref,) = list(handle.iter_outputs(timeout=60))
    assert isinstance(ref, HeapBlockRef) and ref.exclusive and not ref.in_store
    row = ref.get().to_pylist()[0]
    assert row["pid"] == os.getpid() and row["thread"].startswith("engine-driver-task")


def test_a_task_with_user_code_goes_to_a_worker(tasks):
    handle = tasks.submit(lambda: pa.table({"pid": [os.getpid()]}))
    (ref,) = list(handle.iter_outputs(timeout=60))
    assert not isinstance(ref, HeapBlockRef)
    assert ref.get()["pid"][0].as_py() != os.getpid()


def test_credits_hold_a_task_back_until_its_outputs_are_taken(tasks):
    made: list[int] = []
    handle = tasks.submit(_tables, (10, made), credits=2, local_ok=True)
    for _ in range(600):  # until it stops on its credits (it never gets further)
        if handle.waiting_for_credit:
            break
        time.sleep(0.05)
    assert handle.waiting_for_credit and not handle.done
    assert len(made) <= 3  # two waiting to be taken, at most one being offered
    taken = list(handle.iter_outputs(timeout=60))
    assert [r.get()["i"][0].as_py() for r in taken] == list(range(10))
    assert handle.finished and handle.error is None


def test_an_error_comes_back_as_a_worker_reports_it(tasks):
    def failing():
        yield pa.table({"a": [1]})
        raise ValueError("bad row 7")

    handle = tasks.submit(failing, name="ReadThing", local_ok=True)
    with pytest.raises(RemoteError) as info:
        list(handle.iter_outputs(timeout=60))
    assert info.value.exc_type is ValueError and "bad row 7" in info.value.message
    assert "failing" in info.value.traceback  # the task's own frame, the engine's trimmed


def test_a_cancelled_task_stops_and_drops_its_outputs(tasks):
    made: list[int] = []
    handle = tasks.submit(_tables, (1000, made), credits=1, local_ok=True)
    handle.cancel()
    assert handle.wait(60)
    assert handle.take() == [] and len(made) < 1000


def test_heap_blocks_count_in_store_usage_until_released(tasks):
    before = tasks.store_usage().used_bytes
    table = pa.table({"x": list(range(100_000))})
    ref = tasks.put(table)
    assert not ref.exclusive  # a put block may be a view of anything
    assert tasks.store_usage().used_bytes == before + table.nbytes
    del ref
    assert tasks.store_usage().used_bytes == before


def test_a_pickled_heap_block_is_stored_and_travels_as_its_location(tasks):
    table = pa.table({"x": list(range(100_000))})
    ref = tasks.put(table)
    location = pickle.loads(pickle.dumps(ref))
    assert isinstance(location, BlockLocation)
    assert read_location(location).equals(table)
    assert engine.DataContext.get_current().reads_in_driver  # the default
