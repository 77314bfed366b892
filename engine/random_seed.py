"""RandomSeedConfig: how seeded random operations reseed across executions (a leaf module).

Follows Ray Data 2.60: ``seed=None`` is non-deterministic; an int seed (or
``RandomSeedConfig(seed, reseed_after_execution=False)``) gives the same result in every
execution; ``RandomSeedConfig(seed)`` (``reseed_after_execution=True``, the default of the
class) combines the seed with the execution index, so each execution of the dataset differs
but a whole run of a program is reproducible.

Example:
    >>> ds.random_shuffle(seed=RandomSeedConfig(seed=42, reseed_after_execution=False))
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

NUMPY_RNG_SEED_MAX = 2**32


@dataclass
class RandomSeedConfig:
    """Seed behaviour of ``random_shuffle``, ``randomize_block_order`` and
    ``random_sample``.

    Args:
        seed: The base seed; ``None`` makes the operation non-deterministic.
        reseed_after_execution: Combine the seed with the execution index, so every
            execution shuffles differently (only with a seed).
        use_timestamp_as_default: Without a seed, pin a timestamp seed when the plan is
            built (retried tasks then reproduce their output).
    """

    seed: int | None = None
    reseed_after_execution: bool = True
    use_timestamp_as_default: bool = False

    def __post_init__(self) -> None:
        if self.seed is not None and (isinstance(self.seed, bool)
                                      or not isinstance(self.seed, int)):
            raise ValueError("Seed must be an integer or None.")

    @classmethod
    def create_seed_config(cls, seed: int | RandomSeedConfig | None, *,
                           use_timestamp_as_default: bool = False) -> RandomSeedConfig:
        """The config of a public API's ``seed`` argument: an int (or None) gives the same
        seed in every execution; a config is kept as given."""
        if isinstance(seed, RandomSeedConfig):
            return cls(seed.seed, seed.reseed_after_execution, use_timestamp_as_default)
        if seed is None or (isinstance(seed, int) and not isinstance(seed, bool)):
            return cls(seed, False, use_timestamp_as_default)
        import numbers

        if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
            return cls(int(seed), False, use_timestamp_as_default)
        raise ValueError(f"Invalid seed type: {type(seed)}")

    def seed_for_execution(self, execution_idx: int) -> int | None:
        """One integer seed for the execution numbered ``execution_idx`` (None:
        non-deterministic)."""
        if self.seed is None:
            return time.time_ns() % NUMPY_RNG_SEED_MAX if self.use_timestamp_as_default \
                else None
        if not self.reseed_after_execution:
            return self.seed
        digest = hashlib.blake2b(f"{self.seed}:{execution_idx}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "little") % NUMPY_RNG_SEED_MAX


def as_seed_config(seed: Any, what: str) -> RandomSeedConfig:
    """``seed`` (an int, None or a config) as a config; ``TypeError`` naming ``what``."""
    try:
        return RandomSeedConfig.create_seed_config(seed)
    except ValueError as exc:
        raise TypeError(f"{what}: seed must be an int, a RandomSeedConfig or None; got "
                        f"{type(seed).__name__}") from exc
