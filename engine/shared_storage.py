"""Local paths on a multi-node cluster must be shared storage (NFS, a mounted bucket...).

Read and write tasks run on every node of a Ray cluster. A path on the driver's local disk
would be read only where it happens to exist and, worse, written in pieces to each node's
own disk. So on a cluster of more than one node, a local path is checked once per call: a
file the driver sees (for a write, a marker file it creates next to the destination) must be
visible on every node; if not, the call fails naming the path and the nodes.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

from engine import session


def _cluster_if_multi_node() -> Any:
    cluster = session.get_cluster()
    return cluster if len(cluster.nodes()) > 1 else None


def _missing_on(path: str) -> list[str]:
    from engine.runtime.ray_backend.probes import nodes_missing_path

    return nodes_missing_path(path)


def _raise(shown: str, missing: list[str], total: int) -> None:
    raise ValueError(
        f"{shown} is a local path, but {len(missing)} of the cluster's {total} nodes "
        f"cannot see it (node ids {', '.join(m[:12] for m in missing)}); tasks run on "
        "every node, so use storage all nodes share (an NFS mount, s3://, gs://...)")


def check_shared_read(handle: Any, first_file: str | None) -> None:
    """Raise ``ValueError`` if the local ``first_file`` is missing on some node."""
    if first_file is None or not handle.is_local:
        return
    cluster = _cluster_if_multi_node()
    if cluster is None:
        return
    missing = _missing_on(first_file)
    if missing:
        _raise(first_file, missing, len(cluster.nodes()))


def check_shared_write(handle: Any, path: str) -> None:
    """Raise ``ValueError`` if the local destination ``path`` is not on shared storage."""
    if not handle.is_local:
        return
    cluster = _cluster_if_multi_node()
    if cluster is None:
        return
    parent = os.path.abspath(path)
    while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    marker = os.path.join(parent, f".engine-shared-check-{uuid.uuid4().hex}")
    try:
        with open(marker, "x"):
            pass
    except OSError:
        return  # the driver cannot write there either: the write reports that itself
    try:
        missing = _missing_on(marker)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(marker)
    if missing:
        _raise(path, missing, len(cluster.nodes()))
