"""The block store seen through a LocalCluster: reference counting frees blocks, task
arguments stay alive while their task runs, and kept blocks spill past the budget and read
back transparently."""

from __future__ import annotations

import gc
import os
import sys
import time

import cloudpickle
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.runtime.block_store import BlockStore, remove_stale_sessions

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BIG_ROWS = 20_000  # 160 KB of int64: stored, not inline


def int_table(value: int, rows: int) -> pa.Table:
    return pa.table({"i": pa.array(np.full(rows, value, dtype=np.int64))})


def ranged_table(start: int, rows: int) -> pa.Table:
    return pa.table({"i": pa.array(np.arange(start, start + rows, dtype=np.int64)),
                     "s": pa.array([str(v % 97) for v in range(rows)])})


# ---------------------------------------------------------------- functions run on workers


def stream_tables(n, rows):
    for i in range(n):
        yield int_table(i, rows)


def wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def sum_after_release(table, tables, started_file, release_file):
    open(started_file, "w").close()
    wait_for_file(release_file)
    return [pc.sum(t["i"]).as_py() for t in [table, *tables]]


def checksum(table):
    return (table.num_rows, pc.sum(table["i"]).as_py(), table["s"].to_pylist()[:5])


# ---------------------------------------------------------------- 4. reference counting


def test_dropping_the_last_ref_deletes_the_block(cluster, rt):
    ref = cluster.put(int_table(1, BIG_ROWS))
    path = ref.path
    assert os.path.exists(path) and cluster.store.used_bytes == ref.size_bytes
    alias = ref
    del ref
    gc.collect()
    assert os.path.exists(path)  # another Python reference keeps it
    del alias
    gc.collect()
    assert not os.path.exists(path)
    assert cluster.store.used_bytes == 0

    refs = list(cluster.submit(stream_tables, (4, BIG_ROWS)).iter_outputs(timeout=60))
    assert len(rt.block_files(cluster)) == 4 and cluster.store.used_bytes > 0
    keep = refs[2]
    del refs
    gc.collect()
    assert rt.block_files(cluster) == [keep.block_id]
    assert cluster.store.used_bytes == keep.size_bytes
    del keep
    gc.collect()
    assert rt.block_files(cluster) == [] and cluster.store.used_bytes == 0


def test_refs_passed_as_task_args_live_until_the_task_ends(cluster, rt, tmp_path):
    single = cluster.put(int_table(3, BIG_ROWS))
    listed = [cluster.put(int_table(v, BIG_ROWS)) for v in (5, 7)]
    paths = [single.path, *(r.path for r in listed)]
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    handle = cluster.submit(sum_after_release, (single, listed, started, release))
    del single, listed
    gc.collect()
    rt.wait_until(lambda: os.path.exists(started), what="the task to start")
    gc.collect()
    assert all(os.path.exists(p) for p in paths)  # the running task keeps its inputs
    assert cluster.store.used_bytes > 0
    open(release, "w").close()
    (out,) = handle.iter_outputs(timeout=60)
    assert out.value == [3 * BIG_ROWS, 5 * BIG_ROWS, 7 * BIG_ROWS]
    gc.collect()
    rt.wait_until(lambda: not any(os.path.exists(p) for p in paths),
                  what="the inputs to be freed after the task")
    assert cluster.store.used_bytes == 0


# ---------------------------------------------------------------- 5. spilling


def test_spillable_blocks_spill_past_the_budget_and_read_back(make_cluster, rt):
    budget = 1 << 20
    cluster = make_cluster(memory_budget=budget)
    store = cluster.store
    assert store.budget_bytes == budget
    tables = [ranged_table(k * 100_000, 40_000) for k in range(6)]  # ~0.5 MB each
    refs = []
    early_view = None
    for table in tables:
        ref = cluster.put(table)
        assert ref.in_store
        if early_view is None:
            early_view = ref.get()  # mapped before it spills: must stay valid
        store.mark_spillable(ref.block_id)
        refs.append(ref)
        assert store.used_bytes <= budget
    spilled = [r for r in refs if store.is_spilled(r.block_id)]
    assert len(spilled) >= 4
    assert store.spilled_bytes_total == sum(r.size_bytes for r in spilled)
    assert sorted(rt.spill_files(cluster)) == sorted(r.block_id for r in spilled)
    for ref in refs:  # each block lives in exactly one place
        assert os.path.exists(ref.path) != store.is_spilled(ref.block_id)
    assert store.used_bytes == sum(r.size_bytes for r in refs if r not in spilled)

    # Read back on the driver and as task arguments on the workers: identical data.
    assert early_view.equals(tables[0])
    for ref, table in zip(refs, tables, strict=True):
        assert ref.get().equals(table)
    handles = [cluster.submit(checksum, (ref,)) for ref in refs]
    for handle, table in zip(handles, tables, strict=True):
        (out,) = handle.iter_outputs(timeout=60)
        assert out.value == checksum(table)

    # Freeing a spilled block deletes its spill file; freeing everything empties the store.
    victim = spilled[0]
    victim_id = victim.block_id
    refs.remove(victim)
    del victim, spilled
    gc.collect()
    assert victim_id not in rt.spill_files(cluster)
    del refs, ref, handles
    gc.collect()
    assert rt.spill_files(cluster) == [] and rt.block_files(cluster) == []
    assert store.used_bytes == 0


def test_blocks_not_marked_spillable_stay_in_shared_memory(make_cluster, rt):
    cluster = make_cluster(memory_budget=1 << 20)
    refs = list(cluster.submit(stream_tables, (10, BIG_ROWS)).iter_outputs(timeout=60))
    assert cluster.store.used_bytes > cluster.store.budget_bytes  # a stream is not spilled
    assert rt.spill_files(cluster) == []
    assert [r.get()["i"][0].as_py() for r in refs] == list(range(10))


def test_store_removes_sessions_nobody_holds(tmp_path):
    root = str(tmp_path)
    stale = os.path.join(root, "engine-deadbeef0000")
    os.makedirs(stale)
    open(os.path.join(stale, ".lock"), "w").close()
    open(os.path.join(stale, "block"), "w").close()
    live = BlockStore(1 << 20, root="/dev/shm")
    try:
        remove_stale_sessions(root)
        assert not os.path.exists(stale)
        remove_stale_sessions("/dev/shm")
        assert os.path.isdir(live.dir)  # held by this process's flock
    finally:
        live.close()
    assert not os.path.exists(live.dir)
