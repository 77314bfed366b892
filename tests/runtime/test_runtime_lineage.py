"""Lineage: a lost block (its file deleted, in shared memory or spilled) is rebuilt by
re-running the task that made it, whether a worker or the driver finds it missing; a block
whose producer's own inputs are gone too fails with ``ObjectLostError`` naming it."""

from __future__ import annotations

import gc
import os
import sys

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

from engine.errors import ObjectLostError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BIG_ROWS = 20_000  # stored, not inline


def int_table(value: int) -> pa.Table:
    return pa.table({"i": pa.array(np.full(BIG_ROWS, value, dtype=np.int64))})


def produce(n, log):
    with open(log, "a") as f:
        f.write("run\n")
    for i in range(n):
        yield int_table(i)


def plus_ten(table):
    yield pa.table({"i": pa.compute.add(table["i"], 10)})


def first_value(table):
    return table["i"][0].as_py()


def value_of(handle):
    (out,) = handle.iter_outputs(timeout=60)
    return out.value


def runs(log) -> int:
    with open(log) as f:
        return len(f.read().splitlines())


def test_block_lost_before_a_task_reads_it_is_rebuilt(cluster, tmp_path):
    log = str(tmp_path / "log")
    refs = list(cluster.submit(produce, (4, log)).iter_outputs(timeout=60))
    os.unlink(refs[2].path)
    assert value_of(cluster.submit(first_value, (refs[2],))) == 2
    assert cluster.blocks_rebuilt == 1 and runs(log) == 2
    assert [r.get()["i"][0].as_py() for r in refs] == [0, 1, 2, 3]
    del refs
    gc.collect()
    assert cluster.store.used_bytes == 0 and cluster.state_sizes()["rebuilds"] == 0


def test_block_lost_before_the_driver_reads_it_is_rebuilt(cluster, tmp_path):
    log = str(tmp_path / "log")
    refs = list(cluster.submit(produce, (3, log)).iter_outputs(timeout=60))
    os.unlink(refs[0].path)
    assert refs[0].get()["i"][0].as_py() == 0
    assert cluster.blocks_rebuilt == 1


def test_spilled_block_lost_is_rebuilt(make_cluster, rt, tmp_path):
    cluster = make_cluster(memory_budget=1 << 20)
    log = str(tmp_path / "log")
    refs = list(cluster.submit(produce, (10, log), credits=64).iter_outputs(timeout=60))
    for ref in refs:
        cluster.store.mark_spillable(ref.block_id)
    spilled = [r for r in refs if cluster.store.is_spilled(r.block_id)]
    assert spilled
    victim = spilled[0]
    os.unlink(os.path.join(cluster.store.spill_dir, victim.block_id))
    assert value_of(cluster.submit(first_value, (victim,))) == refs.index(victim)
    assert cluster.blocks_rebuilt == 1
    del refs, spilled, victim, ref
    gc.collect()
    assert rt.block_files(cluster) == [] and rt.spill_files(cluster) == []


def test_block_whose_producer_lost_its_inputs_fails_naming_it(cluster, tmp_path):
    source = cluster.put(int_table(5))  # put by the driver: no task can make it again
    (derived,) = cluster.submit(plus_ten, (source,)).iter_outputs(timeout=60)
    os.unlink(derived.path)
    os.unlink(source.path)
    handle = cluster.submit(first_value, (derived,))
    assert handle.wait(60)
    assert isinstance(handle.error, ObjectLostError)
    assert derived.block_id in str(handle.error) and source.block_id in str(handle.error)
    with pytest.raises(ObjectLostError, match=derived.block_id):
        derived.get()
    assert cluster.state_sizes()["rebuilds"] == 0


def test_lineage_table_only_holds_live_blocks(cluster, tmp_path):
    log = str(tmp_path / "log")
    for _ in range(40):
        refs = list(cluster.submit(produce, (20, log), credits=64).iter_outputs(timeout=60))
        del refs
    gc.collect()
    assert cluster.state_sizes()["lineage"] <= 512 + 20
