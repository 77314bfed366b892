"""``expr.dt``: date and time functions, each an Arrow temporal kernel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.expressions.core import Expr, _call


def _dt_fn(func: str, doc: str) -> Callable[[DatetimeNamespace], Expr]:
    def fn(self: DatetimeNamespace) -> Expr:
        return _call(self._expr, func, f"dt.{func}()")

    fn.__name__, fn.__doc__ = func, doc
    return fn


def _dt_round_fn(how: str, doc: str) -> Callable[..., Expr]:
    def fn(self: DatetimeNamespace, unit: str) -> Expr:
        """Round to ``unit``: "year", "quarter", "month", "week", "day", "hour"... ."""
        call = f"dt.{how}({unit!r})"
        return _call(self._expr, f"{how}_temporal", call, multiple=1, unit=unit)

    fn.__name__, fn.__doc__ = how, doc
    return fn


@dataclass(frozen=True)
class DatetimeNamespace:
    """Date and time functions of an expression (``expr.dt``)."""

    _expr: Expr

    year = _dt_fn("year", "Return the year.")
    quarter = _dt_fn("quarter", "Return the quarter (1-4).")
    month = _dt_fn("month", "Return the month (1-12).")
    day = _dt_fn("day", "Return the day of the month.")
    day_of_week = _dt_fn("day_of_week", "Return the day of the week, Monday=0 to Sunday=6.")
    day_of_year = _dt_fn("day_of_year", "Return the day of the year (1-366).")
    hour = _dt_fn("hour", "Return the hour.")
    minute = _dt_fn("minute", "Return the minute.")
    second = _dt_fn("second", "Return the second.")
    millisecond = _dt_fn("millisecond", "Return the millisecond within the second.")
    microsecond = _dt_fn("microsecond", "Return the microsecond within the millisecond.")
    nanosecond = _dt_fn("nanosecond", "Return the nanosecond within the microsecond.")

    def strftime(self, fmt: str) -> Expr:
        """Return the timestamps formatted with the strftime pattern ``fmt``."""
        return _call(self._expr, "strftime", f"dt.strftime({fmt!r})", format=fmt)

    ceil = _dt_round_fn("ceil", "Return the timestamps rounded up to a whole ``unit``.")
    floor = _dt_round_fn("floor", "Return the timestamps rounded down to a whole ``unit``.")
    round = _dt_round_fn("round", "Return the timestamps rounded to the nearest ``unit``.")
