"""``ray.data.iterator`` -> ``engine.iterator``: :class:`DataIterator`, what
``streaming_split`` and ``Dataset.iterator()`` hand out (see :mod:`engine.streaming_split`)."""

from __future__ import annotations

from engine.streaming_split import DataIterator

__all__ = ["DataIterator"]
