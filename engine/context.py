"""DataContext: the process-wide execution settings users reach for (a leaf module).

Mirrors ``ray.data.DataContext``: ``DataContext.get_current()`` returns the one context of
this process; a dataset captures a copy of it when it starts executing.
"""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

MiB = 1024 * 1024
GiB = 1024 * MiB
DEFAULT_TARGET_MAX_BLOCK_SIZE = 128 * MiB  # Ray Data's name for the default below


@dataclass
class ExecutionResources:
    """Limits on what one execution may use: CPUs, GPUs and object store memory (bytes)."""

    cpu: float | None = None
    gpu: float | None = None
    object_store_memory: float | None = None


@dataclass
class ExecutionOptions:
    """Options of the streaming executor.

    ``preserve_order`` makes every operator emit blocks in input order (deterministic output).
    ``resource_limits`` caps CPUs, GPUs and store memory for the execution.
    """

    preserve_order: bool = False
    resource_limits: ExecutionResources = field(default_factory=ExecutionResources)
    locality_with_output: bool = False
    verbose_progress: bool = False


def _default_memory_budget() -> int:
    """A third of physical RAM, like Ray's object store default (30%)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 * GiB
    return int(total * 0.3)


@dataclass
class DataContext:
    """Settings that shape every execution started from this process.

    Attributes:
        target_max_block_size: Blocks larger than this are split as they are produced.
        target_min_block_size: Smaller outputs of one task are coalesced up to this size.
        memory_budget: Bytes of blocks the shared block store may hold before producers are
            paused and kept blocks spill to disk. Defaults to 30% of RAM.
        max_errored_blocks: How many failed read/map blocks to drop (and count in stats)
            before an execution fails; ``-1`` means unlimited.
        execution_options: ``preserve_order`` and ``resource_limits``.
        enable_progress_bars: Show a progress bar per operator on a terminal.
        read_op_min_num_blocks: The least number of read tasks a read is split into.
        max_tasks_in_flight_per_actor: Calls queued on one actor of an actor pool.
        optimizer_enabled: Turn all logical optimizer rules off (for debugging and tests).
        inline_block_max_bytes: Blocks up to this size travel inline in messages instead of
            being written to shared memory.
        shuffle_strategy: Ray Data's name; accepted for compatibility (sort, groupby, join
            and shuffles always run as hash/range map-reduce exchanges).
        default_hash_shuffle_parallelism: The most partitions a groupby or map_groups uses
            when none is given (fewer when the input has fewer blocks).
        broadcast_join_threshold_bytes: A join side made of existing blocks totalling at
            most this is broadcast to tasks over the other side instead of shuffling both;
            0 turns broadcasting off.
    """

    target_max_block_size: int = DEFAULT_TARGET_MAX_BLOCK_SIZE
    target_min_block_size: int = 1 * MiB
    target_shuffle_max_block_size: int = 1 * GiB
    memory_budget: int = field(default_factory=_default_memory_budget)
    max_errored_blocks: int = 0
    execution_options: ExecutionOptions = field(default_factory=ExecutionOptions)
    enable_progress_bars: bool = True
    read_op_min_num_blocks: int = 8
    max_tasks_in_flight_per_actor: int = 4
    actor_pool_max_tasks_in_flight_to_actors: int = 4
    optimizer_enabled: bool = True
    disabled_rules: frozenset[str] = frozenset()
    inline_block_max_bytes: int = 64 * 1024
    task_output_credits: int = 2
    max_retries: int = 3
    enable_tensor_extension_casting: bool = True
    use_push_based_shuffle: bool = False
    shuffle_strategy: str = "hash_shuffle"
    default_hash_shuffle_parallelism: int = 200
    broadcast_join_threshold_bytes: int = 32 * MiB
    _execution_idx: int = 0  # executions started; reseeds RandomSeedConfig per execution
    extra: dict[str, Any] = field(default_factory=dict)

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _current: ClassVar[DataContext | None] = None

    @classmethod
    def get_current(cls) -> DataContext:
        """Return the process-wide context, creating it on first use."""
        with cls._lock:
            if DataContext._current is None:
                DataContext._current = DataContext()
            return DataContext._current

    @classmethod
    def _set_current(cls, context: DataContext) -> None:
        with cls._lock:
            DataContext._current = context

    def copy(self) -> DataContext:
        """Return an independent copy (executions snapshot the context with this)."""
        return copy.deepcopy(self)

    def set_config(self, key: str, value: Any) -> None:
        """Store an extra setting (Ray Data compatible)."""
        self.extra[key] = value

    def get_config(self, key: str, default: Any = None) -> Any:
        """Read an extra setting stored with :meth:`set_config`."""
        return self.extra.get(key, default)
