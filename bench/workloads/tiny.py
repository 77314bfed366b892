"""tiny: a whole process mapping 1000 rows, timed end to end from interpreter start.

What a user waits for when running a small script: imports, implicit cluster start,
one map and a count. Target: engine under 1 s (Ray takes about 10 s).
"""

from __future__ import annotations

ROWS = 1000
EXPECTED_OUTPUT = str(ROWS)

_MODULE = {"engine": "engine", "engine-ray": "engine", "ray": "ray.data"}


def script(engine: str) -> str | None:
    """Return the ``python -c`` source of the pipeline for ``engine`` (None: no equivalent)."""
    module = _MODULE.get(engine)
    if module is None:
        return None
    pipeline = f'ed.range({ROWS}).map_batches(lambda b: {{"id": b["id"] * 2}}).materialize()'
    if engine == "engine-ray":  # Ray's start counts, as it does for Ray Data
        return f"import ray, engine as ed; ray.init(); ed.init(address='auto'); " \
               f"print({pipeline}.count())"
    return f"import {module} as ed; print({pipeline}.count())"


def check(stdout: str) -> bool:
    """Whether the process printed the expected count as its last line."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return bool(lines) and lines[-1] == EXPECTED_OUTPUT
