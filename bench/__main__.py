"""``python -m bench [workloads...] [--engine engine,ray,daft] [--scale F] [--json out.json]``

Runs each named workload (default: all) on each engine (default: all that are installed;
``pyarrow-loop`` only where a workload has that baseline) and prints one markdown table.
Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import engines, workloads
from bench.harness import Limits, Row, compile_bytecode, installed, prepare, run_pair
from bench.report import json_rows, markdown_table


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", help=f"some of: {' '.join(workloads.WORKLOADS)}")
    parser.add_argument("--engine", default=",".join(engines.ENGINES), help="comma-separated")
    parser.add_argument("--scale", type=float, default=1.0, help="data size factor, e.g. 0.01")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument(
        "--memory-limit-gib", type=float, default=12.0, help="kill a run whose peak passes this"
    )
    args = parser.parse_args(argv)
    unknown = [w for w in args.workloads if w not in workloads.WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; expected some of {workloads.WORKLOADS}")
    if args.scale <= 0:
        parser.error(f"--scale must be positive, got {args.scale}")
    try:
        args.engine = engines.parse_engines(args.engine)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    compile_bytecode()
    names = args.workloads or list(workloads.WORKLOADS)
    available = {engine: installed(engine) for engine in args.engine}
    limits = Limits(args.timeout, int(args.memory_limit_gib * 2**30))
    rows: list[Row] = []
    for name in names:
        module = workloads.load(name)
        prepared = False
        derived: list[Row] = []  # e.g. ingest-first-batch, listed after the workload's rows
        for engine in args.engine:
            if not workloads.supports(module, engine):
                if engine not in engines.BASELINES:  # a baseline only where it applies
                    rows.append(Row(name, engine, "n/a"))
                continue
            if not available[engine]:
                rows.append(Row(name, engine, "not installed"))
                continue
            if not prepared and hasattr(module, "prepare"):
                _log(f"preparing data for {name}")
                prepare(name, args.scale)
                prepared = True
            _log(f"running {name} on {engine}")
            for row in run_pair(name, engine, args.scale, limits):
                wall = f"{row.wall_s:.2f} s " if row.wall_s is not None else ""
                _log(f"  {row.workload}/{row.engine}: {wall}{row.status} {row.detail}")
                (rows if row.workload == name else derived).append(row)
        rows.extend(derived)
    print(markdown_table(rows))
    if args.json:
        args.json.write_text(json.dumps(json_rows(rows), indent=2) + "\n")
    return 0 if all(r.status in ("ok", "n/a", "not installed") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
