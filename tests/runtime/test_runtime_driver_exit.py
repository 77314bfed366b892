"""Nothing left behind when the driver goes away abruptly: SIGKILLed mid-iteration (its
zygote and workers remove the session's /dev/shm and spill directories on their way out),
SIGKILLed after its zygote (the workers do it), or interrupted by Ctrl-C (a clean stop).

Each test runs a pipeline in a driver subprocess, waits for its "READY" line, then acts;
every wait is a bounded poll, never a sleep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import psutil
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GONE_WITHIN_S = 20  # generous: the machine is shared; it takes well under a second

DRIVER = textwrap.dedent("""
    import time
    import engine as ed

    cluster = ed.init(num_cpus=2)
    it = iter(ed.range(10**6, override_num_blocks=1000)
              .map_batches(lambda b: (time.sleep(0.05), b)[1]).iter_batches())
    next(it)
    print(cluster.store.dir, cluster.store.spill_dir, cluster._zygote.proc.pid, flush=True)
    print("READY", flush=True)
    for _ in it:
        pass
""")


def _start_driver(marker: str, **popen: object) -> tuple[subprocess.Popen[str], str, str, int]:
    env = dict(os.environ, ENGINE_DRIVER_EXIT_TEST=marker)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, **popen)
    line = driver.stdout.readline()
    ready = driver.stdout.readline()
    if ready.strip() != "READY":
        driver.kill()
        _, err = driver.communicate()
        pytest.fail(f"the driver did not start: {line!r} {err[-2000:]}")
    store_dir, spill_dir, zygote_pid = line.split()
    assert os.path.isdir(store_dir) and os.path.isdir(spill_dir)
    return driver, store_dir, spill_dir, int(zygote_pid)


def _processes_of(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("ENGINE_DRIVER_EXIT_TEST") == marker and \
                    proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _assert_all_gone(marker: str, store_dir: str, spill_dir: str) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while True:
        left = [p for p in (store_dir, spill_dir) if os.path.exists(p)]
        procs = _processes_of(marker)
        if not left and not procs:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{GONE_WITHIN_S}s after the driver went: directories {left}, "
                        f"processes {procs}")
        time.sleep(0.1)


@pytest.mark.slow
def test_driver_sigkilled_mid_iteration_leaves_nothing():
    marker = uuid.uuid4().hex
    driver, store_dir, spill_dir, _ = _start_driver(marker)
    driver.kill()
    driver.communicate(timeout=30)
    _assert_all_gone(marker, store_dir, spill_dir)


@pytest.mark.slow
def test_driver_sigkilled_after_its_zygote_workers_clean_up():
    marker = uuid.uuid4().hex
    driver, store_dir, spill_dir, zygote_pid = _start_driver(marker)
    os.kill(zygote_pid, signal.SIGKILL)
    driver.kill()
    driver.communicate(timeout=30)
    _assert_all_gone(marker, store_dir, spill_dir)


@pytest.mark.slow
@pytest.mark.parametrize("whole_group", [True, False], ids=["terminal", "driver-only"])
def test_ctrl_c_stops_a_run_cleanly(whole_group):
    """A terminal's Ctrl-C reaches the whole process group; ``kill -INT`` only the driver."""
    marker = uuid.uuid4().hex
    driver, store_dir, spill_dir, _ = _start_driver(marker, start_new_session=True)
    if whole_group:
        os.killpg(driver.pid, signal.SIGINT)
    else:
        driver.send_signal(signal.SIGINT)
    try:
        _, err = driver.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        driver.kill()
        driver.communicate()
        pytest.fail("the driver hung after Ctrl-C")
    assert driver.returncode != 0
    assert "KeyboardInterrupt" in err
    assert "Traceback" not in err.split("KeyboardInterrupt")[-1]  # nothing after it
    _assert_all_gone(marker, store_dir, spill_dir)
