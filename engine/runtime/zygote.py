"""The zygote (both ends): a warm process that forks workers on request.

Started by the driver as ``python -m engine.runtime.zygote CMD_FD REPLY_FD DRIVER_PID``
while the driver is still importing. It imports pyarrow, numpy, ZeroMQ and cloudpickle once (with
BLAS/OpenMP pools already sized by the environment), never creates a ZeroMQ context or a
thread, and forks a worker per request, so a worker is ready in milliseconds and never runs
the user's ``__main__``. Requests are JSON lines on CMD_FD; each reply is the child's pid.

The zygote ignores SIGINT and SIGHUP: a Ctrl-C or a closed terminal reaches the whole
process group, and the driver, not its helpers, decides what stops. It holds the lock of
every session it forked workers for (see ``engine.runtime.session_dirs``). A driver that
shuts down says ``exit`` first; end-of-file without it means the driver died (even by
SIGKILL): the zygote then waits until the driver's pidfd confirms it, removes that session's
store and spill directories once no worker holds the session any longer, and exits.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from engine.runtime.allocator import worker_env

_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1"}


# How long a zygote whose driver died waits for the session's workers to exit before it
# leaves the directories to the next start-up sweep (a worker stuck in the kernel).
_CLEANUP_PATIENCE_S = 60.0


# The longest the zygote's imports wait, in all, for a driver that asked them to (see
# ``Zygote.pause``): a driver that never says "resume" delays its workers by this much, no
# more. (The environment variable is for tests.)
_MAX_PAUSE_S = float(os.environ.get("ENGINE_ZYGOTE_MAX_PAUSE_S", "1.0"))


class _Preload:
    """The zygote's warm imports, one module at a time, each after any pause the driver
    asked for (a ``pause``/``resume`` line on the command pipe) and within ``_MAX_PAUSE_S``
    in all. ``exit`` ends the process; any other line ends the pause and is kept for the
    request loop (none comes before ``ready``: ``Zygote.fork`` waits for it)."""

    def __init__(self, cmd_fd: int) -> None:
        self.cmd_fd = cmd_fd
        self.paused = False
        self.pause_left = _MAX_PAUSE_S
        self.pending: list[str] = []  # any other line, for the request loop

    def run(self, names: list[str]) -> None:
        import importlib

        for name in names:
            self._wait_while_paused()
            with contextlib.suppress(ImportError):  # a warm-up only: tasks import on demand
                importlib.import_module(name)

    def _wait_while_paused(self) -> None:
        import select

        timeout = 0.0
        while True:
            started = time.monotonic()
            readable, _, _ = select.select([self.cmd_fd], [], [], timeout)
            if self.paused:
                self.pause_left -= time.monotonic() - started
            if readable:
                data = os.read(self.cmd_fd, 4096)
                if not data:  # the driver is gone: what follows notices
                    return
                for line in data.decode().splitlines():
                    op = json.loads(line).get("op") if line.strip() else None
                    if op == "exit":
                        os._exit(0)  # the driver shut down before we were ready
                    if op not in ("pause", "resume"):
                        self.pending.append(line)
                        self.paused = False  # a request: the imports are wanted now
                        continue
                    self.paused = op == "pause"
            if not self.paused or self.pause_left <= 0:
                return
            timeout = self.pause_left


def _serve(cmd_fd: int, reply_fd: int, driver_pid: int) -> None:
    # numpy and pyarrow first (every worker needs them), then the warm-up list.
    preload = ["numpy", "pyarrow", "pyarrow.ipc",
               *(n for n in os.environ.get("ENGINE_ZYGOTE_PRELOAD", "").split(",") if n)]
    warm = _Preload(cmd_fd)
    warm.run(preload)

    from engine.runtime import worker
    from engine.runtime.session_dirs import hold_session

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    try:
        driver_fd = os.pidfd_open(driver_pid)
    except ProcessLookupError:
        os._exit(0)  # the driver died before we started
    sessions: dict[str, tuple[int, str]] = {}  # store dir -> (lock fd, spill dir)
    cmds = os.fdopen(cmd_fd, "r")
    replies = os.fdopen(reply_fd, "w")
    replies.write("ready\n")
    replies.flush()
    for line in itertools.chain(warm.pending, cmds):
        request = json.loads(line)
        if request.get("op") == "exit":
            os._exit(0)  # a clean shutdown: the driver removes its own directories
        if request.get("op") in ("pause", "resume"):
            continue  # for the imports, which are done
        store_dir = request["store_dir"]
        if store_dir not in sessions:
            with contextlib.suppress(OSError):  # gone already: the worker sees that too
                sessions[store_dir] = (hold_session(store_dir),
                                       request["spill_dir"])
        pid = os.fork()
        if pid == 0:
            cmds.close()
            replies.close()
            os.close(driver_fd)
            for lock_fd, _ in sessions.values():
                os.close(lock_fd)  # the worker holds the session through its own descriptor
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.environ.update(request.get("env", {}))
            worker.worker_main(request["worker_id"], request["address"],
                               request["driver_pid"], request["store_dir"],
                               request["spill_dir"], request["inline_max"],
                               request["secret"], request.get("cpu_share", 1),
                               request.get("budget_bytes", 1 << 62))
            os._exit(0)
        replies.write(f"{pid}\n")
        replies.flush()
    _remove_sessions_after_driver(driver_fd, sessions)
    os._exit(0)  # skip tearing down pandas and friends


def _remove_sessions_after_driver(driver_fd: int, sessions: dict[str, tuple[int, str]]) -> None:
    """The command pipe closed without ``exit``: once the driver is really dead, remove its
    sessions' directories (after the workers, which hold them too, are gone)."""
    import select

    from engine.runtime.session_dirs import try_remove_session

    select.select([driver_fd], [], [])  # a pidfd polls readable once its process exited
    deadline = time.monotonic() + _CLEANUP_PATIENCE_S
    pending = dict(sessions)
    while pending and time.monotonic() < deadline:
        for store_dir, (lock_fd, spill_dir) in list(pending.items()):
            if try_remove_session(lock_fd, store_dir, spill_dir) or \
                    not os.path.exists(store_dir):
                del pending[store_dir]
        if pending:
            time.sleep(0.05)  # workers exit within moments of the driver


class Zygote:
    """The driver's handle on the zygote process (see ``engine.runtime.zygote``)."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        """Start the zygote; it imports the modules named in ``preload`` before forking."""
        self.preload = preload  # a zygote found dead is replaced by one like it
        cmd_r, self._cmd_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        env = dict(os.environ)
        env.update(_THREAD_ENV)
        env.update(worker_env())
        env["ENGINE_ZYGOTE_PRELOAD"] = ",".join(preload)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.runtime.zygote", str(cmd_r), str(reply_w),
             str(os.getpid())],
            pass_fds=(cmd_r, reply_w), env=env, stdin=subprocess.DEVNULL,
            cwd=os.getcwd())
        os.close(cmd_r)
        os.close(reply_w)
        self._replies = os.fdopen(self._reply_r, "r")
        self._ready = False
        self._closed = False
        self._lock = threading.Lock()

    def fork(self, request: dict[str, Any]) -> int:
        """Ask for a worker; return its pid."""
        with self._lock:
            if not self._ready:
                line = self._replies.readline()
                if line.strip() != "ready":
                    raise RuntimeError(f"the engine's zygote failed to start (exit code "
                                       f"{self.proc.poll()})")
                self._ready = True
            os.write(self._cmd_w, (json.dumps(request) + "\n").encode())
            line = self._replies.readline()
        if not line:
            raise RuntimeError("the engine's zygote exited")
        return int(line)

    def pause(self) -> None:
        """Ask the zygote, if it is still importing, to wait (at most ``_MAX_PAUSE_S`` in
        all) until :meth:`resume`: while this process's own threads keep every core busy
        with work that needs no worker, its imports would only take CPU from them."""
        self._tell(b'{"op": "pause"}\n')

    def resume(self) -> None:
        """Let the zygote's imports go on."""
        self._tell(b'{"op": "resume"}\n')

    def _tell(self, line: bytes) -> None:
        if self._ready or self._closed:
            return  # done importing (or gone): nothing to pause
        with contextlib.suppress(OSError):  # a dead zygote: the cluster restarts it
            os.write(self._cmd_w, line)  # one short write: atomic beside fork()'s

    def close(self) -> None:
        """Stop the zygote (idempotent); its workers are the cluster's to stop."""
        if self._closed:
            return  # its descriptor numbers may belong to other files by now
        self._closed = True
        with contextlib.suppress(OSError):  # a dead zygote: its pipe is broken
            os.write(self._cmd_w, b'{"op": "exit"}\n')  # not end-of-file alone: not a death
        with contextlib.suppress(OSError):
            os.close(self._cmd_w)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._replies.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by every worker
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
