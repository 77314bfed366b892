"""Runs each (workload, engine) pair in its own subprocess and turns what it reports into rows.

Each child is started with ``sys.executable`` in a new session, so that everything it
starts (Ray's raylet and workers, this engine's workers) can be found, measured and, if
anything is left behind, killed. A workload is timed by the child itself between its
``READY`` and ``DONE`` markers (start-up excluded); a whole-process workload (``tiny``) is
timed here from spawn to exit. Peak memory is sampled here (see ``bench.memory``).
"""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import engines, workloads
from bench.child import MARKER
from bench.memory import PeakMemorySampler, session_members, shm_used_bytes

REPO_ROOT = Path(__file__).resolve().parent.parent
STRAGGLER_GRACE_S = 5.0


@dataclass
class Row:
    """One line of the table. ``status``: ok, MISMATCH, FAILED, TIMEOUT, n/a, not installed."""

    workload: str
    engine: str
    status: str
    wall_s: float | None = None
    rows: int | None = None
    bytes: int | None = None
    peak_bytes: int | None = None
    peak_shm_bytes: int | None = None  # the /dev/shm part of the peak
    memory_samples: int | None = None
    detail: str = ""
    note: str = ""


@dataclass
class _Execution:
    rc: int | None
    stopped: str  # "", "TIMEOUT" or "OVER MEMORY"
    process_wall_s: float
    stdout: list[str]
    stderr_tail: str
    result: dict[str, object] | None
    error: str
    peak_bytes: int | None
    peak_shm_bytes: int | None
    memory_samples: int
    stragglers: int


def child_env() -> dict[str, str]:
    """The environment of a child: the repo on ``PYTHONPATH`` (workers import ``bench``)."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def compile_bytecode() -> None:
    """Compile this repo's engine and bench, as pip does for an installed package.

    An editable install has no bytecode, and where PYTHONDONTWRITEBYTECODE is set Python
    never caches it: every worker would compile the engine's modules from source, a cost
    no installed engine (Ray, Daft) pays.
    """
    for package in ("engine", "bench"):
        compileall.compile_dir(str(REPO_ROOT / package), quiet=1)


def installed(engine: str) -> bool:
    """Whether ``engine`` imports in a fresh interpreter of ``sys.executable``."""
    probe = [sys.executable, "-c", f"import {engines.PROBE_MODULE[engine]}"]
    done = subprocess.run(probe, capture_output=True, cwd=REPO_ROOT, env=child_env(), check=False)
    return done.returncode == 0


def prepare(workload: str, scale: float) -> None:
    """Make the workload's input files (cached), untimed, in a process of its own."""
    cmd = [sys.executable, "-m", "bench.child", "prepare", workload, "--scale", repr(scale)]
    subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(), check=True)


def kill_session(sid: int, known: dict[int, float], grace_s: float = STRAGGLER_GRACE_S) -> int:
    """Wait ``grace_s`` for the session's processes to exit, then kill the rest.

    ``known`` maps pids seen during the run to their start times: descendants that left the
    session are found that way. Returns how many processes had to be killed.
    """
    deadline = time.monotonic() + grace_s
    while True:
        alive = _alive(sid, known)
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    return len(alive)


def _alive(sid: int, known: dict[int, float]) -> list[psutil.Process]:
    alive = []
    # Pids in the session, or seen in the tree while the child ran (start time checked):
    # never the descendants of a pid that may since have been reused.
    for pid in set(known) | session_members(sid):
        try:
            proc = psutil.Process(pid)
            if pid in known and proc.create_time() != known[pid]:
                continue  # the pid was reused by an unrelated process
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.Error:
            continue
    return alive


@dataclass(frozen=True)
class Limits:
    """What a run may take before it is killed: wall seconds, and bytes of memory (the
    machine is shared; a runaway stream must not take it down)."""

    timeout_s: float = 300.0
    memory_bytes: int = 12 << 30


def _wait(proc: subprocess.Popen[str], sampler: PeakMemorySampler, deadline: float) -> str:
    """Wait for ``proc``; kill it past ``deadline`` or its memory limit. Return why it ended.

    Returns the moment ``proc`` exits (a pidfd becomes readable), not at a polling tick:
    the whole-process workload is timed by this.
    """
    reason = ""
    pidfd = os.pidfd_open(proc.pid)
    try:
        while not select.select([pidfd], [], [], 0.05)[0]:
            if sampler.over_limit.is_set():
                reason = "OVER MEMORY"
            elif time.perf_counter() > deadline:
                reason = "TIMEOUT"
            if reason:
                kill_session(proc.pid, sampler.known_processes(), grace_s=0)
                break
    finally:
        os.close(pidfd)
    proc.wait()
    return reason


def _execute(cmd: list[str], limits: Limits, whole_process: bool) -> _Execution:
    shm_baseline = shm_used_bytes()
    stdout: list[str] = []
    state: dict[str, object] = {}
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO_ROOT,
            env=child_env(),
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        sampler = PeakMemorySampler(proc.pid, shm_baseline, limits.memory_bytes)
        if whole_process:
            sampler.open_window()
        sampler.start()
        reader = threading.Thread(
            target=_read_stdout, args=(proc, sampler, stdout, state), daemon=True
        )
        reader.start()
        stopped = _wait(proc, sampler, started + limits.timeout_s)
        process_wall = time.perf_counter() - started
        reader.join(timeout=10)
        sampler.close_window()
        sampler.stop()
        stragglers = kill_session(proc.pid, sampler.known_processes())
        stderr.seek(0)
        stderr_tail = stderr.read()[-4000:].decode(errors="replace")
    peak = sampler.peak
    result = state.get("result")
    return _Execution(
        rc=proc.returncode,
        stopped=stopped,
        process_wall_s=process_wall,
        stdout=stdout,
        stderr_tail=stderr_tail,
        result=result if isinstance(result, dict) else None,
        error=str(state.get("error", "")),
        peak_bytes=peak.total_bytes if peak else None,
        peak_shm_bytes=peak.shm_bytes if peak else None,
        memory_samples=sampler.samples,
        stragglers=stragglers,
    )


def _read_stdout(
    proc: subprocess.Popen[str],
    sampler: PeakMemorySampler,
    stdout: list[str],
    state: dict[str, object],
) -> None:
    assert proc.stdout is not None, "stdout must be a pipe"
    for line in proc.stdout:
        if not line.startswith(MARKER):
            stdout.append(line)
            continue
        kind, _, payload = line[len(MARKER) :].strip().partition(" ")
        if kind == "READY":
            sampler.open_window()
        elif kind == "DONE":
            sampler.close_window()
        elif kind == "RESULT":
            state["result"] = json.loads(payload)
        elif kind == "ERROR":
            state["error"] = json.loads(payload)["error"]


def run_pair(workload: str, engine: str, scale: float, limits: Limits) -> list[Row]:
    """Run ``workload`` on ``engine`` in a subprocess; return its row(s)."""
    module = workloads.load(workload)
    whole = workloads.is_whole_process(module)
    if whole:
        cmd = [sys.executable, "-c", module.script(engine)]
    else:
        cmd = [sys.executable, "-m", "bench.child", "run", workload, engine, "--scale", repr(scale)]
    run = _execute(cmd, limits, whole)
    notes = [f"killed {run.stragglers} leftover processes"] if run.stragglers else []
    if run.stopped:
        limit = (
            f"{limits.timeout_s:.0f} s" if run.stopped == "TIMEOUT" else _gib(limits.memory_bytes)
        )
        row = Row(workload, engine, run.stopped, detail=f"killed at {limit}", note=_join(notes))
        row.peak_bytes = run.peak_bytes
        return [row]
    if whole:
        if run.rc != 0:
            detail = _last_line(run.stderr_tail) or f"exit code {run.rc}"
            return [Row(workload, engine, "FAILED", detail=detail, note=_join(notes))]
        ok = module.check("".join(run.stdout))
        row = Row(workload, engine, "ok" if ok else "MISMATCH", run.process_wall_s, module.ROWS)
        row.peak_bytes, row.peak_shm_bytes = run.peak_bytes, run.peak_shm_bytes
        row.memory_samples = run.memory_samples
        row.note = _join(notes)
        row.detail = "" if ok else "printed: " + "".join(run.stdout)[-200:]
        return [row]
    if run.result is None or run.rc != 0:
        detail = _last_line(run.error) or _last_line(run.stderr_tail) or f"exit code {run.rc}"
        return [Row(workload, engine, "FAILED", detail=detail, note=_join(notes))]
    return _result_rows(workload, engine, run, notes)


def _result_rows(workload: str, engine: str, run: _Execution, notes: list[str]) -> list[Row]:
    res = run.result
    assert res is not None, "a result is needed"
    if res.get("note"):
        notes.insert(0, str(res["note"]))
    status = "ok" if res["ok"] else "MISMATCH"
    nbytes = res.get("bytes")
    main = Row(
        workload,
        engine,
        status,
        wall_s=float(res["wall_s"]),  # type: ignore[arg-type]
        rows=int(res["rows"]),  # type: ignore[call-overload]
        bytes=int(nbytes) if nbytes is not None else None,  # type: ignore[call-overload]
        peak_bytes=run.peak_bytes,
        peak_shm_bytes=run.peak_shm_bytes,
        memory_samples=run.memory_samples,
        detail=str(res.get("detail", "")),
        note=_join(notes),
    )
    rows = [main]
    extra = res.get("extra") or {}
    assert isinstance(extra, dict), "extra must be a mapping"
    if "first_batch_s" in extra:
        rows.append(Row(f"{workload}-first-batch", engine, status, float(extra["first_batch_s"])))
    return rows


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB"


def _join(notes: list[str]) -> str:
    return "; ".join(notes)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b[^:]*: ")


def _last_line(text: str) -> str:
    """The line naming the exception (its last one: the cause), else the last line; an
    engine may print more after it (Ray Data's "Resolved plan until failure" context)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    named = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return (named or lines or [""])[-1][:300]
