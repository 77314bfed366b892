"""Ray's exceptions as the engine's typed errors.

A UDF's own exception never reaches here: the task catches it and yields it as an error
record (type, message, trimmed traceback), as a local worker does, so the physical layer
builds the same ``UserCodeError``. What remains are system failures (a dead worker, node or
actor, a lost object) and exceptions of the engine's task wrapper itself.
"""

from __future__ import annotations

from engine.errors import (
    ActorDiedError,
    ObjectLostError,
    RuntimeFailedError,
    SystemException,
    WorkerCrashedError,
)
from engine.runtime.interfaces import RemoteError


def from_ray_error(exc: BaseException, what: str) -> BaseException:
    """The engine's error for a Ray exception raised while ``what``."""
    from ray import exceptions as rx

    if isinstance(exc, (rx.ActorDiedError, rx.ActorUnavailableError, rx.RayActorError)):
        return ActorDiedError(f"{what}: the actor died: {_first_line(exc)}")
    if isinstance(exc, (rx.WorkerCrashedError, rx.NodeDiedError, rx.LocalRayletDiedError)):
        return WorkerCrashedError(f"{what}: its worker died: {_first_line(exc)}")
    if isinstance(exc, (rx.ObjectLostError, rx.ObjectFetchTimedOutError)):
        return ObjectLostError(f"{what}: a block was lost: {_first_line(exc)}")
    if isinstance(exc, rx.OutOfMemoryError):
        return WorkerCrashedError(f"{what}: Ray killed the worker for memory: "
                                  f"{_first_line(exc)}")
    if isinstance(exc, rx.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, rx.RayError):
            return from_ray_error(cause, what)
        if isinstance(cause, BaseException):
            return RemoteError(type(cause), type(cause).__name__, str(cause),
                               getattr(exc, "traceback_str", ""))
        return RemoteError(None, "RayTaskError", str(exc), "")
    if isinstance(exc, rx.RayError):
        return RuntimeFailedError(f"{what}: {type(exc).__name__}: {_first_line(exc)}")
    if isinstance(exc, SystemException):
        return exc
    return RuntimeFailedError(f"{what}: {type(exc).__name__}: {exc}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
