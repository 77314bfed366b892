"""Smoke test of the benchmark harness: two small workloads on this engine, checked results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_smoke_tiny_and_map20m(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "bench", "tiny", "map20m", "--engine", "engine"]
    cmd += ["--scale", "0.001", "--json", str(out)]
    done = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    body = {(cells[1].strip(), cells[2].strip()): cells for cells in (r.split("|") for r in table)}
    for workload in ("tiny", "map20m"):
        cells = body[(workload, "engine")]
        assert cells[-2].strip() == "ok", done.stdout
    rows = json.loads(out.read_text())
    assert {(r["workload"], r["status"]) for r in rows} == {("tiny", "ok"), ("map20m", "ok")}
    assert all(r["wall_s"] > 0 and r["peak_bytes"] > 0 for r in rows)
