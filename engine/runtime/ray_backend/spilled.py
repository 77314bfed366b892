"""The bytes Ray's object store has spilled to disk, cluster-wide (``store_usage()``).

Ray counts them in its raylets' store statistics (what ``ray memory --stats-only``
prints). Asking takes a round trip to a raylet (and over Ray Client, a tiny task on the
cluster), too slow for the executor's scheduling loop, which reads ``store_usage()`` all the
time: the count is read once when the runtime starts and then refreshed in the background
at most once a second, so a reader sees it at most that stale.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)

REFRESH_S = 1.0


def spilled_bytes_here() -> int:
    """Ray's total of spilled bytes, asked of a raylet (from a process of the cluster)."""
    from ray._private import internal_api, state

    reply = internal_api.get_memory_info_reply(state.state, timeout_seconds=30.0)
    return int(reply.store_stats.spilled_bytes_total)


def _spilled_bytes_on_cluster(client: bool) -> int:
    if not client:
        return spilled_bytes_here()
    import ray

    probe = ray.remote(num_cpus=0, max_retries=0)(spilled_bytes_here)
    return int(ray.get(probe.remote(), timeout=60.0))


class SpilledBytes:
    """Ray's spilled-bytes total, monotonic, refreshed in the background (see above)."""

    def __init__(self, client: bool) -> None:
        self._client = client
        self._value = 0
        self._at = 0.0
        self._refreshing = False
        self._stopped = False
        self._call = threading.Lock()  # held around each Ray call; stop() waits for it
        self._refresh()

    def get(self) -> int:
        if not self._refreshing and time.monotonic() - self._at > REFRESH_S:
            self._refreshing = True
            threading.Thread(target=self._refresh, name="engine-ray-spilled",
                             daemon=True).start()
        return self._value

    def _refresh(self) -> None:
        try:
            with self._call:
                if self._stopped:  # a Ray call after shutdown would start a new Ray
                    return
                value = _spilled_bytes_on_cluster(self._client)
            self._value = max(self._value, value)
        except Exception as exc:  # stats are best effort: never fail the pipeline on them
            logger.debug("reading Ray's spilled bytes failed: %s", exc)
        finally:
            self._at = time.monotonic()
            self._refreshing = False

    def stop(self) -> None:
        """No more Ray calls (before Ray is disconnected)."""
        with self._call:
            self._stopped = True
