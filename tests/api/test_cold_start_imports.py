"""A plain training ingest (parquet -> torch batches, shuffled or not) imports neither
pandas nor ``pyarrow.dataset``, in the driver or in the workers: both cost a cold start more
than the rest of the engine's start-up (the workers' zygote preloads pandas only for a
driver that imported it). Run in a fresh interpreter (this one has imported them already)."""

from __future__ import annotations

import json
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


ALL_TO_ALL = textwrap.dedent("""
    import json
    import sys

    import numpy as np

    import engine as ed
    from engine import col

    ed.init(num_cpus=1)


    def data(batch):
        i = batch["id"]
        return {"id": i, "g": i % 5, "h": i % 2, "x": (i * 37 % 100) / 100.0}


    def other(batch):
        i = batch["id"]
        return {"id": i * 4, "y": i * 1.5}


    ds = ed.range(200, override_num_blocks=4).map_batches(data)
    right = ed.range(60, override_num_blocks=2).map_batches(other)
    by_h_then_x = ds.sort(["h", "x"], descending=[False, True])
    grouped = ds.with_column("k", col("id") % 3 + col("id") // 70).groupby("k")
    out = {
        "shuffle": [r["id"] for r in ds.random_shuffle(seed=1).take_all()],
        "sort": [r["x"] for r in ds.sort("x").take_all()],
        "sort2": [[r["h"], r["x"]] for r in by_h_then_x.take_all()],
        "topk": [r["x"] for r in ds.sort("x", descending=True).limit(7).take_all()],
        "sum": [[r["g"], r["sum(x)"]] for r in
                ds.filter(expr=col("x") > 0.5).groupby("g").sum("x").take_all()],
        "mean": [[r["k"], r["mean(x)"]] for r in grouped.mean("x").take_all()],
        "join": [[r["id"], r["x"], r["y"]] for r in
                 ds.join(right, "inner", 2, on=("id",)).take_all()],
        "outer": [[r["id"], r["x"], r["y"]] for r in
                  ds.join(right, "full_outer", 2, on=("id",)).take_all()],
        "repartition": [r["id"] for r in ds.repartition(3, shuffle=True).take_all()],
        "sample": [r["id"] for r in ds.random_sample(0.5, seed=3).take_all()],
        "row_filter": [r["id"] for r in ds.filter(lambda r: r["id"] % 3 == 0).take_all()],
        "empty": ed.range(0).take_all(),
        "is_in": [r["id"] for r in ds.filter(expr=col("g").is_in([1, 3])).take_all()],
    }


    def worker_imports(batch):
        return {"pandas": np.array(["pandas" in sys.modules] * len(batch["id"]))}


    asked = ed.range(4, override_num_blocks=2).map_batches(worker_imports).take_all()
    out["workers"] = any(row["pandas"] for row in asked)
    ed.shutdown()
    out["driver"] = "pandas" in sys.modules
    print(json.dumps(out))
""")


def test_shuffles_sorts_groupbys_joins_and_samples_import_no_pandas_in_the_workers():
    # Their kernels reach numpy and Arrow through buffers, and joins and grouped
    # aggregations run Acero plans without ``pyarrow.acero`` (which imports pandas).
    done = subprocess.run([sys.executable, "-c", ALL_TO_ALL], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["workers"] is False and out["driver"] is False

    ids = np.arange(200)
    x = (ids * 37 % 100) / 100.0
    assert sorted(out["shuffle"]) == ids.tolist() and out["shuffle"] != ids.tolist()
    assert sorted(out["repartition"]) == ids.tolist()
    assert 0 < len(out["sample"]) < 200 and set(out["sample"]) <= set(ids.tolist())
    assert sorted(out["row_filter"]) == ids[ids % 3 == 0].tolist()
    assert out["empty"] == []
    assert sorted(out["is_in"]) == ids[np.isin(ids % 5, [1, 3])].tolist()
    assert out["sort"] == sorted(x.tolist())
    assert out["sort2"] == sorted(([int(i % 2), float(v)] for i, v in zip(ids, x, strict=True)),
                                  key=lambda r: (r[0], -r[1]))
    assert out["topk"] == sorted(x.tolist(), reverse=True)[:7]
    keep = x > 0.5
    assert [g for g, _ in out["sum"]] == [0, 1, 2, 3, 4]
    for g, total in out["sum"]:
        assert total == pytest.approx(x[keep & (ids % 5 == g)].sum())
    k = ids % 3 + ids // 70
    assert [key for key, _ in out["mean"]] == sorted(set(k.tolist()))
    for key, mean in out["mean"]:
        assert mean == pytest.approx(x[k == key].mean())
    right = {int(i * 4): i * 1.5 for i in range(60)}
    expected_inner = sorted([int(i), float(x[i]), right[int(i)]] for i in ids if int(i) in right)
    assert sorted(out["join"]) == expected_inner
    unmatched_right = [[key, None, y] for key, y in right.items() if key >= 200]
    expected_outer = [[int(i), float(x[i]), right.get(int(i))] for i in ids] + unmatched_right
    assert sorted(out["outer"], key=repr) == sorted(expected_outer, key=repr)


def test_the_zygote_starts_before_the_driver_imports_pyarrow() -> None:
    # Its start overlaps the driver's imports only if starting it needs none of them
    # (pyarrow alone is ~0.1 s: a small script waited that much longer for its workers).
    probe = ("import sys; from engine import session; session.prestart(); "
             "print('pyarrow' in sys.modules, 'numpy' in sys.modules); session.shutdown()")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120, cwd=REPO_ROOT)
    assert out.stdout.split() == ["False", "False"]
