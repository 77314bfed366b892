"""Private by construction: the start-up sweep touches only this user's provably dead
sessions and follows no path written in one; spill directories are private and
unpredictable; nothing is unpickled from a peer that has not authenticated; block ids from
messages are checked before they name a file."""

from __future__ import annotations

import gc
import logging
import os
import pickle
import stat
import subprocess
import sys

import cloudpickle
import pytest
import zmq

from engine.runtime import protocol as p
from engine.runtime.block_store import BlockStore, is_valid_block_id
from engine.runtime.session_dirs import SESSION_PREFIX, SPILL_PREFIX, remove_stale_sessions
from engine.runtime.zygote import Zygote

cloudpickle.register_pickle_by_value(sys.modules[__name__])

OTHER_UID = 65534  # "nobody"


def _fake_session(path: str, *, lock: bool = True, extra: dict[str, str] | None = None) -> str:
    os.makedirs(path)
    if lock:
        open(os.path.join(path, ".lock"), "w").close()
    for name, text in (extra or {}).items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    return path


def _chown_tree(path: str, uid: int) -> None:
    for top, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(top, name), uid, uid, follow_symlinks=False)
    os.chown(path, uid, uid)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make another user's directory")
def test_sweep_leaves_other_users_directories_alone(tmp_path):
    root, elsewhere = str(tmp_path / "root"), str(tmp_path / "elsewhere")
    os.makedirs(root)
    os.makedirs(elsewhere)
    # Another user's dead-looking session, and a spill directory of theirs it names.
    theirs_spill = _fake_session(os.path.join(root, SPILL_PREFIX + "0" * 16),
                                 extra={"block": "x"})
    theirs = _fake_session(os.path.join(root, SESSION_PREFIX + "a" * 12),
                           extra={"block": "x", ".spill": theirs_spill})
    _chown_tree(theirs, OTHER_UID)
    _chown_tree(theirs_spill, OTHER_UID)
    # Ours, but its lock file is another user's: not provably our session.
    foreign_lock = _fake_session(os.path.join(root, SESSION_PREFIX + "b" * 12))
    os.chown(os.path.join(foreign_lock, ".lock"), OTHER_UID, OTHER_UID)
    # A symlink named like a session, pointing at a dead-looking directory elsewhere.
    target = _fake_session(os.path.join(elsewhere, "target"), extra={"block": "x"})
    os.symlink(target, os.path.join(root, SESSION_PREFIX + "c" * 12))
    # Ours and dead, naming a directory of ours in a file: removed, the named one kept.
    victim = _fake_session(os.path.join(elsewhere, SESSION_PREFIX + "d" * 12 + "-spill"))
    dead = _fake_session(os.path.join(root, SESSION_PREFIX + "e" * 12),
                         extra={"block": "x", ".spill": victim})
    # Ours without a lock, and a name that is no session's: not provably engine sessions.
    no_lock = _fake_session(os.path.join(root, SESSION_PREFIX + "f" * 12), lock=False)
    odd_name = _fake_session(os.path.join(root, SESSION_PREFIX + "notasession"))

    remove_stale_sessions(root)

    assert not os.path.exists(dead)
    for kept in (theirs, theirs_spill, foreign_lock, target, victim, no_lock, odd_name):
        assert os.path.isdir(kept), kept
    assert os.path.exists(os.path.join(theirs, "block"))
    assert os.path.exists(os.path.join(theirs_spill, "block"))
    assert os.path.exists(os.path.join(target, "block"))
    assert os.path.islink(os.path.join(root, SESSION_PREFIX + "c" * 12))
    _chown_tree(theirs, 0)  # let pytest remove tmp_path
    _chown_tree(theirs_spill, 0)


def test_sweep_removes_dead_sessions_of_ours_and_keeps_live_ones(tmp_path):
    root = str(tmp_path)
    live = BlockStore(1 << 20, root=root, spill_root=root)
    try:
        dead = _fake_session(os.path.join(root, SESSION_PREFIX + "0123456789ab"),
                             extra={"block": "x"})
        dead_spill = _fake_session(os.path.join(root, SPILL_PREFIX + "0123456789abcdef"))
        remove_stale_sessions(root)
        assert not os.path.exists(dead) and not os.path.exists(dead_spill)
        assert os.path.isdir(live.dir) and os.path.isdir(live.spill_dir)  # held by flock
    finally:
        live.close()
    assert not os.path.exists(live.dir) and not os.path.exists(live.spill_dir)


def test_spill_directories_are_private_and_unpredictable(tmp_path):
    spill_root = str(tmp_path / "spill")  # made on first use
    stores = [BlockStore(1 << 20, spill_root=spill_root) for _ in range(2)]
    try:
        names = set()
        for store in stores:
            st = os.lstat(store.spill_dir)
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
            assert st.st_uid == os.geteuid()
            assert os.path.dirname(store.spill_dir) == spill_root
            name = os.path.basename(store.spill_dir)
            assert name.startswith(SPILL_PREFIX) and store.session_id not in name
            names.add(name)
            assert stat.S_IMODE(os.lstat(store.dir).st_mode) == 0o700
        assert len(names) == 2
    finally:
        for store in stores:
            store.close()
    assert os.listdir(spill_root) == []


def test_data_context_spill_dir_places_the_spill_directory(fresh_context, tmp_path):
    import engine as ed

    ed.shutdown()
    fresh_context.spill_dir = str(tmp_path)
    try:
        cluster = ed.init(num_cpus=1)
        assert os.path.dirname(cluster.store.spill_dir) == str(tmp_path)
        assert ed.range(10).count() == 10
    finally:
        ed.shutdown()
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- the wire


class _CreatesFile:
    """Unpickling this creates a file: proof that someone unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class _StandInZygote(Zygote):
    """Forks real workers, except that worker ``w2`` is a plain process that never
    connects: its identity is known to the driver but nobody has shown the secret for it."""

    def __init__(self) -> None:
        super().__init__()
        self.stand_in: subprocess.Popen[bytes] | None = None

    def fork(self, request):
        if request["worker_id"] != "w2":
            return super().fork(request)
        self.stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        return self.stand_in.pid


def _double(x):
    return x * 2


def test_unauthenticated_peers_get_nothing_unpickled(make_cluster, rt, tmp_path, caplog):
    zygote = _StandInZygote()
    cluster = make_cluster(num_cpus=2, zygote=zygote, ready=False)  # w2 never connects
    marker = str(tmp_path / "unpickled")
    bomb = pickle.dumps(_CreatesFile(marker))
    ctx = zmq.Context()
    peers = []
    try:
        for identity in (b"w2", b"stranger", None):  # known but unproven; unknown; anonymous
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            if identity is not None:
                sock.setsockopt(zmq.IDENTITY, identity)
            sock.connect(cluster.address)
            peers.append(sock)
        with caplog.at_level(logging.WARNING, logger="engine.runtime.cluster"):
            for sock in peers:
                sock.send_multipart([bomb])
                sock.send_multipart([b"not the secret", bomb])
                sock.send_multipart([bomb, bomb, bomb])
            rt.wait_until(lambda: cluster.messages_rejected >= 9, timeout=30,
                          what="the driver to drop every message of the strangers")
        assert not os.path.exists(marker)
        assert "unauthenticated peer 'w2'" in caplog.text
        # The runtime is unharmed: the real worker still runs tasks.
        (out,) = cluster.submit(_double, (21,)).iter_outputs(timeout=60)
        assert out.value == 42
    finally:
        for sock in peers:
            sock.close(0)
        ctx.term()
        cluster.shutdown()
        if zygote.stand_in is not None:
            zygote.stand_in.kill()
            zygote.stand_in.wait()
    assert not os.path.exists(marker)


def _forge_output(block_id):
    """Runs in a worker: report a block the worker never wrote, under ``block_id``."""
    from engine.runtime.worker import Worker

    (worker,) = [o for o in gc.get_objects() if isinstance(o, Worker)]
    header = p.encode_header(p.OUTPUT, 10**9, 0, 0, p.KIND_STORED, block_id, 1, 1)
    worker.sock.send_multipart([header, b"", b""])
    return "sent"


@pytest.mark.parametrize("victim_name", ["absolute", "relative"])
def test_block_ids_from_messages_are_checked_before_naming_a_file(
        cluster, rt, tmp_path, caplog, victim_name):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    forged = str(victim) if victim_name == "absolute" else os.path.relpath(victim,
                                                                          cluster.store.dir)
    with caplog.at_level(logging.WARNING, logger="engine.runtime.cluster"):
        (out,) = cluster.submit(_forge_output, (forged,)).iter_outputs(timeout=60)
        assert out.value == "sent"
        rt.wait_until(lambda: "invalid block id" in caplog.text, timeout=30,
                      what="the driver to reject the forged block id")
    assert victim.read_text() == "keep me"
    (out,) = cluster.submit(_double, (4,)).iter_outputs(timeout=60)
    assert out.value == 8


def test_block_ids_follow_the_runtimes_pattern(tmp_path):
    for good in ("w3-1234-1", "w12-99999-1234567", "d0123456789abcdef"):
        assert is_valid_block_id(good)
    for bad in ("", "../x", "/etc/passwd", ".lock", "w1-2-3.tmp", "w1-2-3/x", "d0123",
                "w1-2-3\n", None, 7, "D0123456789ABCDEF"):
        assert not is_valid_block_id(bad)
    store = BlockStore(1 << 20, root=str(tmp_path), spill_root=str(tmp_path))
    try:
        with pytest.raises(ValueError, match="invalid block id"):
            store.block_path("../../etc/passwd")
        store.free("../../etc/passwd")  # an id the store never registered: a no-op
    finally:
        store.close()


def test_a_socket_path_too_long_is_an_error_not_a_tcp_fallback(monkeypatch, tmp_path):
    from engine.runtime import cluster as cluster_module

    long_root = tmp_path / ("x" * 100)
    long_root.mkdir()

    def store_under_long_root(budget: int, spill_root: str | None = None) -> BlockStore:
        return BlockStore(budget, root=str(long_root), spill_root=str(tmp_path))

    monkeypatch.setattr(cluster_module, "BlockStore", store_under_long_root)
    with pytest.raises(RuntimeError, match="set TMPDIR to a shorter directory"):
        cluster_module.LocalCluster(num_cpus=1)
    assert os.listdir(long_root) == [] and os.listdir(tmp_path) == [long_root.name]
