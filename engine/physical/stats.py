"""Rendering of execution statistics for ``Dataset.stats()``."""

from __future__ import annotations

from typing import Any


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def format_stats(summary: dict[str, Any] | None) -> str:
    """A readable report: one section per operator, then the execution totals."""
    if summary is None:
        return "No execution yet: stats appear after the dataset is consumed."
    lines = []
    for i, s in enumerate(summary["operators"]):
        if s.tasks_submitted == 0 and s.rows_in == 0:
            continue  # a source of existing blocks or read tasks: nothing ran
        # A limit or an error stops running tasks: count them apart, or a stage that
        # produced blocks would claim "0 tasks executed".
        stopped = s.tasks_submitted - s.tasks_finished
        lines.append(f"Operator {i} {s.name}: {s.tasks_finished} tasks executed"
                     f"{f' ({stopped} stopped early)' if stopped > 0 else ''}, "
                     f"{s.blocks_out} blocks produced in {s.wall_seconds:.3f}s")
        lines.append(f"* Rows in: {s.rows_in}, rows out: {s.rows_out}")
        lines.append(f"* Bytes in: {_fmt_bytes(s.bytes_in)}, bytes out: "
                     f"{_fmt_bytes(s.bytes_out)}")
        lines.append(f"* CPU time in tasks: {s.cpu_seconds:.3f}s")
        if s.cpu_wait_seconds or s.memory_wait_seconds:
            lines.append(f"* Waited with work ready: {s.cpu_wait_seconds:.3f}s on CPUs, "
                         f"{s.memory_wait_seconds:.3f}s on memory")
        if s.spilled_bytes:
            lines.append(f"* Spilled to disk: {_fmt_bytes(s.spilled_bytes)}")
        if s.tasks_failed_skipped:
            lines.append(f"* Failed blocks skipped (max_errored_blocks): "
                         f"{s.tasks_failed_skipped}")
        for key, value in s.extra.items():
            lines.append(f"* {key}: {value}")
        lines.append("")
    lines.append(f"Dataset: executed in {summary['wall_seconds']:.3f}s")
    lines.append(f"* Peak block store usage: {_fmt_bytes(summary['peak_store_bytes'])}")
    lines.append(f"* Spilled to disk: {_fmt_bytes(summary['spilled_bytes'])}")
    if summary.get("errored_blocks"):
        lines.append(f"* Errored blocks dropped: {summary['errored_blocks']}")
    return "\n".join(lines)
