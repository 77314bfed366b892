"""Public names of the errors the engine raises, at Ray Data's module path
(``ray.data.exceptions`` -> ``engine.exceptions``).

- :class:`UserCodeException` (also ``RayDataUserCodeException``): a UDF raised. It is
  :class:`engine.errors.UserCodeError`, so the error raised is usually also an instance of
  the UDF's own exception type (``except ZeroDivisionError`` keeps working).
- :class:`SystemException`: a failure of the system, not of user code (a dead worker or
  actor, a lost block, a failed store write); its subclasses are in ``engine.errors``.
- :class:`ExecutionTimeoutError`: an execution made no progress for too long.

The log records Ray Data writes for these are written by ``engine.physical.failure_log``.
"""

from __future__ import annotations

from engine.errors import ExecutionTimeoutError, SystemException, UserCodeError

UserCodeException = UserCodeError
RayDataUserCodeException = UserCodeError

__all__ = ["ExecutionTimeoutError", "RayDataUserCodeException", "SystemException",
           "UserCodeException"]
