"""Probes run on every node of a Ray cluster (what a node sees of the filesystem)."""

from __future__ import annotations

import os


def _path_exists(path: str) -> bool:
    return os.path.exists(path)


def nodes_missing_path(path: str, timeout_s: float = 60.0) -> list[str]:
    """The ids of the alive nodes on which ``path`` does not exist (one tiny task per node,
    pinned to it): a local path is shared only if every node sees it."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_path_exists)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
            .remote(path) for node in nodes]
    seen = ray.get(refs, timeout=timeout_s)
    return [node for node, ok in zip(nodes, seen, strict=True) if not ok]
