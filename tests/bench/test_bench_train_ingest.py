"""The train-ingest workloads run from a cold start on this engine and their baselines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_train_ingest_workloads_check_their_results(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "bench", "train-ingest", "train-ingest-shuffle", "--engine",
           "engine,pyarrow-loop,torch-dataloader", "--scale", "0.001", "--json", str(out)]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=280,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {(r["workload"], r["engine"]): r for r in json.loads(out.read_text())}
    for workload in ("train-ingest", "train-ingest-shuffle"):
        for engine in ("engine", "pyarrow-loop", "torch-dataloader"):
            assert rows[(workload, engine)]["status"] == "ok"
            assert rows[(f"{workload}-first-batch", engine)]["wall_s"] > 0
