"""The log records Ray Data writes when an execution fails (``ray.data.exceptions``).

A failing UDF logs ``"Exception occurred in user code, ..."`` (unless
``DataContext.log_internal_stack_trace_to_stdout``) and ``"Full stack trace:"`` with the
traceback, marked ``hide=True`` as Ray marks the record it keeps off stdout. A failure of
the system (a dead worker, a lost block...) logs ``"Exception occurred in Ray Data or Ray
Core internal code."`` and an unhidden ``"Full stack trace:"``. Other errors (a bad file, a
bad argument) are the user's to read in the exception and log nothing.

The logger has a ``NullHandler``: without a logging configuration these records are not
printed (the exception itself is), and with one (or pytest's ``caplog``) they reach its
handlers like any other record.
"""

from __future__ import annotations

import logging

from engine.context import DataContext
from engine.errors import SystemException, UserCodeError

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


def log_failure(error: BaseException, ctx: DataContext) -> None:
    """Log the records Ray Data logs for ``error``, raised by an execution run with ``ctx``."""
    to_stdout = bool(getattr(ctx, "log_internal_stack_trace_to_stdout", False))
    exc_info = (type(error), error, error.__traceback__)
    if isinstance(error, UserCodeError):
        if getattr(ctx, "raise_original_map_exception", False):
            return  # the user asked for their own exception, unreported
        if not to_stdout:
            logger.error("Exception occurred in user code, with the abbreviated stack trace "
                         "below. The engine's internal frames are left out; set "
                         "`DataContext.log_internal_stack_trace_to_stdout` to True to log "
                         "the full stack trace.")
        logger.error("Full stack trace:", exc_info=exc_info, extra={"hide": not to_stdout})
    elif isinstance(error, SystemException):
        logger.error("Exception occurred in Ray Data or Ray Core internal code. If you "
                     "continue to see this error, please report it with the full stack "
                     "trace below.")
        logger.error("Full stack trace:", exc_info=exc_info, extra={"hide": False})
