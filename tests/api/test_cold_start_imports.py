"""A plain training ingest (parquet -> torch batches, shuffled or not) imports neither
pandas nor ``pyarrow.dataset``, in the driver or in the workers: both cost a cold start more
than the rest of the engine's start-up (the workers' zygote preloads pandas only for a
driver that imported it). Run in a fresh interpreter (this one has imported them already)."""

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

    import numpy as np

    import engine as ed

    if sys.argv[2] == "pandas":
        import pandas
    ed.init(num_cpus=1)
    ds = ed.read_parquet(sys.argv[1], columns=["id", "x"])
    rows = 0
    for buffer in (None, 1000):
        for batch in ds.iter_torch_batches(batch_size=256, local_shuffle_buffer_size=buffer):
            rows += len(batch["id"])
    numbers = ed.range(1000).map_batches(lambda b: {"id": b["id"] * 2, "x": b["id"] * 0.5})
    rows += sum(len(b["id"]) for b in numbers.iter_batches(batch_format="numpy"))

    def worker_imports(batch):
        return {"pandas": np.array(["pandas" in sys.modules] * len(batch["id"]))}

    in_workers = ed.range(4, override_num_blocks=2).map_batches(worker_imports).take_all()
    ed.shutdown()
    print(rows, "pandas" in sys.modules, "pyarrow.dataset" in sys.modules,
          any(row["pandas"] for row in in_workers))
""")


def _run(directory, driver_imports):
    for i in range(2):
        ids = np.arange(i * 2000, (i + 1) * 2000)
        pq.write_table(pa.table({"id": ids, "x": ids * 0.5, "s": ids.astype(str)}),
                       directory / f"part-{i}.parquet")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(directory), driver_imports],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_a_parquet_to_torch_ingest_imports_neither_pandas_nor_pyarrow_dataset(tmp_path):
    # numpy batches of a map over a range stay free of it too (numbers reach Arrow through
    # their buffers, not pa.array)
    assert _run(tmp_path, "nothing") == ["9000", "False", "False", "False"]


def test_workers_have_pandas_at_hand_when_the_driver_imported_it(tmp_path):
    assert _run(tmp_path, "pandas") == ["9000", "True", "False", "True"]
