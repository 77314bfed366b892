"""``streaming_split`` feeding trainer ranks: a slow rank holds the others back within a
bounded buffer, a killed rank fails the others clearly, epochs re-execute or reuse a
materialized dataset, many epochs leak nothing, and each consumer's wait is timed."""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import engine as ed
from engine import session
from engine.consumption import batching
from engine.errors import SplitConsumerDiedError
from engine.splits.streaming import MAX_QUEUED_BLOCKS, SplitCoordinator

JOIN_S = int(os.environ.get("TEST_JOIN_S", "120"))


def store_blocks() -> list[str]:
    store = session.get_cluster().store
    return [n for n in os.listdir(store.dir) if not n.startswith((".", "split-"))]


def padded(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows of 8 KiB: blocks go to the shared store, not inline in messages."""
    return {"id": batch["id"], "pad": np.zeros((len(batch["id"]), 1024))}


# ------------------------------------------------------------------- a slow rank, bounded


def test_a_slow_consumer_holds_the_fast_one_back_within_a_bounded_buffer(monkeypatch) -> None:
    # The iterator itself runs ahead by up to _LOOKAHEAD_BYTES of batches; without that,
    # what holds a consumer back is the coordinator's bound alone.
    monkeypatch.setattr(batching, "_LOOKAHEAD_BYTES", 0)
    its = ed.range(4000, override_num_blocks=40).map_batches(padded).streaming_split(
        2, equal=True)
    coordinator: SplitCoordinator = its[0]._coordinator
    held_back = threading.Event()
    queued: list[int] = []
    lagging = coordinator._lagging
    pull = coordinator._pull

    def watch_lagging(epoch: Any) -> int | None:
        found = lagging(epoch)
        if found == 0:
            held_back.set()  # the fast consumer now waits for the slow one
        return found

    def watch_pull(epoch: Any, index: int) -> None:
        pull(epoch, index)
        queued.append(len(epoch.queues[0]))

    monkeypatch.setattr(coordinator, "_lagging", watch_lagging)
    monkeypatch.setattr(coordinator, "_pull", watch_pull)
    rows: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def consume(i: int) -> None:
        try:
            for k, batch in enumerate(its[i].iter_batches(batch_size=50)):
                rows[i].extend(int(x) for x in batch["id"])
                if i == 0 and k == 0:
                    assert held_back.wait(JOIN_S), "the fast consumer was never held back"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    assert [len(r) for r in rows] == [2000, 2000]
    assert sorted(rows[0] + rows[1]) == list(range(4000))
    assert held_back.is_set() and max(queued) <= MAX_QUEUED_BLOCKS


def test_consumers_drained_one_after_another_still_work_past_the_bound() -> None:
    # The second consumer has not begun while the first drains: nobody is held back.
    its = ed.range(3000, override_num_blocks=30).streaming_split(2, equal=True)
    first = [r["id"] for r in its[0].iter_rows()]
    second = [r["id"] for r in its[1].iter_rows()]
    assert len(first) == len(second) == 1500
    assert sorted(first + second) == list(range(3000))


# -------------------------------------------------------------------------- ranks in processes


def _rank(it: Any, rank: int, out: Any, started: Any, go_on: Any, die_after_first: bool) -> None:
    """Consumer process: report each epoch's ids; optionally die after the first batch."""
    try:
        rows: list[int] = []
        for k, batch in enumerate(it.iter_batches(batch_size=20)):
            rows.extend(int(x) for x in batch["id"])
            if k == 0:
                started[rank].set()
                if die_after_first:
                    os.kill(os.getpid(), signal.SIGKILL)
                go_on.wait(JOIN_S)
        out.put((rank, rows, None))
    except BaseException as exc:
        out.put((rank, [], f"{type(exc).__name__}: {exc}"))


def test_a_killed_rank_gives_the_others_a_clear_error() -> None:
    its = ed.range(4000, override_num_blocks=40).map_batches(padded).streaming_split(
        2, equal=True)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    started = [ctx.Event(), ctx.Event()]
    go_on = ctx.Event()
    victim = ctx.Process(target=_rank, args=(its[0], 0, out, started, go_on, True))
    survivor = ctx.Process(target=_rank, args=(its[1], 1, out, started, go_on, False))
    survivor.start()
    assert started[1].wait(JOIN_S)
    victim.start()
    victim.join(JOIN_S)
    assert victim.exitcode == -signal.SIGKILL
    go_on.set()  # the survivor asks for more blocks only now, after the death
    try:
        rank, rows, error = out.get(timeout=JOIN_S)
    except queue.Empty:
        pytest.fail("the surviving rank hung")
    finally:
        survivor.join(JOIN_S)
        if survivor.is_alive():
            survivor.kill()
    assert rank == 1 and error is not None, rows
    assert error.startswith("SplitConsumerDiedError") and "consumer 0" in error
    # The next epoch runs for whoever iterates (here, both in this process).
    again = [[r["id"] for r in it.iter_rows()] for it in its]
    assert [len(r) for r in again] == [2000, 2000]


def test_a_rank_that_died_between_epochs_fails_the_next_wait(monkeypatch) -> None:
    monkeypatch.setattr("engine.splits.streaming._LIVENESS_POLL_S", 0.05)
    its = ed.range(200, override_num_blocks=4).streaming_split(2, equal=True)
    ctx = multiprocessing.get_context("fork")
    done = ctx.SimpleQueue()  # put() writes at once: nothing is lost to the kill

    def one_epoch_then_die(it: Any) -> None:
        done.put(len(list(it.iter_rows())))
        os.kill(os.getpid(), signal.SIGKILL)

    child = ctx.Process(target=one_epoch_then_die, args=(its[0],))
    child.start()
    assert len(list(its[1].iter_rows())) == 100  # epoch 1, beside the child
    child.join(JOIN_S)
    assert done.get() == 100
    list(its[1].iter_rows())  # epoch 2: the dead rank never begins it, nobody waits
    with pytest.raises(SplitConsumerDiedError, match="consumer 0"):
        list(its[1].iter_rows())  # epoch 3 would wait for the dead rank's epoch 2


def _count_calls(path: str) -> Any:
    def udf(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with open(path, "a") as f:
            f.write("x\n")
        return batch

    return udf


def _epochs_in_child(it: Any, out: Any, epochs: int) -> None:
    out.put([sorted(int(r["id"]) for r in it.iter_rows()) for _ in range(epochs)])


@pytest.mark.parametrize("materialized", [False, True])
def test_each_epoch_re_executes_or_reuses_a_materialized_dataset(materialized: bool,
                                                                 tmp_path: Path) -> None:
    log = tmp_path / "calls"
    ds = ed.range(400, override_num_blocks=4).map_batches(_count_calls(str(log)))
    if materialized:
        ds = ds.materialize()
    its = ds.streaming_split(2, equal=True)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_epochs_in_child, args=(it, out, 3)) for it in its]
    for p in procs:
        p.start()
    reports = [out.get(timeout=JOIN_S) for _ in procs]
    for p in procs:
        p.join(JOIN_S)
    for epoch in range(3):
        assert sorted(reports[0][epoch] + reports[1][epoch]) == list(range(400))
    calls = len(log.read_text().split())
    assert calls == (4 if materialized else 12)


def test_many_epochs_leak_no_blocks_threads_or_sockets() -> None:
    before_blocks = set(store_blocks())
    its = ed.range(2000, override_num_blocks=8).map_batches(padded).streaming_split(
        2, equal=True)
    for epoch in range(3):  # warm up lazily created pools and sockets
        list(its[epoch % 2].iter_torch_batches())
        list(its[(epoch + 1) % 2].iter_torch_batches())
    gc.collect()
    threads = threading.active_count()
    fds = len(os.listdir("/proc/self/fd"))
    for epoch in range(25):
        for it in its:
            if epoch % 2:
                batches = it.iter_batches(batch_size=64, local_shuffle_buffer_size=256)
            else:
                batches = it.iter_torch_batches(batch_size=64, local_shuffle_buffer_size=256)
            assert sum(len(b["id"]) for b in batches) == 1000
    gc.collect()
    assert threading.active_count() <= threads
    assert len(os.listdir("/proc/self/fd")) <= fds
    del its
    gc.collect()
    assert set(store_blocks()) <= before_blocks


# ------------------------------------------------------------------------------ iterator stats


def test_stats_time_the_consumers_wait_per_batch_and_in_total() -> None:
    its = ed.range(1000, override_num_blocks=5).streaming_split(1)
    batches = list(its[0].iter_batches(batch_size=100))
    stats = its[0]._iter_stats
    assert stats is not None and stats.batches == len(batches) == 10
    assert stats.blocked.count == 10  # one wait per batch
    assert 0 <= stats.blocked.min <= stats.blocked.avg() <= stats.blocked.max
    assert stats.blocked.total <= stats.total_s
    assert stats.first_batch_s is not None and stats.first_batch_s <= stats.total_s
    text = its[0].stats()
    assert "Total time user thread is blocked by iter_batches" in text
    assert "User thread blocked per batch (10 batches)" in text
    assert "In batch creation" in text
    assert text.index("Dataset iterator time breakdown") > 0  # after the execution's stats


def test_stats_of_torch_batches_time_the_collate_step() -> None:
    pytest.importorskip("torch")
    its = ed.range(1000, override_num_blocks=2).streaming_split(1)
    assert len(list(its[0].iter_torch_batches(batch_size=250))) == 4
    stats = its[0]._iter_stats
    assert stats is not None and stats.collate.count == 4
    assert "In collate_fn" in its[0].stats()
