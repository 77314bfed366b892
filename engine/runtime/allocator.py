"""Which Arrow allocator the embedded cluster's processes use, and how.

pyarrow's default allocator, mimalloc, commits its arenas eagerly, and the kernel backs them
with transparent huge pages, compacting memory to find them. Where that compaction runs on
the allocating thread (``defrag=madvise``, the default) fresh memory costs several times
what it costs in 4 KiB pages: a 12 MB parquet decode into fresh memory took 45 ms against
17 ms on the 2-core bench machine. The engine's processes allocate mostly short-lived
blocks, which gain nothing from huge pages, and a fresh worker (or the driver, while its
driver lane reads) allocates mostly fresh memory. So workers run mimalloc with arenas
committed on demand, and the driver, whose allocator was chosen before the engine loaded,
switches its default pool to pyarrow's jemalloc (which commits on demand too). A choice the
user made, through the environment or a pool of their own, is kept.
"""

from __future__ import annotations

import os

# Set in the zygote's environment (mimalloc reads it when the process starts), unless set.
WORKER_ENV = {"MIMALLOC_ARENA_EAGER_COMMIT": "0"}


def worker_env() -> dict[str, str]:
    """The allocator settings for a worker's environment that the user has not set."""
    return {k: v for k, v in WORKER_ENV.items() if k not in os.environ}


def use_on_demand_pool_in_driver() -> None:
    """Make jemalloc this process's default Arrow pool if it still uses mimalloc with eager
    arenas (see the module docstring); nothing where the user chose otherwise or jemalloc
    is not built in."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") or any(k in os.environ for k in WORKER_ENV):
        return
    import pyarrow as pa  # here: the zygote starts (worker_env) before the driver has it

    if pa.default_memory_pool().backend_name != "mimalloc":
        return
    try:
        pool = pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return
    pa.set_memory_pool(pool)
