"""The runtime contract: what the physical layer may ask of a task/actor runtime.

The planner and the streaming executor import only this module of ``engine.runtime``.
``LocalCluster`` (worker processes over ZeroMQ, a shared-memory store) implements it on one
machine; a second implementation runs the same plans on Ray Core. Nothing here names a
socket, a process or a file: a backend is free to move blocks however it likes.

The items that flow between operators are typed:

* :class:`BlockRef`: a reference to one block (an Arrow table) held by the runtime;
* :class:`ValueOutput`: any other value a task yielded (partial aggregates, write results);
* anything else is a task input made before execution (a read task), opaque to the runtime.

No call waits forever: when the runtime itself fails, every waiting handle fails with a
typed error (``engine.errors.SystemException`` and its subclasses).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import pyarrow as pa

from engine.block import BlockMetadata
from engine.errors import EngineError


class BlockRef(ABC):
    """A reference to one block held by the runtime; owning it keeps the block alive.

    Attributes:
        block_id: Unique within the runtime's session.
        num_rows, size_bytes: Known without reading the block.
        input_files: Files the block was read from (for ``input_files()``).
    """

    __slots__ = ()

    block_id: str
    num_rows: int
    size_bytes: int
    input_files: tuple[str, ...]

    @property
    @abstractmethod
    def schema(self) -> pa.Schema | None:
        """The block's schema, known without reading it (``None`` if not recorded)."""

    @property
    def metadata(self) -> BlockMetadata:
        return BlockMetadata(self.num_rows, self.size_bytes, self.schema, self.input_files)

    @property
    @abstractmethod
    def in_store(self) -> bool:
        """Whether the block occupies the store's budget (small inline blocks do not)."""

    @abstractmethod
    def get(self) -> pa.Table:
        """Read the block (zero-copy where the backend allows)."""

    @property
    def exclusive(self) -> bool:
        """Whether the table :meth:`get` returns is the reader's alone: no other reader
        shares its memory, so views of it may be handed out writable."""
        return False


@dataclass(eq=False)  # exceptions compare (and hash) by identity
class RemoteError(EngineError):
    """A task raised on a worker: the original type (when it could be shipped), message and
    traceback with the engine's frames trimmed."""

    exc_type: type[BaseException] | None
    type_name: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}\n{self.traceback}"


@dataclass(frozen=True)
class ValueOutput:
    """A non-block item a task yielded (partial aggregates, write results...)."""

    value: Any
    size_bytes: int


def is_block(item: object) -> bool:
    """Whether an item flowing between operators is a block reference."""
    return isinstance(item, BlockRef)


@dataclass(frozen=True)
class StoreUsage:
    """The block store's bytes right now: held in memory, its budget, its peak, and the
    total ever spilled to disk (monotonic, so an execution can subtract its start)."""

    used_bytes: int
    budget_bytes: int
    peak_bytes: int
    spilled_bytes_total: int


@dataclass(frozen=True)
class NodeResources:
    """What one node has (``total``) and what is not held by actors (``available``)."""

    node_id: str
    total: dict[str, float]
    available: dict[str, float]


FailureKind = Literal["worker_died", "task_retried", "actor_restarted", "actor_died",
                      "block_lost", "runtime_failed"]


@dataclass(frozen=True)
class FailureEvent:
    """A system failure the runtime saw (and, where it could, recovered from)."""

    kind: FailureKind
    detail: str


class TaskHandle(Protocol):
    """One submitted task (or actor call): its streamed outputs, completion and error.

    A task yields outputs as it produces them; it may run ahead of its consumer by its
    ``credits`` outputs, then waits until :meth:`take` returns credits (backpressure).
    """

    key: int
    name: str
    done: bool
    error: BaseException | None
    cpu_seconds: float

    @property
    def has_output(self) -> bool: ...

    @property
    def waiting_for_credit(self) -> bool:
        """Running but stopped: every output its credits allow waits to be taken."""

    @property
    def finished(self) -> bool:
        """Done and every output taken."""

    def take(self, max_items: int | None = None) -> list[Any]:
        """Pop available outputs (``BlockRef`` or ``ValueOutput``) and return credits."""

    def cancel(self) -> None:
        """Stop the task; outputs not yet taken are dropped."""

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the task is done; return whether it is."""

    def iter_outputs(self, timeout: float | None = None) -> Iterator[Any]:
        """Yield outputs as they arrive until the task ends; raise its error, if any."""


class ActorHandle(Protocol):
    """One actor: a process holding a user object; its calls run in submission order."""

    actor_id: str
    ready: threading.Event  # set once the constructor ran (or the actor died)
    error: BaseException | None
    restarts: int

    @property
    def alive(self) -> bool: ...

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), *, name: str = "",
               credits: int | None = None, notify: Callable[[], None] | None = None,
               max_retries: int = 3) -> TaskHandle:
        """Run ``fn(instance, *args)`` on the actor after every earlier call."""

    def kill(self) -> None:
        """Stop the actor; calls still queued fail and never run."""


class Runtime(Protocol):
    """A task/actor runtime for Arrow blocks (see the module docstring).

    ``BlockRef`` arguments of a task (or lists of them) arrive in the function as tables.
    """

    num_cpus: int
    num_gpus: int

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), *, name: str = "",
               max_retries: int = 3, credits: int | None = None,
               notify: Callable[[], None] | None = None, local_ok: bool = False) -> TaskHandle:
        """Run ``fn(*args)`` as a task; its yielded outputs stream into the handle.

        ``max_retries`` covers system failures only (a dead worker, a lost block).
        ``notify`` is called (on any thread) whenever the handle changes. ``local_ok``:
        the task holds no user code, so a runtime may run it in the driver's process
        while its workers start.
        """

    def create_actor(self, cls: type, args: tuple[Any, ...] = (),
                     kwargs: dict[str, Any] | None = None, *, num_cpus: float = 1,
                     num_gpus: float = 0, max_restarts: int = 3,
                     env: dict[str, str] | None = None, memory: float = 0,
                     resources: dict[str, float] | None = None) -> ActorHandle:
        """Start an actor holding ``cls(*args, **kwargs)`` with the CPUs, GPUs, memory
        (bytes) and custom resources it asks for."""

    def put(self, table: pa.Table) -> BlockRef:
        """Store a block from the driver and return its reference."""

    def get(self, refs: list[BlockRef]) -> list[pa.Table]:
        """Read blocks."""

    def free(self, refs: list[BlockRef]) -> None:
        """Release blocks now instead of when their last reference goes."""

    def keep(self, ref: BlockRef, owner: str | None = None) -> None:
        """Mark a block that must outlive the stream (materialized, all-to-all
        partitions) as spillable: past the budget it moves to disk, not blocking. Its
        spilled bytes count for ``owner`` (an operator of an execution)."""

    def spill_to(self, target_bytes: int) -> int:
        """Move kept blocks to disk until the store holds at most ``target_bytes`` (an
        execution whose budget is below the store's); return the bytes moved."""

    def take_spilled_bytes(self, owner: str) -> int:
        """Bytes spilled so far of the blocks ``owner`` kept; forget the owner."""

    def store_usage(self) -> StoreUsage:
        """The store's bytes in memory, budget, peak and total spilled."""

    def cluster_resources(self) -> dict[str, float]:
        """Totals of the whole cluster: ``CPU``, ``GPU``, ``object_store_memory``."""

    def available_resources(self) -> dict[str, float]:
        """``CPU`` and ``GPU`` not held by actors."""

    def nodes(self) -> list[NodeResources]:
        """Resources per node."""

    def add_failure_listener(self, listener: Callable[[FailureEvent], None]) -> \
            Callable[[], None]:
        """Call ``listener`` (on the runtime's thread: keep it short) for each system
        failure; return a function that removes it."""

    def shutdown(self) -> None:
        """Stop every worker and actor and release the store."""
