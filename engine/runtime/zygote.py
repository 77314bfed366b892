"""The zygote (both ends): a warm process that forks workers on request.

Started by the driver as ``python -m engine.runtime.zygote CMD_FD REPLY_FD`` while the
driver is still importing. It imports pyarrow, numpy, ZeroMQ and cloudpickle once (with
BLAS/OpenMP pools already sized by the environment), never creates a ZeroMQ context or a
thread, and forks a worker per request, so a worker is ready in milliseconds and never runs
the user's ``__main__``. Requests are JSON lines on CMD_FD; each reply is the child's pid.
The zygote exits when CMD_FD reaches end-of-file, which happens when the driver dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1"}


def _serve(cmd_fd: int, reply_fd: int) -> None:
    import importlib

    import numpy  # noqa: F401  (warm imports inherited by every worker)
    import pandas  # noqa: F401  (pyarrow imports it on its first array conversion)
    import pyarrow
    import pyarrow.ipc  # noqa: F401

    for name in os.environ.get("ENGINE_ZYGOTE_PRELOAD", "").split(","):
        if name:
            with contextlib.suppress(ImportError):  # a warm-up only: tasks import on demand
                importlib.import_module(name)

    from engine.runtime import worker

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    cmds = os.fdopen(cmd_fd, "r")
    replies = os.fdopen(reply_fd, "w")
    replies.write("ready\n")
    replies.flush()
    for line in cmds:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            cmds.close()
            replies.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.environ.update(request.get("env", {}))
            worker.worker_main(request["worker_id"], request["address"],
                               request["driver_pid"], request["store_dir"],
                               request["spill_dir"], request["inline_max"],
                               request.get("cpu_share", 1))
            os._exit(0)
        replies.write(f"{pid}\n")
        replies.flush()
    os._exit(0)  # the driver is gone or done: skip tearing down pandas and friends


class Zygote:
    """The driver's handle on the zygote process (see ``engine.runtime.zygote``)."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        """Start the zygote; it imports the modules named in ``preload`` before forking."""
        self.preload = preload  # a zygote found dead is replaced by one like it
        cmd_r, self._cmd_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        env = dict(os.environ)
        env.update(_THREAD_ENV)
        env["ENGINE_ZYGOTE_PRELOAD"] = ",".join(preload)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.runtime.zygote", str(cmd_r), str(reply_w)],
            pass_fds=(cmd_r, reply_w), env=env, stdin=subprocess.DEVNULL,
            cwd=os.getcwd())
        os.close(cmd_r)
        os.close(reply_w)
        self._replies = os.fdopen(self._reply_r, "r")
        self._ready = False
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

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._cmd_w)  # end-of-file: the zygote exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._replies.close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
