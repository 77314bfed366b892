"""``ray.data.datasource.datasource``: the read contract (see :mod:`engine.io.interfaces`)."""

from __future__ import annotations

from engine.io.interfaces import Datasource, ReadTask

__all__ = ["Datasource", "ReadTask"]
