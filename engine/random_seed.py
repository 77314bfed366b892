"""``RandomSeedConfig``: how a random API's seed behaves from one execution to the next.

A leaf module (imports nothing of the engine), as in Ray Data 2.60 where the class is
``ray.data.RandomSeedConfig``:

- ``seed=None``: every execution draws fresh entropy (non-deterministic).
- ``seed=s, reseed_after_execution=False``: every execution uses ``s``: the same order each
  time. An ``int`` seed passed to a random API means exactly this.
- ``seed=s, reseed_after_execution=True`` (the class's default): execution ``k`` uses the
  pair ``(k, s)``: reproducible across runs of a script, different in every epoch.

Here every random API accepts one, ``local_shuffle_seed`` included: for a local shuffle
buffer the execution index is the number of the pass over the iterable (epoch 0, 1, ...).
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass
from typing import Any

# numpy's legacy seeding (RandomState, np.random.seed) takes seeds below 2**32.
NUMPY_RNG_SEED_MAX = 2**32


@dataclass(frozen=True)
class SeedTuple:
    """A base seed and, when reseeding, the execution it is for."""

    seed: int
    execution_idx: int | None = None

    def to_rng_args(self, task_idx: int) -> tuple[int, ...]:
        """The entropy for ``np.random.default_rng`` of task ``task_idx``."""
        if self.execution_idx is None:
            return (task_idx, self.seed)
        return (task_idx, self.execution_idx, self.seed)


@dataclass
class RandomSeedConfig:
    """The seed of a random operation and whether it changes after each execution.

    Args:
        seed: The base seed; ``None`` for a non-deterministic operation.
        reseed_after_execution: With a base seed: ``True`` combines it with the index of
            the execution (a new, reproducible order every epoch), ``False`` uses it as is
            (the same order every epoch). Ignored when ``seed`` is ``None``.
        use_timestamp_as_default: Without a base seed, fix one from the clock when the plan
            is built (so retried tasks draw the same numbers) instead of fresh entropy.

    Example:
        >>> import engine as ed
        >>> cfg = ed.RandomSeedConfig(seed=42, reseed_after_execution=True)
        >>> for epoch in range(2):  # doctest: +SKIP
        ...     for batch in ds.iter_batches(local_shuffle_buffer_size=1000,
        ...                                  local_shuffle_seed=cfg):
        ...         ...
    """

    seed: int | None = None
    reseed_after_execution: bool = True
    use_timestamp_as_default: bool = False

    def __post_init__(self) -> None:
        if self.seed is not None and (isinstance(self.seed, bool)
                                      or not isinstance(self.seed, numbers.Integral)):
            raise ValueError("Seed must be an integer or None.")
        if self.seed is not None:
            self.seed = int(self.seed)

    def get_seed_tuple(self, *, data_context: Any = None,
                       execution_idx: int | None = None) -> SeedTuple | None:
        """The seed of one execution: ``None`` when non-deterministic.

        The execution index is ``execution_idx`` if given, else the ``_execution_idx`` of
        ``data_context`` (0 when it has none).
        """
        if self.seed is None:
            return None
        if not self.reseed_after_execution:
            return SeedTuple(self.seed)
        if execution_idx is None:
            execution_idx = int(getattr(data_context, "_execution_idx", 0) or 0)
        return SeedTuple(self.seed, execution_idx)

    @classmethod
    def create_seed_config(cls, seed: int | RandomSeedConfig | None, *,
                           use_timestamp_as_default: bool = False) -> RandomSeedConfig:
        """The config of a random API's ``seed`` argument: an ``int`` (or ``None``) never
        reseeds; a ``RandomSeedConfig`` keeps its own choice."""
        if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
            return cls(seed=None if seed is None else int(seed), reseed_after_execution=False,
                       use_timestamp_as_default=use_timestamp_as_default)
        if isinstance(seed, RandomSeedConfig):
            return cls(seed=seed.seed, reseed_after_execution=seed.reseed_after_execution,
                       use_timestamp_as_default=use_timestamp_as_default)
        raise ValueError(f"Invalid seed type: {type(seed)}")


def get_timestamp_seed() -> int:
    """A seed taken from the clock."""
    return time.time_ns() % NUMPY_RNG_SEED_MAX


def get_single_integer_random_seed(seed_config: RandomSeedConfig, data_context: Any = None,
                                   *, execution_idx: int | None = None) -> int | None:
    """One integer seed (below ``2**32``) for an RNG that takes only one, or ``None``."""
    seed = seed_config.get_seed_tuple(data_context=data_context, execution_idx=execution_idx)
    if seed is None:
        return get_timestamp_seed() if seed_config.use_timestamp_as_default else None
    if seed.execution_idx is None:
        return seed.seed
    # A hash of ints is the same in every process (no string hashing involved).
    return hash((seed.seed, seed.execution_idx)) % NUMPY_RNG_SEED_MAX


def rng_entropy(seed: int | RandomSeedConfig | None, execution_idx: int) -> Any:
    """What ``np.random.default_rng`` takes for execution ``execution_idx`` of an API whose
    seed argument is ``seed`` (``None``: fresh entropy)."""
    config = RandomSeedConfig.create_seed_config(seed)
    found = config.get_seed_tuple(execution_idx=execution_idx)
    if found is None:
        return get_timestamp_seed() if config.use_timestamp_as_default else None
    if found.execution_idx is None:
        return found.seed
    return [found.seed, found.execution_idx]


def seed_for_execution(config: RandomSeedConfig, execution_idx: int) -> int | None:
    """One integer seed for execution ``execution_idx`` of an operation seeded by
    ``config`` (``None``: non-deterministic)."""
    return get_single_integer_random_seed(config, execution_idx=execution_idx)


def as_seed_config(seed: Any, what: str) -> RandomSeedConfig:
    """``seed`` (an int, None or a config) as a config; ``TypeError`` naming ``what``."""
    try:
        return RandomSeedConfig.create_seed_config(seed)
    except ValueError as exc:
        raise TypeError(f"{what}: seed must be an int, a RandomSeedConfig or None; got "
                        f"{type(seed).__name__}") from exc
