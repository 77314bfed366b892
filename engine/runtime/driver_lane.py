"""The driver lane: a worker that runs on a thread of the driver while the cluster starts.

Worker processes come from the zygote, which needs a few tenths of a second to import
numpy and pyarrow; the driver has them imported by the time a first read is planned. So
until every worker process is ready, the cluster runs tasks that hold no user code (the
engine's own reads of built-in file formats, submitted with ``local_ok``) on this thread:
the same :class:`~engine.runtime.worker.Worker` loop, connected to the same ROUTER, writing
the same store blocks, so nothing downstream can tell where a block was made. A first batch
so comes while the workers are still starting. The lane takes nothing else (a UDF could
crash or block the driver) and is sent home once the workers are all up.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from engine.runtime.worker import Worker

logger = logging.getLogger(__name__)


def start_driver_lane(worker_id: str, address: str, store_dir: str, spill_dir: str,
                      inline_max: int, secret: bytes, budget_bytes: int, stop_fd: int,
                      on_exit: Callable[[], None]) -> threading.Thread:
    """Run a worker named ``worker_id`` on a daemon thread of this process until it is sent
    home or ``stop_fd`` polls readable; ``on_exit`` is called when it stops."""

    def run() -> None:
        try:
            worker = Worker(worker_id, address, os.getpid(), store_dir, spill_dir, inline_max,
                            secret, budget_bytes, stop_fd=stop_fd)
            worker.run()
        except BaseException as exc:  # the cluster requeues what it was running
            logger.warning("the engine's driver lane stopped: %s: %s", type(exc).__name__, exc)
        finally:
            on_exit()

    thread = threading.Thread(target=run, name="engine-driver-lane", daemon=True)
    thread.start()
    return thread
