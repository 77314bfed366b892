"""The benchmark child: runs one (workload, engine) pair and reports on stdout.

    python -m bench.child run WORKLOAD ENGINE --scale F
    python -m bench.child prepare WORKLOAD --scale F

``run`` starts the engine and the workload's untimed setup, prints ``BENCH READY``, runs
the timed part, prints ``BENCH DONE`` and then ``BENCH RESULT {json}``, and shuts the
engine down. The parent measures memory between the two markers; the wall time is the
child's own ``perf_counter`` over the timed part. Only lines starting with ``BENCH `` are
protocol; engines may print anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import asdict

from bench import engines, workloads

MARKER = "BENCH "


def emit(kind: str, payload: dict[str, object] | None = None) -> None:
    line = MARKER + kind if payload is None else f"{MARKER}{kind} {json.dumps(payload)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(workload: str, engine: str, scale: float) -> int:
    module = workloads.load(workload)
    setup, timed = workloads.implementation(module, engine)
    cold = workloads.starts_cold(module)
    try:
        if cold:  # the engine's start is part of the timed work
            data = setup(None, scale)
            emit("READY")
            started = time.perf_counter()
            api, note = engines.start(engine, workload, ready=False)
            result = timed(api, scale, data, started=started)  # type: ignore[call-arg]
        else:
            api, note = engines.start(engine, workload)
            data = setup(api, scale)
            emit("READY")
            started = time.perf_counter()
            result = timed(api, scale, data)
        wall = time.perf_counter() - started
        emit("DONE")
        emit("RESULT", {"wall_s": wall, "note": note, **asdict(result)})
    except BaseException:
        emit("ERROR", {"error": traceback.format_exc(limit=8)})
        raise
    finally:
        engines.stop(engine)
    return 0


def prepare(workload: str, scale: float) -> int:
    module = workloads.load(workload)
    if hasattr(module, "prepare"):
        module.prepare(scale)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("mode", choices=["run", "prepare"])
    parser.add_argument("workload", choices=workloads.WORKLOADS)
    parser.add_argument("engine", nargs="?", choices=engines.ENGINES)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.mode == "prepare":
        return prepare(args.workload, args.scale)
    if args.engine is None:
        parser.error("run needs an engine")
    return run(args.workload, args.engine, args.scale)


if __name__ == "__main__":
    sys.exit(main())
