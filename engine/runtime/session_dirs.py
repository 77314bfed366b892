"""A session's directories: made private and locked, removed when provably dead.

Sessions and what is left behind. A session owns two private (0700) directories, each with
a ``.lock`` file: its store directory ``<root>/engine-<12 hex>`` (``/dev/shm`` by default) and
its spill directory ``<spill root>/engine-spill-<16 hex>`` (``DataContext.spill_dir``, else
``TMPDIR``). Both are made under a temporary name by ``tempfile.mkdtemp`` and renamed into
place only once their lock is held, and neither name says anything about the other. Every
process of a session (the driver, the zygote, each worker) holds a shared ``flock`` on the
store directory's lock; the driver alone holds the spill directory's. So:

- a lock nobody holds proves its session dead: a new store's start-up sweep
  (:func:`remove_stale_sessions`) removes such directories, but only real directories (never
  symlinks) owned by this user, named like a session, with a lock file this user owns; it
  never follows a path written inside one;
- when the driver dies (even by SIGKILL), each process that outlives it drops its lock and
  tries for an exclusive one (:func:`try_remove_session`): whichever tries last gets it and
  removes the two directories it was given when it started.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import stat
import tempfile

logger = logging.getLogger(__name__)

SESSION_PREFIX = "engine-"
SPILL_PREFIX = SESSION_PREFIX + "spill-"
_LOCK_NAME = ".lock"
_SESSION_NAME = re.compile(r"engine-(?:[0-9a-f]{12}|spill-[0-9a-f]{16})\Z")
_SHORT_PATH = 64  # a root at most this long keeps the ipc socket path under its 107 bytes


def remove_stale_sessions(root: str) -> None:
    """Remove the directories of dead engine sessions directly under ``root``.

    Only entries named like a session, that are real directories (not symlinks) owned by
    this user and hold a regular ``.lock`` file owned by this user that no process holds
    (see the module docstring) are removed. Nothing read from inside one is followed.
    """
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        for name in os.listdir(root_fd):
            if _SESSION_NAME.match(name):
                _remove_if_dead(root_fd, name)
    except OSError:
        pass
    finally:
        os.close(root_fd)


def _remove_if_dead(root_fd: int, name: str) -> None:
    euid = os.geteuid()
    try:
        st = os.lstat(name, dir_fd=root_fd)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != euid:
            return  # another user's, or not a directory: never ours to touch
        dir_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
    except OSError:
        return
    lock_fd = -1
    try:
        if not os.path.samestat(st, os.fstat(dir_fd)):
            return  # replaced since we looked
        lock_fd = os.open(_LOCK_NAME, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        lock_st = os.fstat(lock_fd)
        if not stat.S_ISREG(lock_st.st_mode) or lock_st.st_uid != euid:
            return
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: held, a live session
        shutil.rmtree(name, ignore_errors=True, dir_fd=root_fd)  # fd-based: no symlink follows
    except OSError:
        return
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
        os.close(dir_fd)


def create_locked_dir(root: str, name: str) -> tuple[str, int]:
    """Create the private directory ``root/name`` holding a lock file under a shared lock;
    return its path and the lock's descriptor. It is built under an unpredictable temporary
    name and renamed into place once locked, so no sweep ever sees it unlocked."""
    staging = tempfile.mkdtemp(prefix=".init-", dir=root)  # 0700, ours, unpredictable
    try:
        fd = os.open(os.path.join(staging, _LOCK_NAME),
                     os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        path = os.path.join(root, name)
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path, fd


def hold_session(session_dir: str) -> int:
    """Hold a session's lock shared (from a zygote or worker) and return the descriptor.

    Raises ``OSError`` when the session is gone or being removed (its driver is dead).
    """
    fd = os.open(os.path.join(session_dir, _LOCK_NAME), os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def try_remove_session(lock_fd: int, session_dir: str, spill_dir: str) -> bool:
    """Remove a session's store and spill directories if no other process holds its lock.

    Called by processes that outlive the driver with the paths they were given at start:
    each drops its shared lock and tries for an exclusive one, so the last to try succeeds
    (while the driver lives, it holds its lock and nothing is removed). Return whether this
    call removed them; ``lock_fd`` stays open (a later try may succeed).
    """
    with contextlib.suppress(OSError):
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    _remove_dead_dir(spill_dir)  # its own lock, the driver's alone, proves the driver gone
    with contextlib.suppress(OSError):  # remove the directory whose lock we hold, only
        lock_st = os.stat(os.path.join(session_dir, _LOCK_NAME), follow_symlinks=False)
        if os.path.samestat(lock_st, os.fstat(lock_fd)):
            _remove_own_dir(session_dir)
    return True


def _remove_dead_dir(path: str) -> None:
    root, name = os.path.split(path)
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        _remove_if_dead(root_fd, name)
    finally:
        os.close(root_fd)


def _remove_own_dir(path: str) -> None:
    """Remove a directory of ours; a block written into it meanwhile (by a worker's other
    thread) makes ``rmtree`` leave it, so try a few times."""
    for _ in range(5):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            logger.warning("not removing %s: not a directory of this user", path)
            return
        shutil.rmtree(path, ignore_errors=True)


def short_temp_root() -> str:
    """A disk-backed root for the store whose path leaves room for the ipc socket."""
    root = tempfile.gettempdir()
    return root if len(root) <= _SHORT_PATH or not os.path.isdir("/tmp") else "/tmp"
