"""``ray.data.iterator`` -> ``engine.iterator``: :class:`DataIterator`, what
``streaming_split`` and ``Dataset.iterator()`` hand out (see :mod:`engine.splits.streaming`)."""

from __future__ import annotations

from engine.splits.streaming import DataIterator

__all__ = ["DataIterator"]
