"""``expr.str``: string functions, each an Arrow kernel (``utf8_*``, ``*_substring``...)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.expressions.core import Expr, FunctionExpr, _args_text, _call, lit


def _str_fn(func: str, method: str, doc: str) -> Callable[[StringNamespace], Expr]:
    def fn(self: StringNamespace) -> Expr:
        return _call(self._expr, func, f"str.{method}()")

    fn.__name__, fn.__doc__ = method, doc
    return fn


def _str_pattern_fn(func: str, method: str, doc: str) -> Callable[..., Expr]:
    def fn(self: StringNamespace, pattern: str, **kwargs: Any) -> Expr:
        call = f"str.{method}({_args_text(pattern, **kwargs)})"
        return _call(self._expr, func, call, pattern=pattern, **kwargs)

    fn.__name__ = method
    fn.__doc__ = f"Return, per string: {doc} Keyword options (``ignore_case``...) go to Arrow."
    return fn


def _str_trim_fn(func: str, method: str, where: str) -> Callable[..., Expr]:
    def fn(self: StringNamespace, characters: str | None = None) -> Expr:
        if characters is None:
            return _call(self._expr, f"{func}_whitespace", f"str.{method}()")
        return _call(self._expr, func, f"str.{method}({characters!r})", characters=characters)

    fn.__name__ = method
    fn.__doc__ = f"Return the strings without {where} whitespace (or ``characters``)."
    return fn


def _str_pad_fn(func: str, method: str, how: str) -> Callable[..., Expr]:
    def fn(self: StringNamespace, width: int, padding: str = " ") -> Expr:
        call = f"str.{method}({_args_text(width, padding)})"
        return _call(self._expr, func, call, width=width, padding=padding)

    fn.__name__, fn.__doc__ = method, f"Return the strings {how} ``width`` characters."
    return fn


@dataclass(frozen=True)
class StringNamespace:
    """String functions of an expression (``expr.str``), backed by ``pyarrow.compute``."""

    _expr: Expr

    len = _str_fn("utf8_length", "len", "Return the length of each string in characters.")
    length = len
    byte_len = _str_fn("binary_length", "byte_len", "Return the length of each string in bytes.")
    upper = _str_fn("utf8_upper", "upper", "Return the strings upper-cased.")
    lower = _str_fn("utf8_lower", "lower", "Return the strings lower-cased.")
    capitalize = _str_fn("utf8_capitalize", "capitalize", "Return the strings capitalized.")
    title = _str_fn("utf8_title", "title", "Return the strings with each word capitalized.")
    swapcase = _str_fn("utf8_swapcase", "swapcase", "Return the strings with case swapped.")
    reverse = _str_fn("utf8_reverse", "reverse", "Return the strings reversed.")
    is_alpha = _str_fn("utf8_is_alpha", "is_alpha", "Return whether each string is alphabetic.")
    is_alnum = _str_fn("utf8_is_alnum", "is_alnum", "Return whether each string is alphanumeric.")
    is_digit = _str_fn("utf8_is_digit", "is_digit", "Return whether each string is digits.")
    is_decimal = _str_fn("utf8_is_decimal", "is_decimal", "Return whether each is decimal.")
    is_numeric = _str_fn("utf8_is_numeric", "is_numeric", "Return whether each is numeric.")
    is_space = _str_fn("utf8_is_space", "is_space", "Return whether each is whitespace.")
    is_lower = _str_fn("utf8_is_lower", "is_lower", "Return whether each is lower-case.")
    is_upper = _str_fn("utf8_is_upper", "is_upper", "Return whether each is upper-case.")
    is_title = _str_fn("utf8_is_title", "is_title", "Return whether each is title-cased.")
    is_printable = _str_fn("utf8_is_printable", "is_printable", "Return whether printable.")
    is_ascii = _str_fn("string_is_ascii", "is_ascii", "Return whether each string is ASCII.")

    starts_with = _str_pattern_fn("starts_with", "starts_with", "Starts with ``pattern``?")
    ends_with = _str_pattern_fn("ends_with", "ends_with", "Ends with ``pattern``?")
    contains = _str_pattern_fn("match_substring", "contains", "Contains ``pattern``?")
    match = _str_pattern_fn("match_like", "match", "Matches the SQL LIKE ``pattern``?")
    match_regex = _str_pattern_fn("match_substring_regex", "match_regex", "Has a regex match?")
    find = _str_pattern_fn("find_substring", "find", "Index of the first ``pattern``, or -1.")
    find_regex = _str_pattern_fn("find_substring_regex", "find_regex", "Index of a regex match.")
    count = _str_pattern_fn("count_substring", "count", "Occurrences of ``pattern``.")
    count_regex = _str_pattern_fn("count_substring_regex", "count_regex", "Regex matches.")
    split = _str_pattern_fn("split_pattern", "split", "Split on ``pattern`` (list column).")
    split_regex = _str_pattern_fn("split_pattern_regex", "split_regex", "Split on a regex.")
    extract = _str_pattern_fn("extract_regex", "extract", "Named regex groups (struct column).")

    def _f(self, func: str, method: str, *shown: Any, **options: Any) -> Expr:
        return _call(self._expr, func, f"str.{method}({_args_text(*shown)})", **options)

    def split_whitespace(self, **kwargs: Any) -> Expr:
        """Return each string split on whitespace (a list column)."""
        call = f"str.split_whitespace({_args_text(**kwargs)})"
        return _call(self._expr, "utf8_split_whitespace", call, **kwargs)

    def slice(self, start: int = 0, stop: int | None = None, step: int = 1) -> Expr:
        """Return the substrings ``[start:stop:step]`` (in characters)."""
        options = {"start": start, "step": step} if stop is None else \
            {"start": start, "stop": stop, "step": step}
        return self._f("utf8_slice_codeunits", "slice", start, stop, step, **options)

    def replace(self, pattern: str, replacement: str, max_replacements: int | None = None) -> Expr:
        """Return the strings with ``pattern`` replaced by ``replacement``."""
        return self._f("replace_substring", "replace", pattern, replacement, max_replacements,
                       pattern=pattern, replacement=replacement,
                       max_replacements=max_replacements)

    def replace_regex(
        self, pattern: str, replacement: str, max_replacements: int | None = None
    ) -> Expr:
        """Return the strings with matches of the regex ``pattern`` replaced."""
        return self._f("replace_substring_regex", "replace_regex", pattern, replacement,
                       max_replacements, pattern=pattern, replacement=replacement,
                       max_replacements=max_replacements)

    def replace_slice(self, start: int, stop: int, replacement: str) -> Expr:
        """Return the strings with the bytes ``[start:stop]`` replaced by ``replacement``."""
        return self._f("binary_replace_slice", "replace_slice", start, stop, replacement,
                       start=start, stop=stop, replacement=replacement)

    def repeat(self, n: int) -> Expr:
        """Return each string repeated ``n`` times."""
        # ``num_repeats`` is an input of the kernel, not an option, so it is a literal argument.
        return FunctionExpr("binary_repeat", (self._expr, lit(n)), (), f"str.repeat({n!r})")

    strip = _str_trim_fn("utf8_trim", "strip", "leading and trailing")
    lstrip = _str_trim_fn("utf8_ltrim", "lstrip", "leading")
    rstrip = _str_trim_fn("utf8_rtrim", "rstrip", "trailing")
    center = _str_pad_fn("utf8_center", "center", "centered in")
    lpad = _str_pad_fn("utf8_lpad", "lpad", "right-aligned in")
    rpad = _str_pad_fn("utf8_rpad", "rpad", "left-aligned in")

    def pad(self, width: int, fillchar: str = " ", side: str = "right") -> Expr:
        """Return the strings padded to ``width`` on ``side`` ("left", "right" or "both")."""
        funcs = {"left": "utf8_lpad", "right": "utf8_rpad", "both": "utf8_center"}
        if side not in funcs:
            raise ValueError(f"side must be 'left', 'right' or 'both', got {side!r}")
        return self._f(funcs[side], "pad", width, fillchar, side, width=width, padding=fillchar)
