"""``ray.data.datasource.partitioning``: partition values in paths
(see :mod:`engine.io.partitioning`)."""

from __future__ import annotations

from engine.io.partitioning import (
    Partitioning,
    PartitionStyle,
    PathPartitionFilter,
    PathPartitionParser,
)

__all__ = ["PartitionStyle", "Partitioning", "PathPartitionFilter", "PathPartitionParser"]
