"""DataContext: the process-wide execution settings users reach for (a leaf module).

Mirrors ``ray.data.DataContext``: ``DataContext.get_current()`` returns the one context of
this process; a dataset captures a copy of it when it starts executing.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

MiB = 1024 * 1024
GiB = 1024 * MiB
DEFAULT_TARGET_MAX_BLOCK_SIZE = 128 * MiB  # Ray Data's name for the default below


# What ``target_max_block_size = None`` ("no limit", as in Ray Data) amounts to in byte math.
UNLIMITED_BLOCK_BYTES = 1 << 62


# Ray Data's default list; a different value is deprecated there and has no effect here.
DEFAULT_WRITE_FILE_RETRY_ON_ERRORS = ("AWS Error INTERNAL_FAILURE", "AWS Error NETWORK_CONNECTION",
                                      "AWS Error SLOW_DOWN", "AWS Error UNKNOWN (HTTP status 200)")


class FixedShapeTensorFormat(enum.Enum):
    """How fixed-shape tensor columns are stored (Ray Data's setting of the same name).

    The engine stores every fixed-shape tensor column as Arrow's canonical
    ``fixed_shape_tensor`` extension type, which is ``ARROW_NATIVE``; Ray's own ``V1``/``V2``
    extension types are accepted for ported scripts and store the same native type.
    """

    V1 = "v1"
    V2 = "v2"
    ARROW_NATIVE = "arrow_native"

    def to_type(self) -> Callable[..., Any]:
        """The type constructor of this format, called as ``to_type()(shape, dtype)``."""
        import pyarrow as pa

        def tensor_type(shape: tuple[int, ...], dtype: Any) -> Any:
            return pa.fixed_shape_tensor(dtype, tuple(shape))

        return tensor_type


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
        target_max_block_size: Blocks larger than this are split as they are produced;
            ``None`` means no limit.
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
        execution_no_progress_timeout_s: Seconds an execution may go without any operator
            taking in, producing or finishing anything (time spent waiting on the consumer
            does not count) before it fails with ``ExecutionTimeoutError`` naming each
            operator's state. ``-1`` disables the check.
        spill_dir: The directory in which the block store makes its private spill
            directory (``engine-spill-<random>``, mode 0700) when the cluster starts.
            ``None`` means ``TMPDIR`` (:func:`tempfile.gettempdir`). Read when the cluster
            starts: set it before the first execution or ``engine.init()``.
        log_internal_stack_trace_to_stdout: Mark the "Full stack trace:" record of a
            failing UDF as one to show (Ray Data's setting; see
            ``engine.physical.failure_log``).
        raise_original_map_exception: Log nothing when a UDF fails (the error raised is
            already an instance of the UDF's own exception type);
            ``RAY_DATA_RAISE_ORIGINAL_MAP_EXCEPTION=1`` sets it.
        arrow_fixed_shape_tensor_format: See :class:`FixedShapeTensorFormat`.
        enable_arrow_backed_pandas_conversion: Pandas batches and ``to_pandas()`` hold
            Arrow-backed columns (``int64[pyarrow]``, ``string[pyarrow]``: Ray Data 2.60's
            default, nulls as ``<NA>``); ``False`` gives numpy dtypes (ints with nulls as
            float64 with NaN), for pandas code that needs numpy-only operations.
        shuffle_strategy: Ray Data's name; accepted for compatibility (sort, groupby, join
            and shuffles always run as hash/range map-reduce exchanges).
        default_hash_shuffle_parallelism: The most partitions a groupby or map_groups uses
            when none is given (fewer when the input has fewer blocks).
        broadcast_join_threshold_bytes: A join side made of existing blocks totalling at
            most this is broadcast to tasks over the other side instead of shuffling both;
            0 turns broadcasting off.
        reads_in_driver: When this process iterates a dataset (``iter_batches``,
            ``iter_torch_batches``, ``iter_rows``) whose every task is the engine's own
            code (a read of a built-in format, column pruning, the local shuffle's
            permutation), run those tasks on threads of this process: their blocks reach
            the iterator without a trip through shared memory. ``False``: on the worker
            processes, as every other task.
    """

    target_max_block_size: int | None = DEFAULT_TARGET_MAX_BLOCK_SIZE
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
    spill_dir: str | None = None
    task_output_credits: int = 2
    max_retries: int = 3
    enable_tensor_extension_casting: bool = True
    use_push_based_shuffle: bool = False
    execution_no_progress_timeout_s: float = 30 * 60
    arrow_fixed_shape_tensor_format: FixedShapeTensorFormat = \
        FixedShapeTensorFormat.ARROW_NATIVE
    write_file_retry_on_errors: tuple[str, ...] = DEFAULT_WRITE_FILE_RETRY_ON_ERRORS
    log_internal_stack_trace_to_stdout: bool = False
    enable_arrow_backed_pandas_conversion: bool = True
    raise_original_map_exception: bool = field(
        default_factory=lambda: os.environ.get("RAY_DATA_RAISE_ORIGINAL_MAP_EXCEPTION",
                                               "0") not in ("", "0"))
    shuffle_strategy: str = "hash_shuffle"
    default_hash_shuffle_parallelism: int = 200
    broadcast_join_threshold_bytes: int = 32 * MiB
    reads_in_driver: bool = True
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
    def _set_current(cls, context: DataContext | None) -> DataContext | None:
        """Make ``context`` the process-wide one; return the one it replaces."""
        with cls._lock:
            previous = DataContext._current
            DataContext._current = context
            return previous

    @staticmethod
    @contextlib.contextmanager
    def current(context: DataContext) -> Iterator[None]:
        """Make ``context`` the current one inside a ``with`` block (nestable); the previous
        one comes back when the block ends, also when it raises.

            with DataContext.current(ctx):
                ds.materialize()          # runs with ctx's settings
        """
        previous = DataContext._set_current(context)
        try:
            yield
        finally:
            DataContext._set_current(previous)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "write_file_retry_on_errors" and \
                tuple(value) != DEFAULT_WRITE_FILE_RETRY_ON_ERRORS:
            warnings.warn("`write_file_retry_on_errors` is deprecated (as in Ray Data) and "
                          "has no effect: write tasks are retried on system failures up to "
                          "`max_retries`", DeprecationWarning, stacklevel=2)
            value = tuple(value)
        elif name == "arrow_fixed_shape_tensor_format" and \
                not isinstance(value, FixedShapeTensorFormat):
            raise TypeError("arrow_fixed_shape_tensor_format must be a "
                            f"FixedShapeTensorFormat; got {value!r}")
        super().__setattr__(name, value)

    def max_block_bytes(self) -> int:
        """``target_max_block_size`` as a number: ``None`` (no limit) is a huge size."""
        size = self.target_max_block_size
        return UNLIMITED_BLOCK_BYTES if size is None else int(size)

    def copy(self) -> DataContext:
        """Return an independent copy (executions snapshot the context with this)."""
        return copy.deepcopy(self)

    def set_config(self, key: str, value: Any) -> None:
        """Store an extra setting (Ray Data compatible)."""
        self.extra[key] = value

    def get_config(self, key: str, default: Any = None) -> Any:
        """Read an extra setting stored with :meth:`set_config`."""
        return self.extra.get(key, default)
