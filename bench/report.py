"""The markdown table (and JSON) of benchmark rows."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from bench.harness import Row

HEADER = (
    "workload",
    "engine",
    "wall s",
    "rows/s",
    "MB/s",
    "peak MiB",
    "time vs engine",
    "check",
)
REFERENCE_ENGINE = "engine"


def _si(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def _wall(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return ""
    return f"{seconds:.3f}" if seconds < 1 else f"{seconds:.2f}"


def _rate(amount: int | None, seconds: float | None, fmt: str) -> str:
    if amount is None or not seconds or math.isnan(seconds):
        return ""
    rate = amount / seconds
    return _si(rate) if fmt == "si" else f"{rate / 1e6:.0f}"


def _reference_walls(rows: list[Row]) -> dict[str, float]:
    return {
        r.workload: r.wall_s
        for r in rows
        if r.engine == REFERENCE_ENGINE and r.status == "ok" and r.wall_s
    }


def _cells(row: Row, reference: dict[str, float]) -> list[str]:
    ref = reference.get(row.workload)
    ratio = f"{row.wall_s / ref:.2f}x" if ref and row.wall_s and row.status == "ok" else ""
    peak = f"{row.peak_bytes / 2**20:.0f}" if row.peak_bytes is not None else ""
    return [
        row.workload,
        row.engine,
        _wall(row.wall_s),
        _rate(row.rows, row.wall_s, "si"),
        _rate(row.bytes, row.wall_s, "mb"),
        peak,
        ratio,
        row.status,
    ]


def markdown_table(rows: list[Row]) -> str:
    """Return the rows as one markdown table, followed by their notes, if any."""
    reference = _reference_walls(rows)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(_cells(r, reference)) + " |" for r in rows]
    notes = [
        f"- {r.workload}/{r.engine}: {text}" for r in rows for text in (r.detail, r.note) if text
    ]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def json_rows(rows: list[Row]) -> list[dict[str, Any]]:
    """Return the rows as plain dicts, with the derived rates and ratio filled in."""
    reference = _reference_walls(rows)
    out = []
    for row in rows:
        record = asdict(row)
        ok_time = row.wall_s if row.wall_s and not math.isnan(row.wall_s) else None
        record["rows_per_s"] = row.rows / ok_time if row.rows and ok_time else None
        record["bytes_per_s"] = row.bytes / ok_time if row.bytes and ok_time else None
        ref = reference.get(row.workload)
        record["time_vs_engine"] = ok_time / ref if ref and ok_time else None
        out.append(record)
    return out
