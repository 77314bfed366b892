"""Peak memory of a process tree plus the shared memory it holds, sampled from outside.

What one sample counts:

- every process of the tree: the child, its descendants (re-scanned each sample, since
  engines fork workers and actors) and every process still in the child's session (Ray's
  workers are re-parented to init when their raylet dies, but keep the session);
- of each process its unique memory (USS: private clean + private dirty pages, from
  ``/proc/<pid>/smaps_rollup``), less its private pages of files under ``/dev/shm``;
- plus what ``/dev/shm`` holds beyond the baseline taken before the child started, from
  ``statvfs``. ``statvfs`` rather than summing file sizes: Ray's plasma store maps a
  ``/dev/shm`` file it has already unlinked, invisible to a directory walk.

Reading ``smaps`` costs the kernel a page-table walk (2-10 ms for each of Ray's processes),
so the interval stretches to keep the sampler under ``MAX_DUTY`` of one core: ~50 ms for
a few processes, ~1 s for a Ray cluster.

Shared-memory pages are counted once, on the ``/dev/shm`` side: a block file that only one
process maps shows up as that process's private pages, which is why they are subtracted.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import psutil

SHM_DIR = "/dev/shm"
SAMPLE_INTERVAL_S = 0.05
# Reading /proc/<pid>/smaps* walks page tables: ~2-10 ms for each of Ray's dozen processes.
# The interval grows so that sampling takes at most this share of one core's time.
MAX_DUTY = 0.1
_HEX = b"0123456789abcdef"


def shm_used_bytes() -> int:
    """Return the bytes in use on the ``/dev/shm`` filesystem (0 where there is none)."""
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _process_table() -> dict[int, tuple[int, int]]:
    """Return ``{pid: (ppid, session id)}`` of every process, from one pass over /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): state ppid pgrp session ...
        fields = stat[stat.rfind(b")") + 2 :].split(b" ", 4)
        table[int(name)] = (int(fields[1]), int(fields[3]))
    return table


def session_members(sid: int) -> set[int]:
    """Return the pids of the processes in session ``sid``."""
    return {pid for pid, (_, session) in _process_table().items() if session == sid}


def session_pids(root_pid: int) -> set[int]:
    """Return ``root_pid``, its descendants and the processes of the session it leads."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    descendants = {root_pid}
    stack = [root_pid]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in descendants:
                descendants.add(child)
                stack.append(child)
    return descendants | {pid for pid, (_, sid) in table.items() if sid == root_pid}


def _kib_field(text: bytes, key: bytes) -> int:
    start = text.find(key)
    if start < 0:
        return 0
    end = text.find(b"kB", start)
    return int(text[start + len(key) : end])


def _private_shm_bytes(pid: int) -> int:
    """Private pages of ``/dev/shm`` mappings (counted on the shared-memory side instead)."""
    with open(f"/proc/{pid}/smaps", "rb") as f:
        text = f.read()
    total_kib = 0
    start = text.find(b" /dev/shm/")
    while start >= 0:
        end = text.find(b"VmFlags:", start)  # the last line of a mapping's entry
        entry = text[start : end if end >= 0 else len(text)]
        total_kib += _kib_field(entry, b"Private_Clean:") + _kib_field(entry, b"Private_Dirty:")
        start = text.find(b" /dev/shm/", end) if end >= 0 else -1
    return total_kib * 1024


def process_bytes(pid: int) -> int:
    """Return the unique memory of ``pid`` outside ``/dev/shm`` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            rollup = f.read()
        uss = (_kib_field(rollup, b"Private_Clean:") + _kib_field(rollup, b"Private_Dirty:")) * 1024
        with open(f"/proc/{pid}/status", "rb") as f:
            has_shmem = _kib_field(f.read(), b"RssShmem:") > 0
        return uss - _private_shm_bytes(pid) if has_shmem else uss
    except (OSError, ValueError):
        return 0


@dataclass(frozen=True)
class MemorySample:
    processes: int
    process_bytes: int
    shm_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.process_bytes + self.shm_bytes


def sample_tree(root_pid: int, shm_baseline: int, pids: set[int] | None = None) -> MemorySample:
    """Take one sample of the tree rooted at ``root_pid`` (``pids``: already scanned)."""
    if pids is None:
        pids = session_pids(root_pid)
    procs = sum(process_bytes(pid) for pid in pids)
    return MemorySample(len(pids), procs, max(0, shm_used_bytes() - shm_baseline))


class PeakMemorySampler:
    """Samples a process tree every ~50 ms on a daemon thread; keeps the peak in a window.

    The window is opened and closed by whoever watches the child's markers (``READY`` and
    ``DONE``); samples outside it (engine start-up, shutdown) are not counted. A sample over
    ``limit_bytes`` sets ``over_limit``. Every process
    of the tree seen at any time is kept in ``seen`` (pid -> start time) so that leftovers
    can be found after the child exits.
    """

    def __init__(
        self,
        root_pid: int,
        shm_baseline: int,
        limit_bytes: int | None = None,
        interval_s: float = SAMPLE_INTERVAL_S,
    ):
        self._root = root_pid
        self._limit = limit_bytes
        self.over_limit = threading.Event()
        self._shm_baseline = shm_baseline
        self._interval = interval_s
        self._lock = threading.Lock()
        self._in_window = False
        self._stop = threading.Event()
        self.peak: MemorySample | None = None
        self.samples = 0
        self.seen: dict[int, float] = {}
        self._thread = threading.Thread(target=self._loop, name="bench-memory", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def open_window(self) -> None:
        with self._lock:
            self._in_window = True
        self._record()

    def close_window(self) -> None:
        self._record()
        with self._lock:
            self._in_window = False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def known_processes(self) -> dict[int, float]:
        """Return every pid of the tree seen so far, with its start time."""
        with self._lock:
            return dict(self.seen)

    def _remember(self, pids: set[int]) -> None:
        for pid in pids - self.seen.keys():
            try:
                self.seen[pid] = psutil.Process(pid).create_time()
            except psutil.Error:
                continue

    def _record(self) -> None:
        pids = session_pids(self._root)
        with self._lock:
            self._remember(pids)
            if not self._in_window:
                return
        sample = sample_tree(self._root, self._shm_baseline, pids)
        with self._lock:
            if not self._in_window:
                return
            self.samples += 1
            if self.peak is None or sample.total_bytes > self.peak.total_bytes:
                self.peak = sample
            if self._limit is not None and sample.total_bytes > self._limit:
                self.over_limit.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self._record()
            cost = time.perf_counter() - started
            self._stop.wait(max(self._interval - cost, cost * (1 / MAX_DUTY - 1)))
