"""A plain training ingest (parquet -> torch batches, shuffled or not) imports neither
pandas nor ``pyarrow.dataset`` in the driver: both cost a cold start more than the rest of
the engine's start-up. Run in a fresh interpreter (this one has imported them already)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import sys
    import engine as ed

    ed.init(num_cpus=1)
    ds = ed.read_parquet(sys.argv[1], columns=["id", "x"])
    rows = 0
    for buffer in (None, 1000):
        for batch in ds.iter_torch_batches(batch_size=256, local_shuffle_buffer_size=buffer):
            rows += len(batch["id"])
    ed.shutdown()
    print(rows, "pandas" in sys.modules, "pyarrow.dataset" in sys.modules)
""")


def test_a_parquet_to_torch_ingest_imports_neither_pandas_nor_pyarrow_dataset(tmp_path):
    for i in range(2):
        ids = np.arange(i * 2000, (i + 1) * 2000)
        pq.write_table(pa.table({"id": ids, "x": ids * 0.5, "s": ids.astype(str)}),
                       tmp_path / f"part-{i}.parquet")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["8000", "False", "False"]
