"""examples/train_torch.py runs: 2 ranks over gloo, 2 epochs, each fed by streaming_split."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_ranks_train_two_epochs_and_report_ingest_stats() -> None:
    cmd = [sys.executable, "examples/train_torch.py", "--rows", "6000", "--batch-size", "128"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=280,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    losses = {(int(r), int(e)): (float(loss), int(rows)) for r, e, loss, rows in re.findall(
        r"rank (\d) epoch (\d): mean loss ([\d.]+) over (\d+) rows", done.stdout)}
    assert set(losses) == {(0, 0), (0, 1), (1, 0), (1, 1)}, done.stdout
    assert losses[(0, 1)][0] < losses[(0, 0)][0]  # it learns
    assert losses[(0, 0)] == losses[(1, 0)]  # one all-reduced loss, one equal share each
    assert losses[(0, 0)][1] == 6000 // 128 * 128
    assert done.stdout.count("User thread blocked per batch") == 2
