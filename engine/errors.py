"""The engine's error hierarchy (a leaf module: imports nothing of the engine).

User mistakes are raised eagerly when a plan is built (``ValueError``/``TypeError`` naming
the argument). Failures that happen remotely carry the operator, the task and the remote
traceback. Every error here survives pickling, because workers raise them too.
"""

from __future__ import annotations

import threading
from typing import Any


class EngineError(Exception):
    """Base class of every error the engine raises on its own behalf."""


class UserCodeError(EngineError):
    """A user-defined function (UDF) raised.

    Instances raised to the user are usually also instances of the original exception
    type (see :func:`user_code_error`), so ``except ValueError`` in ported code still works.
    """

    def __init__(self, message: str, operator: str = "", remote_traceback: str = "") -> None:
        # Not super(): in a dual class the next __init__ is the original exception's,
        # whose signature is the user's (``MyError(code, detail)``), not ours.
        Exception.__init__(self, message)
        self.operator = operator
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (UserCodeError, (self.args[0] if self.args else "", self.operator,
                                self.remote_traceback))

    def __str__(self) -> str:
        base = self.args[0] if self.args else ""
        if self.remote_traceback:
            return f"{base}\n\n{self.remote_traceback.rstrip()}"
        return str(base)


class UDFOutputError(EngineError, TypeError, ValueError):
    """A UDF returned something that is not a batch (``map_batches``), a row dict (``map``)
    or a list of rows (``flat_map``).

    A ``TypeError`` because the value's type is what is wrong, and a ``ValueError`` because
    that is what Ray Data raises here: ported ``except ValueError`` code still catches it.
    """


class SystemException(EngineError):
    """A failure of the system, not of user code: a dead worker or actor, a lost block, a
    full disk in a block write or a spill, the runtime itself failing.

    Tasks are retried on these within ``max_retries``; they are never reported as the UDF's
    error and never counted against ``max_errored_blocks``.
    """


class WorkerCrashedError(SystemException):
    """A worker process died while running a task, and the task ran out of retries."""


class ActorDiedError(SystemException):
    """An actor process died and could not be restarted within ``max_restarts``."""


class ObjectLostError(SystemException):
    """A block's file is gone and it cannot be rebuilt."""


class StoreWriteError(SystemException):
    """A block could not be written to the store or spilled to disk (disk full, I/O error)."""


class RuntimeFailedError(SystemException):
    """The runtime's own thread failed; every call waiting on it fails with this."""


class ExecutionTimeoutError(EngineError, TimeoutError):
    """An execution made no progress for ``DataContext.execution_no_progress_timeout_s``;
    the message names each operator's state."""


class ResourceUnavailableError(EngineError, ValueError):
    """A task or actor asks for resources the cluster can never provide."""


class DatasetReadError(EngineError, ValueError):
    """A file could not be read; the message names the file.

    A ``ValueError`` too: Ray Data raises one (pyarrow's ``ArrowInvalid``) for a file whose
    content does not parse."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (DatasetReadError, (self.args[0] if self.args else "", self.path))


_subclass_cache: dict[type, type] = {}
_subclass_lock = threading.Lock()


def _dual_class(original: type[BaseException]) -> type | None:
    """Return a class inheriting from both ``UserCodeError`` and ``original``, if possible."""
    with _subclass_lock:
        if original in _subclass_cache:
            return _subclass_cache[original]
        try:
            cls = type(
                f"UserCodeError({original.__name__})",
                (UserCodeError, original),
                {"__module__": __name__, "__reduce__": _reduce_dual},
            )
        except TypeError:  # incompatible layouts (e.g. some C extension exceptions)
            cls = None
        _subclass_cache[original] = cls  # type: ignore[assignment]
        return cls


def _reduce_dual(self: UserCodeError) -> tuple[Any, ...]:
    # The class was built with bases (UserCodeError, original); searching the MRO would
    # find EngineError (UserCodeError's own base) first and lose the original type.
    original = type(self).__bases__[1]
    return (user_code_error, (original, self.args[0] if self.args else "", self.operator,
                              self.remote_traceback))


def user_code_error(original: type[BaseException], message: str, operator: str,
                    remote_traceback: str) -> UserCodeError:
    """Build the error raised in the driver when a UDF raised ``original`` remotely.

    The result is both a :class:`UserCodeError` and, where Python allows it, an instance of
    ``original``.
    """
    cls = _dual_class(original) if isinstance(original, type) else None
    if cls is None:
        return UserCodeError(message, operator, remote_traceback)
    try:  # the original's own __new__: OSError and its subclasses refuse Exception's
        err: Any = original.__new__(cls)
    except Exception:  # a __new__ that insists on the user's own arguments
        return UserCodeError(message, operator, remote_traceback)
    UserCodeError.__init__(err, message, operator, remote_traceback)
    return err  # type: ignore[no-any-return]


class SplitConsumerDiedError(EngineError, RuntimeError):
    """A ``streaming_split`` consumer in another process (a trainer rank) died in the middle
    of an epoch. The other consumers of that epoch get this error instead of hanging or
    quietly training on a share that no longer matches the others'."""


class GroupTooLargeError(EngineError):
    """One group of ``groupby(...).map_groups(fn)`` is larger than the memory budget.

    ``map_groups`` hands each group to the function whole, so a group must fit in memory;
    the message names the key value, the group's size and the budget. Raise the budget
    (``DataContext.memory_budget``) or group by finer keys.
    """
