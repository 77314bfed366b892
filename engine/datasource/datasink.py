"""``ray.data.datasource.datasink``: the write contract (see :mod:`engine.io.interfaces`)."""

from __future__ import annotations

from engine.io.interfaces import Datasink, WriteResult

__all__ = ["Datasink", "WriteResult"]
