"""The local shuffle buffer of ``iter_batches`` and the seeds of random APIs.

Quality is checked with teeth: batches mix rows of many source blocks, are never runs of
consecutive rows, and two seeds give different orders. Cost is checked by structure: the
buffer is gathered once per refill, so batches are slices of few distinct buffers.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as ed
from engine.consumption import local_shuffle
from engine.consumption.batching import batch_tables
from engine.consumption.local_shuffle import shuffled_batches
from engine.random_seed import (
    RandomSeedConfig,
    get_single_integer_random_seed,
    rng_entropy,
)

BLOCK_ROWS = 100


def blocks(total: int, rows: int = BLOCK_ROWS) -> list[pa.Table]:
    """Consecutive ids cut into blocks of ``rows`` rows."""
    return [pa.table({"id": np.arange(a, min(a + rows, total), dtype=np.int64)})
            for a in range(0, total, rows)]


def drain(total: int, batch_size: int, buffer: int, seed: int, rows: int = BLOCK_ROWS) -> \
        list[pa.Table]:
    return list(shuffled_batches(iter(blocks(total, rows)), batch_size, buffer,
                                 np.random.default_rng(seed)))


def ids(batches: list[pa.Table]) -> list[int]:
    return [i for b in batches for i in b.column("id").to_pylist()]


# ------------------------------------------------------------------------ the buffer itself


@settings(deadline=None, max_examples=60)
@given(total=st.integers(0, 3000), batch_size=st.integers(1, 300),
       buffer=st.integers(1, 1500), rows=st.integers(1, 700), seed=st.integers(0, 99))
def test_every_row_once_in_exact_batches(total: int, batch_size: int, buffer: int, rows: int,
                                         seed: int) -> None:
    batches = drain(total, batch_size, buffer, seed, rows)
    assert sorted(ids(batches)) == list(range(total))
    sizes = [b.num_rows for b in batches]
    assert all(s == batch_size for s in sizes[:-1])
    assert not sizes or 0 < sizes[-1] <= batch_size


def test_every_batch_mixes_many_blocks_and_no_batch_is_a_run() -> None:
    batches = drain(20_000, 64, 1000, seed=3)
    for batch in batches:
        values = np.array(batch.column("id").to_pylist())
        assert len(set(values // BLOCK_ROWS)) >= 4, values  # rows of at least 4 blocks
        assert not np.all(np.diff(np.sort(values)) == 1), values  # not consecutive rows
        assert not np.all(np.diff(values) == 1)


def test_rows_travel_far_from_their_place() -> None:
    # Not a block-wise shuffle: positions move by about a buffer's worth on average.
    order = np.array(ids(drain(20_000, 64, 1000, seed=5)))
    assert np.mean(np.abs(order - np.arange(len(order)))) > 300


def test_two_seeds_give_different_orders_and_one_seed_the_same() -> None:
    assert ids(drain(5000, 32, 500, seed=1)) == ids(drain(5000, 32, 500, seed=1))
    assert ids(drain(5000, 32, 500, seed=1)) != ids(drain(5000, 32, 500, seed=2))


def test_each_batch_is_one_gather_of_its_own_rows() -> None:
    # Runs are drawn from by slices and each batch is gathered once into memory of its own:
    # no buffer-sized gather is ever sliced into batches.
    batches = drain(20_000, 64, 1000, seed=0)
    assert len(batches) == -(-20_000 // 64)
    for batch in batches:
        column = batch.column("id")
        assert column.num_chunks == 1
        assert column.chunk(0).buffers()[1].size == batch.num_rows * 8


def test_pre_permuted_blocks_are_not_permuted_again(monkeypatch) -> None:
    # Blocks in random order already (the workers' permute_block) are only drawn from;
    # others are each permuted once as they arrive.
    permute = local_shuffle.permute_rows
    permuted_rows: list[int] = []

    def counting(table, rng):
        permuted_rows.append(table.num_rows)
        return permute(table, rng)

    monkeypatch.setattr(local_shuffle, "permute_rows", counting)
    out = list(shuffled_batches(iter(blocks(1000)), 64, 200, np.random.default_rng(0),
                                permuted=True))
    assert permuted_rows == [] and sorted(ids(out)) == list(range(1000))
    list(shuffled_batches(iter(blocks(1000)), 64, 200, np.random.default_rng(0)))
    assert permuted_rows == [BLOCK_ROWS] * 10


def test_a_huge_block_is_drawn_from_as_a_whole() -> None:
    # A 100k-row block and a 1000-row buffer: the block is one permuted run, so even the
    # first batch holds rows from all over it.
    batches = drain(100_000, 100, 1000, seed=4, rows=100_000)
    first = np.array(batches[0].column("id").to_pylist())
    assert first.max() - first.min() > 50_000
    assert sorted(ids(batches)) == list(range(100_000))
    assert batches[-1].num_rows == 100


def test_batch_counts_are_those_of_successive_uniform_draws() -> None:
    # Counts for a block's batches drawn run by run must match drawing batch after batch
    # without replacement: every batch takes batch_size rows, no run gives more than it
    # holds, each batch's share of a run is hypergeometric, and the batches' shares are
    # negatively correlated (draws with replacement would give the total 3x the variance).
    left, batches, size = [30, 50, 20], 10, 7
    rng = np.random.default_rng(11)
    samples = np.stack([local_shuffle._batch_counts(left, batches, size, rng)
                        for _ in range(4000)])
    assert samples.shape == (4000, 3, batches)
    assert (samples.sum(axis=1) == size).all()
    assert (samples.sum(axis=2) <= np.array(left)).all() and (samples >= 0).all()
    first_run = samples[:, 0, :]
    mean, var = size * 0.3, size * 0.3 * 0.7 * (100 - size) / 99  # HG(30 of 100, 7)
    assert np.allclose(first_run.mean(axis=0), mean, atol=0.12)
    assert np.allclose(first_run.var(axis=0), var, rtol=0.15)
    n = batches * size  # all of them: HG(30 of 100, 70)
    assert abs(first_run.sum(axis=1).var() - n * 0.3 * 0.7 * (100 - n) / 99) < 0.8
    assert local_shuffle._batch_counts([12], 3, 4, rng).tolist() == [[4, 4, 4]]


def test_a_huge_block_in_small_batches_draws_its_counts_a_bounded_number_at_a_time(
        monkeypatch) -> None:
    monkeypatch.setattr(local_shuffle, "_COUNTED_TOGETHER", 7)
    drawn = []
    counts = local_shuffle._batch_counts

    def recording(left, batches, batch_size, rng):
        drawn.append(batches)
        return counts(left, batches, batch_size, rng)

    monkeypatch.setattr(local_shuffle, "_batch_counts", recording)
    out = list(shuffled_batches(iter(blocks(1000)), 10, 50, np.random.default_rng(0)))
    assert sorted(ids(out)) == list(range(1000)) and max(drawn) == 7
    assert all(batch.num_rows == 10 for batch in out)


def test_permute_block_follows_its_entropy_and_the_blocks_contents() -> None:
    block = pa.table({"id": np.arange(1000), "x": np.arange(1000) * 0.5})
    first = local_shuffle.permute_block(block, 7).column("id").to_pylist()
    assert first == local_shuffle.permute_block(block, 7).column("id").to_pylist()
    assert first != local_shuffle.permute_block(block, 8).column("id").to_pylist()
    assert first != local_shuffle.permute_block(block, [7, 1]).column("id").to_pylist()
    other = pa.table({"id": np.arange(1000, 2000), "x": np.arange(1000) * 0.5})
    assert [i - 1000 for i in local_shuffle.permute_block(other, 7).column("id").to_pylist()] \
        != first
    assert sorted(first) == list(range(1000))
    unseeded = {tuple(local_shuffle.permute_block(block).column("id").to_pylist()[:20])
                for _ in range(3)}
    assert len(unseeded) == 3


def test_many_short_runs_are_merged_and_still_mix() -> None:
    # 10-row blocks, a 2000-row buffer: hundreds of runs would be buffered; they are merged
    # into few, and batches still mix many blocks.
    batches = drain(20_000, 64, 2000, seed=9, rows=10)
    assert sorted(ids(batches)) == list(range(20_000))
    for batch in batches[:-1]:
        assert len(set(np.array(batch.column("id").to_pylist()) // 10)) >= 20


def test_a_datasets_shuffled_pass_permutes_blocks_in_its_tasks() -> None:
    ds = ed.range(2000, override_num_blocks=20)
    out = [int(i) for b in ds.iter_batches(batch_size=64, local_shuffle_buffer_size=300)
           for i in b["id"]]
    assert sorted(out) == list(range(2000)) and out != list(range(2000))
    assert "local_shuffle" in ds.stats()


def test_shuffled_batches_are_owned_and_plain_ones_are_not() -> None:
    source = blocks(1000)
    shuffled = list(batch_tables(iter(source), 64, False, 200, np.random.default_rng(0)))
    assert all(owned for _, owned in shuffled)
    plain = list(batch_tables(iter(source), 64, False, None))
    assert not any(owned for _, owned in plain)


def test_drop_last_with_a_shuffle() -> None:
    out = list(batch_tables(iter(blocks(1000)), 64, True, 200, np.random.default_rng(0)))
    assert [t.num_rows for t, _ in out] == [64] * (1000 // 64)


# ------------------------------------------------------------------- seeds through the API


@pytest.fixture
def ordered(fresh_context):
    fresh_context.execution_options.preserve_order = True
    return fresh_context


def epoch_orders(ds: ed.Dataset, seed: object, epochs: int = 3) -> list[list[int]]:
    return [[int(i) for b in ds.iter_batches(batch_size=50, local_shuffle_buffer_size=300,
                                             local_shuffle_seed=seed) for i in b["id"]]
            for _ in range(epochs)]


def test_an_int_seed_repeats_the_order_every_epoch(ordered) -> None:
    orders = epoch_orders(ed.range(2000, override_num_blocks=10), 7)
    assert orders[0] == orders[1] == orders[2]
    assert sorted(orders[0]) == list(range(2000)) and orders[0] != list(range(2000))
    fixed = RandomSeedConfig(seed=7, reseed_after_execution=False)
    assert epoch_orders(ed.range(2000, override_num_blocks=10), fixed, 1)[0] == orders[0]


def test_a_reseeding_config_gives_new_reproducible_orders_per_epoch(ordered) -> None:
    config = RandomSeedConfig(seed=7, reseed_after_execution=True)
    orders = epoch_orders(ed.range(2000, override_num_blocks=10), config)
    assert orders[0] != orders[1] != orders[2] != orders[0]
    assert all(sorted(o) == list(range(2000)) for o in orders)
    # The same config on a fresh dataset replays the same sequence of epochs.
    assert epoch_orders(ed.range(2000, override_num_blocks=10), config) == orders


def test_no_seed_gives_different_orders(ordered) -> None:
    orders = epoch_orders(ed.range(2000, override_num_blocks=10), None, 2)
    assert orders[0] != orders[1]


def test_shuffled_epochs_of_a_streaming_split_cover_every_row(ordered) -> None:
    config = RandomSeedConfig(seed=1)
    its = ed.range(1200, override_num_blocks=12).streaming_split(2, equal=True)
    per_epoch = []
    for _ in range(2):
        rows = [[int(i) for b in it.iter_batches(batch_size=40, local_shuffle_buffer_size=200,
                                                 local_shuffle_seed=config) for i in b["id"]]
                for it in its]
        assert [len(r) for r in rows] == [600, 600]
        assert sorted(rows[0] + rows[1]) == list(range(1200))
        per_epoch.append(rows[0])
    assert per_epoch[0] != per_epoch[1]


# ----------------------------------------------------------------------- RandomSeedConfig


def test_random_seed_config_is_exported_and_checks_its_seed() -> None:
    assert ed.RandomSeedConfig is RandomSeedConfig
    assert RandomSeedConfig().reseed_after_execution is True
    with pytest.raises(ValueError, match="Seed must be an integer or None"):
        RandomSeedConfig(seed=1.5)  # type: ignore[arg-type]
    assert RandomSeedConfig(seed=np.int64(3)).seed == 3


def test_create_seed_config_like_ray() -> None:
    plain = RandomSeedConfig.create_seed_config(5)
    assert (plain.seed, plain.reseed_after_execution) == (5, False)
    kept = RandomSeedConfig.create_seed_config(RandomSeedConfig(seed=5))
    assert (kept.seed, kept.reseed_after_execution) == (5, True)
    assert RandomSeedConfig.create_seed_config(None).seed is None
    with pytest.raises(ValueError, match="Invalid seed type"):
        RandomSeedConfig.create_seed_config("5")  # type: ignore[arg-type]


def test_seed_per_execution() -> None:
    fixed = RandomSeedConfig(seed=5, reseed_after_execution=False)
    assert get_single_integer_random_seed(fixed, execution_idx=0) == 5
    assert get_single_integer_random_seed(fixed, execution_idx=3) == 5
    reseed = RandomSeedConfig(seed=5)
    seeds = {get_single_integer_random_seed(reseed, execution_idx=k) for k in range(5)}
    assert len(seeds) == 5 and all(0 <= s < 2**32 for s in seeds if s is not None)
    assert get_single_integer_random_seed(RandomSeedConfig(), execution_idx=0) is None
    stamped = RandomSeedConfig(use_timestamp_as_default=True)
    assert isinstance(get_single_integer_random_seed(stamped, execution_idx=0), int)
    assert rng_entropy(9, 4) == 9 and rng_entropy(None, 4) is None
    assert rng_entropy(reseed, 1) != rng_entropy(reseed, 2)


def test_bad_arguments_fail_when_iter_batches_is_called() -> None:
    ds = ed.range(10)
    with pytest.raises(ValueError, match="local_shuffle_buffer_size must be positive"):
        ds.iter_batches(local_shuffle_buffer_size=0)
    with pytest.raises(ValueError, match="Invalid seed type"):
        ds.iter_batches(local_shuffle_buffer_size=5, local_shuffle_seed="7")


def test_a_seeded_local_shuffle_repeats_whatever_order_blocks_finish_in():
    """Map stages finish blocks in varying order; a seed still gives one order."""
    import time

    def jitter(batch):
        time.sleep(0.002 * (int(batch["id"][0]) % 5))  # blocks finish out of order
        return batch

    ds = ed.range(200, override_num_blocks=20).map_batches(jitter)
    orders = [[int(x) for b in ds.iter_batches(batch_size=50, local_shuffle_buffer_size=60,
                                               local_shuffle_seed=7) for x in b["id"]]
              for _ in range(3)]
    assert orders[0] == orders[1] == orders[2]
    assert sorted(orders[0]) == list(range(200))


# ---------------------------------------------------------- the iterator's background thread


def test_small_batches_run_ahead_of_the_consumer_up_to_a_byte_bound(monkeypatch) -> None:
    import threading

    from engine.consumption import batching

    monkeypatch.setattr(batching, "_LOOKAHEAD_BYTES", 4 << 20)
    consumed = [0]
    made: list[int] = []
    over_bound: list[int] = []
    ran_ahead = threading.Event()

    def source():
        for i in range(20):
            # held: 4 batches of 1 MiB, one waiting to be put, one taken but not counted yet
            if i - consumed[0] > 6:
                over_bound.append(i)
            made.append(i)
            if len(made) >= 5:
                ran_ahead.set()
            yield i, 1 << 20

    batches = batching._background(source(), 1, lambda: None)
    out = [next(batches)]
    consumed[0] = 1
    assert ran_ahead.wait(60), "the thread stopped at prefetch_batches=1"
    for item in batches:
        out.append(item)
        consumed[0] += 1
    assert out == list(range(20)) and over_bound == []


def test_a_waiting_consumer_is_woken_before_the_producer_waits_for_the_execution(
        monkeypatch) -> None:
    # Wakes are deferred (one per few batches), so a batch made just before the producer
    # waits for the next block must be handed over then: here nothing else would wake the
    # consumer (no deadline, no poll) until the test lets the next block come.
    import threading

    from engine.consumption import batching

    monkeypatch.setattr(batching, "_WAKE_AFTER_S", 3600.0)
    monkeypatch.setattr(batching, "_POLL_S", 3600.0)
    release = threading.Event()

    class Ref:
        def __init__(self, table):
            self.table = table

        def get(self):
            return self.table

    def refs():
        yield Ref(pa.table({"id": np.arange(10)}))
        release.wait(120)  # the execution has no next block until the test says so
        yield Ref(pa.table({"id": np.arange(10, 20)}))

    batches = batching.iter_batches(refs(), batch_size=10, batch_format="pyarrow",
                                    prefetch_batches=1, drop_last=False,
                                    local_shuffle_buffer_size=None, local_shuffle_seed=None)
    got: list = []
    first = threading.Event()

    def consume():
        for batch in batches:
            got.append(batch["id"].to_pylist())
            first.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    try:
        assert first.wait(60), "the consumer was not woken for the batch already made"
    finally:
        release.set()
    thread.join(60)
    assert got == [list(range(10)), list(range(10, 20))]


class _AddOne:
    def __call__(self, batch):
        return {"id": batch["id"] + 1}


def test_after_an_actor_pool_the_consumer_permutes_the_blocks() -> None:
    # No task stage of its own after the actors (it would compete for their CPUs).
    ds = ed.range(600, override_num_blocks=6).map_batches(_AddOne, concurrency=1)
    out = [int(i) for b in ds.iter_batches(batch_size=32, local_shuffle_buffer_size=100)
           for i in b["id"]]
    assert sorted(out) == list(range(1, 601)) and out != list(range(1, 601))
    assert "local_shuffle" not in ds.stats()


def test_each_batch_is_drawn_while_at_least_a_buffer_of_rows_stays_behind() -> None:
    pulled = [0]
    at_yield: list[int] = []

    def source():
        for block in blocks(5000):
            pulled[0] += block.num_rows
            yield block

    handed = 0
    for batch in shuffled_batches(source(), 64, 1000, np.random.default_rng(0)):
        handed += batch.num_rows
        at_yield.append(pulled[0] - handed)  # rows buffered beyond the batches handed out
    # Until the input ends (the first (5000 - 1000) // 64 batches) every batch left at
    # least 1000 rows behind it.
    assert min(at_yield[: (5000 - 1000) // 64]) >= 1000
    assert handed == 5000
