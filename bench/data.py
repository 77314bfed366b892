"""Seeded input data shared by the workloads: float frames and a cached parquet set.

Everything here is deterministic: the same seed and size give the same bytes, so a result
can be checked against numpy and two engines read identical input.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd

SEED = 20240601
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", "/tmp/bench-data"))

PARQUET_FILES = 16
PARQUET_ROWS = 8_000_000
PARQUET_COLUMNS = ("id", "user", "x", "y", "name")


def float_frame(rows: int, columns: list[str], seed: int = SEED) -> pd.DataFrame:
    """Return a frame of ``rows`` uniform [0, 1) float64 values per column."""
    import pandas as pd  # here: a workload that never builds a frame should not import it

    rng = np.random.default_rng(seed)
    return pd.DataFrame({name: rng.random(rows) for name in columns})


def split_frame(frame: pd.DataFrame, parts: int) -> list[pd.DataFrame]:
    """Return ``frame`` cut into ``parts`` consecutive frames (fewer if it is short)."""
    parts = max(1, min(parts, len(frame)))
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    return [frame.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class ParquetSet:
    """A directory of parquet files with ``rows`` rows in all (ids ``0 .. rows-1``)."""

    directory: Path
    paths: list[str]
    rows: int


def _parquet_file(index: int, first_id: int, rows: int) -> pa.Table:
    rng = np.random.default_rng([SEED, index])
    user = rng.integers(0, 100_000, rows, dtype=np.int32)
    name = pc.binary_join_element_wise("user-", pc.cast(pa.array(user % 1000), pa.string()), "")
    return pa.table(
        {
            "id": np.arange(first_id, first_id + rows, dtype=np.int64),
            "user": user,
            "x": rng.random(rows),
            "y": rng.normal(size=rows),
            "name": name,
        }
    )


def parquet_set(rows: int) -> ParquetSet:
    """Return the cached parquet set of ``rows`` rows, writing it first if it is missing."""
    directory = DATA_DIR / f"parquet-{rows}"
    manifest = DATA_DIR / f"parquet-{rows}.json"  # beside, not in, the directory read
    if not manifest.exists():
        tmp = DATA_DIR / f".parquet-{rows}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        bounds = np.linspace(0, rows, PARQUET_FILES + 1).astype(int)
        names = []
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            names.append(f"part-{i:02d}.parquet")
            pq.write_table(_parquet_file(i, int(a), int(b - a)), tmp / names[-1])
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)
        manifest.write_text(json.dumps({"rows": rows, "files": names}))
    files = json.loads(manifest.read_text())["files"]
    return ParquetSet(directory, [str(directory / f) for f in files], rows)


def fresh_dir(name: str) -> Path:
    """Return an empty scratch directory ``name`` under the data directory."""
    path = DATA_DIR / "out" / name
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def parquet_rows(directory: Path) -> int:
    """Return the rows of all parquet files under ``directory``, from their footers."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(directory.rglob("*.parquet")))
