"""RandomSampler: the batch function behind ``Dataset.random_sample``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.block import number_array


class RandomSampler:
    """Keep each row with probability ``fraction``.

    Like Ray Data, a seeded sample draws each task's mask from ``(seed, task_idx)``: runs
    repeat exactly (workers cache this object between tasks, so a generator kept on it would
    not), and blocks do not all get the same mask.
    """

    def __init__(self, fraction: float, seed: int | None) -> None:
        self.fraction = fraction
        self.seed = seed
        self.__name__ = "random_sample"

    def bind_task(self, task_idx: int) -> _TaskSampler:
        """The sampler of one task (the map step calls this once per task)."""
        seed = None if self.seed is None else [self.seed, task_idx]
        return _TaskSampler(self.fraction, np.random.default_rng(seed))

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.bind_task(0)(batch)


class _TaskSampler:
    def __init__(self, fraction: float, rng: np.random.Generator) -> None:
        self.fraction = fraction
        self.rng = rng

    def __call__(self, batch: pa.Table) -> pa.Table:
        mask = self.rng.random(batch.num_rows) < self.fraction
        return batch.filter(number_array(mask))
