"""RandomSampler: the batch function behind ``Dataset.random_sample``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class RandomSampler:
    """Keep each row with probability ``fraction``; seeded runs are reproducible."""

    def __init__(self, fraction: float, seed: int | None) -> None:
        self.fraction = fraction
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self.__name__ = "random_sample"

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        mask = self._rng.random(batch.num_rows) < self.fraction
        return batch.filter(pa.array(mask))
