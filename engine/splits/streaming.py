"""``streaming_split``: one execution feeding ``n`` concurrent consumers (trainer ranks).

:func:`streaming_split` returns ``n`` :class:`DataIterator` objects that share one
:class:`SplitCoordinator`. Each pass over an iterator (``iter_batches``, ``iter_rows``...)
is one *epoch*; every epoch is one execution of the dataset, and its blocks go to whichever
consumer asks for them. Consumers may be threads of this process, or other processes: a
``DataIterator`` that was pickled (``spawn``) or inherited (``fork``) into another process
asks the coordinator for its blocks over a local socket and reads them from the shared
block store by path (:mod:`engine.splits.transport`).

With ``equal=True`` each consumer gets exactly ``total // n`` rows (up to ``n - 1`` rows
are dropped, as in Ray Data): a block is handed out only while the consumer's rows stay
within what every consumer has been assigned, and when the execution ends the blocks still
queued are cut so that every share is exact.

Epochs: the execution of epoch ``e + 1`` starts when a consumer asks for it and every
consumer is done with epoch ``e`` (reached its end or closed its iterator). Ray Data
instead waits until every consumer has *begun* the next epoch, which makes consuming the
iterators one after another in one thread hang; here that works. A consumer that never
iterates still holds the others back at the next epoch in both engines: its share of the
current epoch is not done.

A slow consumer holds the others back within a bounded buffer: with ``equal=True`` the
next block goes to the consumer with the fewest rows assigned, and when that consumer is
iterating this epoch but already has ``MAX_QUEUED_BLOCKS`` blocks waiting, the consumer
that wants more waits for it (the slow one can always take its next block, so this never
deadlocks). A consumer that has not begun the epoch yet (iterators drained one after
another in one thread) holds nobody back: blocks queued for it past the bound are marked
spillable instead, so the store can move them to disk rather than pass its budget.

A consumer process that dies in the middle of an epoch (its connection drops without a
goodbye) fails the epoch for the others with :class:`SplitConsumerDiedError`; so does one
that died between epochs, found when another consumer would wait for it.

A consumer that stops early (``break``) is done for that epoch: it no longer holds the
others back. Blocks assigned to it afterwards (``equal=True`` keeps the shares balanced)
are marked spillable so they cannot hold the store over its budget; when every consumer
has stopped, the execution is cancelled.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.arguments import check_count
from engine.consumption.iteration import BatchIterable
from engine.errors import SplitConsumerDiedError
from engine.runtime.interfaces import is_block

if TYPE_CHECKING:
    from engine.dataset import Dataset
    from engine.splits.transport import SplitServer

# Blocks queued for a consumer that is iterating before the one that wants more waits.
MAX_QUEUED_BLOCKS = 4
# How often a waiting consumer checks that the consumer processes it waits for are alive.
_LIVENESS_POLL_S = 0.5

_NEED_MORE = object()  # take(): nothing queued for this consumer yet
_END = object()  # take(): this consumer's share of the epoch is delivered


class _Epoch:
    """One execution of the dataset and how its blocks are shared out."""

    def __init__(self, number: int, source: Iterator[Any], n: int) -> None:
        self.number = number
        self.source = source
        self.queues: list[deque[Any]] = [deque() for _ in range(n)]
        self.assigned = [0] * n  # rows queued for each consumer so far
        self.delivered = [0] * n  # rows handed out to each consumer
        self.final: list[deque[Any]] | None = None  # equal=True: exact shares at the end
        self.exhausted = False
        self.pulling = False  # one consumer at a time pulls from the execution, unlocked
        self.error: BaseException | None = None
        self.done = [False] * n
        self.stopped = [False] * n  # done before its end (closed its iterator)
        self.closed = False


class SplitCoordinator:
    """Hands the blocks of one execution per epoch to ``n`` consumers (thread-safe)."""

    def __init__(self, ds: Dataset, n: int, equal: bool) -> None:
        self._ds = ds
        self.n = n
        self.equal = equal
        self._cond = threading.Condition()
        self._epoch: _Epoch | None = None
        self._joined = [0] * n  # the last epoch each consumer began
        self._pids: list[int | None] = [None] * n  # consumer processes, for liveness
        self.executor: Any = None
        self.server: SplitServer | None = None

    # -- the consumer protocol ------------------------------------------------------------
    def begin(self, index: int, pid: int | None = None) -> int:
        """Start consumer ``index``'s next pass; return its epoch number (waits while the
        other consumers are still on the previous epoch). ``pid``: the consumer's process,
        when it is not this one."""
        with self._cond:
            self._pids[index] = pid
            want = self._joined[index] + 1
            while True:
                epoch = self._epoch
                if epoch is not None and epoch.number == want:
                    break
                if epoch is None or all(epoch.done):
                    assert epoch is None or epoch.number == want - 1, "epochs out of step"
                    self._start_epoch(want)
                    break
                self._wait_for_others(epoch)
                if epoch.error is not None and isinstance(epoch.error, SplitConsumerDiedError):
                    raise epoch.error
            self._joined[index] = want
            return want

    def next_block(self, index: int, number: int) -> Any | None:
        """The next block reference for consumer ``index`` in epoch ``number``; ``None``
        once its share is delivered. Raises the execution's error."""
        with self._cond:
            epoch = self._current(number)
            while True:
                if epoch.error is not None:
                    self._mark_done(epoch, index, stopped=False)
                    raise epoch.error
                item = self._take(epoch, index)
                if item is _END:
                    self._mark_done(epoch, index, stopped=False)
                    return None
                if item is not _NEED_MORE:
                    self._cond.notify_all()  # a consumer held back for this one may go on
                    return item
                if epoch.pulling or self._lagging(epoch) is not None:
                    self._wait_for_others(epoch)
                    continue
                self._pull(epoch, index)

    def finish(self, index: int, number: int) -> None:
        """Consumer ``index`` closed its iterator: it is done with epoch ``number``."""
        with self._cond:
            epoch = self._epoch
            if epoch is not None and epoch.number == number and not epoch.done[index]:
                self._mark_done(epoch, index, stopped=True)

    def lost(self, index: int, number: int) -> None:
        """Consumer ``index``'s process went away in the middle of epoch ``number``."""
        with self._cond:
            epoch = self._epoch
            if epoch is not None and epoch.number == number and not epoch.done[index]:
                self._fail_dead(epoch, index)

    # -- waiting for other consumers ------------------------------------------------------
    def _lagging(self, epoch: _Epoch) -> int | None:
        """The consumer the next pulled block would go to, if it is iterating this epoch
        and already has ``MAX_QUEUED_BLOCKS`` waiting (then the puller waits for it)."""
        if not self.equal or epoch.exhausted or epoch.final is not None:
            return None
        target = epoch.assigned.index(min(epoch.assigned))
        if epoch.done[target] or self._joined[target] != epoch.number:
            return None
        return target if len(epoch.queues[target]) >= MAX_QUEUED_BLOCKS else None

    def _wait_for_others(self, epoch: _Epoch) -> None:
        """Wait for a change; meanwhile check that the consumer processes this one may be
        waiting for are alive (a dead one fails the epoch)."""
        if self._cond.wait(_LIVENESS_POLL_S):
            return
        for j, pid in enumerate(self._pids):
            if pid is not None and not epoch.done[j] and not _alive(pid):
                self._fail_dead(epoch, j)

    def _fail_dead(self, epoch: _Epoch, index: int) -> None:
        if epoch.error is None:
            pid = self._pids[index]  # None for a consumer on Ray (any node)
            who = f"consumer {index}" + (f" (process {pid})" if pid is not None else "")
            epoch.error = SplitConsumerDiedError(
                f"streaming_split: {who} died "
                f"during epoch {epoch.number}; the other consumers' shares of this epoch "
                "are incomplete")
        self._mark_done(epoch, index, stopped=True)
        self._pids[index] = None

    # -- internals (called with the lock held) ---------------------------------------------
    def _current(self, number: int) -> _Epoch:
        epoch = self._epoch
        if epoch is None or epoch.number != number:
            raise RuntimeError(f"streaming_split: epoch {number} is over; start a new pass "
                               "over the iterator")
        return epoch

    def _start_epoch(self, number: int) -> None:
        if self._epoch is not None:
            self._close_source(self._epoch)
        source = self._ds.iter_internal_refs()
        self.executor = self._ds._last_executor
        self._epoch = _Epoch(number, source, self.n)
        self._cond.notify_all()

    def _take(self, epoch: _Epoch, index: int) -> Any:
        if epoch.final is not None:
            queue = epoch.final[index]
            return queue.popleft() if queue else _END
        queue = epoch.queues[index]
        if not self.equal:
            if queue:
                return queue.popleft()
            return _END if epoch.exhausted else _NEED_MORE
        # Hand out a block only while this consumer stays within what every consumer has
        # been assigned: min(assigned) <= total // n, so no share can overshoot.
        if queue and epoch.delivered[index] + queue[0].num_rows <= min(epoch.assigned):
            ref = queue.popleft()
            epoch.delivered[index] += ref.num_rows
            return ref
        return _NEED_MORE

    def _pull(self, epoch: _Epoch, index: int) -> None:
        """Pull one block from the execution with the lock released (other consumers keep
        taking what is queued for them meanwhile) and queue it."""
        epoch.pulling = True
        ref: Any = None
        ended = False
        self._cond.release()
        try:
            while ref is None:
                item = next(epoch.source)
                if is_block(item):  # skip non-block outputs
                    ref = item
        except StopIteration:
            ended = True
        except BaseException as exc:
            epoch.error = exc
        finally:
            self._cond.acquire()
            epoch.pulling = False
            self._cond.notify_all()
        if epoch.error is not None:
            return
        if ended:
            epoch.exhausted = True
            if self.equal:
                self._finalize(epoch)
            return
        target = index if not self.equal else epoch.assigned.index(min(epoch.assigned))
        epoch.queues[target].append(ref)
        epoch.assigned[target] += ref.num_rows
        if len(epoch.queues[target]) > MAX_QUEUED_BLOCKS:
            _mark_spillable(ref)  # queued for a consumer that has not begun the epoch
        if epoch.stopped[target]:
            # Its share is still counted (the others get exactly theirs, as in Ray Data),
            # but only its latest block is kept, for the final top-up: the rest is freed.
            while len(epoch.queues[target]) > 1:
                epoch.queues[target].popleft()
            _mark_spillable(ref)
        if epoch.closed:  # every consumer stopped while this pull ran
            self._close_source(epoch)

    def _mark_done(self, epoch: _Epoch, index: int, *, stopped: bool) -> None:
        epoch.done[index] = True
        if stopped:
            epoch.stopped[index] = True
            if self.equal:  # see _pull: only the latest block stays, for the top-up
                while len(epoch.queues[index]) > 1:
                    epoch.queues[index].popleft()
            for ref in epoch.queues[index]:
                _mark_spillable(ref)
            if epoch.final is not None:
                epoch.final[index].clear()
            if not self.equal:
                epoch.queues[index].clear()
        if all(epoch.done):
            epoch.queues = [deque() for _ in range(self.n)]
            epoch.final = [deque() for _ in range(self.n)] if epoch.final is not None \
                else None
            if not epoch.exhausted:
                self._close_source(epoch)  # every consumer stopped early: cancel the run
        self._cond.notify_all()

    def _close_source(self, epoch: _Epoch) -> None:
        epoch.closed = True
        if epoch.pulling:
            return  # the puller closes it when its pull returns
        close = getattr(epoch.source, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def _finalize(self, epoch: _Epoch) -> None:
        """The execution is over: give each consumer exactly ``total // n`` rows in all."""
        from engine import session

        target = sum(epoch.assigned) // self.n
        pool = [ref for queue in epoch.queues for ref in queue]
        put = session.get_cluster().put
        final: list[deque[Any]] = [deque() for _ in range(self.n)]
        cursor = 0
        offset = 0  # rows of pool[cursor] already handed out
        for i in range(self.n):
            need = 0 if epoch.stopped[i] else target - epoch.delivered[i]
            while need > 0 and cursor < len(pool):
                ref = pool[cursor]
                take = min(need, ref.num_rows - offset)
                if offset == 0 and take == ref.num_rows:
                    final[i].append(ref)
                else:
                    final[i].append(put(ref.get().slice(offset, take)))
                need -= take
                offset += take
                if offset == ref.num_rows:
                    cursor, offset = cursor + 1, 0
        epoch.final = final
        epoch.queues = [deque() for _ in range(self.n)]  # what is not in `final` is dropped


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in (b"Z", b"X")


def _mark_spillable(ref: Any) -> None:
    """Let a block nobody will read soon spill rather than hold the store over budget."""
    if getattr(ref, "in_store", False) and getattr(ref, "_store", None) is not None:
        ref._store.mark_spillable(ref.block_id)


class DataIterator(BatchIterable):
    """One consumer's view of a dataset (``streaming_split`` hands out ``n`` of these).

    Offers ``iter_batches``, ``iter_rows`` and ``iter_torch_batches`` like a Dataset; each
    call is one pass (epoch). It can be handed to another process (pickled for ``spawn``,
    or inherited by ``fork``) and consumed there.
    """

    def __init__(self, coordinator: SplitCoordinator | None, index: int, *,
                 address: str | None = None, authkey: bytes | None = None) -> None:
        self._coordinator = coordinator
        self._index = index
        self._owner_pid = os.getpid() if coordinator is not None else -1
        server = coordinator.server if coordinator is not None else None
        self._address = server.address if server is not None else address
        self._authkey = server.authkey if server is not None else authkey

    def world_size(self) -> int:
        """How many consumers share the execution."""
        if self._coordinator is not None:
            return self._coordinator.n
        raise RuntimeError("world_size is known in the process that called streaming_split")

    def _block_refs(self) -> Iterator[Any]:
        if self._coordinator is None or os.getpid() != self._owner_pid:
            from engine.splits.transport import remote_block_refs

            if self._address is None or self._authkey is None:
                raise RuntimeError("this DataIterator has no coordinator to reach from "
                                   "another process")
            yield from remote_block_refs(self._address, self._authkey, self._index)
            return
        coordinator = self._coordinator
        number = coordinator.begin(self._index)
        ended = False
        try:
            while True:
                ref = coordinator.next_block(self._index, number)
                if ref is None:
                    ended = True
                    return
                yield ref
        finally:
            if not ended:
                coordinator.finish(self._index, number)

    def __reduce__(self) -> tuple[Any, ...]:
        if self._address is None:
            raise TypeError("this DataIterator cannot be sent to another process: its "
                            "coordinator has no server")
        return (_remote_iterator, (self._index, self._address, self._authkey))

    def stats(self) -> str:
        """Statistics of the latest pass: the execution's operators (known in the process
        that called ``streaming_split``) and this consumer's time breakdown: how long it
        waited for data, per batch and in total, and where the iterator spent its time."""
        from engine.physical.stats import format_stats

        coordinator = self._coordinator
        if coordinator is None or os.getpid() != self._owner_pid:
            execution = "(execution stats are kept by the process that called " \
                "streaming_split)"
        else:
            ex = coordinator.executor
            execution = format_stats(ex.summary() if ex is not None else None)
        return execution + self._iterator_stats()

    def __repr__(self) -> str:
        return f"DataIterator(index={self._index})"


def _remote_iterator(index: int, address: str, authkey: bytes) -> DataIterator:
    # Import the transports now, on the thread that unpickles the iterator: a pass reads
    # blocks on a background thread, and an import there was seen to wait forever on the
    # interpreter's import lock inside a Ray worker.
    import importlib

    for name in ("engine.runtime.block_store", "engine.splits.transport",
                 "engine.splits.transport_ray"):
        importlib.import_module(name)

    return DataIterator(None, index, address=address, authkey=authkey)


def streaming_split(ds: Dataset, n: int, equal: bool) -> list[DataIterator]:
    """``n`` iterators over one execution per epoch of ``ds`` (see the module docstring)."""
    check_count(n, "streaming_split")
    from engine.splits.transport import start_server

    coordinator = SplitCoordinator(ds, n, equal)
    start_server(coordinator)
    return [DataIterator(coordinator, i) for i in range(n)]
