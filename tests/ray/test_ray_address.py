"""``engine.init(address=...)``: which backend each address picks, ``ENGINE_ADDRESS``, a
clear error when ``"auto"`` finds no Ray cluster, and Ray's token authentication."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import engine as ed
from engine import session

pytestmark = pytest.mark.ray


@pytest.mark.parametrize(("address", "env", "expected"), [
    (None, {}, None),
    ("local", {}, None),
    ("auto", {}, "auto"),
    ("auto", {"RAY_ADDRESS": "10.0.0.5:6379"}, "10.0.0.5:6379"),
    ("ray://head:10001", {}, "ray://head:10001"),
    ("head:6379", {}, "head:6379"),
    (None, {"ENGINE_ADDRESS": "auto"}, "auto"),
    (None, {"ENGINE_ADDRESS": "local"}, None),
    ("local", {"ENGINE_ADDRESS": "auto"}, None),  # an explicit address wins
])
def test_resolve_address(monkeypatch, address, env, expected):
    for name in ("ENGINE_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert session.resolve_address(address) == expected


@pytest.mark.parametrize("address", ["", "somewhere", 42])
def test_bad_address_names_the_argument(address):
    with pytest.raises(ValueError, match="address="):
        session.resolve_address(address)


def _init_in_subprocess(address: str, tmp_path, pre: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "ENGINE_ADDRESS")}
    env["RAY_TMPDIR"] = str(tmp_path)  # no address file of a `ray start` here
    code = (f"{pre}\n"
            "import engine\n"
            "try:\n"
            f"    engine.init(address={address!r})\n"
            "except ConnectionError as exc:\n"
            "    print('ERROR', exc)\n"
            "else:\n"
            "    print('CONNECTED', type(engine.session.get_cluster()).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    return out.stdout


def test_auto_without_a_ray_cluster_fails_clearly(tmp_path):
    """No RAY_ADDRESS, no `ray start` address file and no Ray process on this machine (the
    process scan is stubbed: other Ray instances may run here): a ConnectionError that says
    what to do, not a silently started embedded cluster."""
    stub = ("import ray._private.services as services\n"
            "def none_found():\n"
            "    return frozenset()\n"
            "none_found.cache_clear = lambda: None\n"
            "services.find_gcs_addresses = none_found")
    out = _init_in_subprocess("auto", tmp_path, stub)
    assert "ERROR engine.init(address='auto'): no Ray cluster" in out, out
    assert "ray start --head" in out


def test_unreachable_address_fails_fast(tmp_path):
    out = _init_in_subprocess("127.0.0.1:9", tmp_path)  # the discard port: nothing there
    assert "ERROR engine.init(address='127.0.0.1:9'): no Ray cluster answers there" in out


def test_engine_address_selects_ray(ray_instances, monkeypatch):
    from engine.runtime.ray_backend.cluster import RayCluster

    ray_instances.single()
    ed.shutdown()
    monkeypatch.setenv("ENGINE_ADDRESS", "auto")
    try:
        assert isinstance(session.get_cluster(), RayCluster)  # implicit start too
        assert ed.range(10).count() == 10
    finally:
        ed.shutdown()


def test_unreachable_ray_client_address_fails_fast(tmp_path):
    out = _init_in_subprocess("ray://127.0.0.1:9", tmp_path)
    assert "ERROR engine.init(address='ray://127.0.0.1:9'): no Ray cluster answers there" \
        in out


def test_num_cpus_with_a_ray_address_is_refused(ray_instances):
    ray_instances.single()
    ed.shutdown()
    with pytest.raises(ValueError, match="num_cpus"):
        ed.init(num_cpus=2, address="auto")


def test_runs_with_token_authentication(ray_single):
    """Ray 2.60 turns token authentication on for the clusters it starts; the engine's
    tasks, actors and object transfers all run under it."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    assert get_authentication_mode() == AuthenticationMode.TOKEN
    assert ed.range(100).map_batches(lambda b: b).sum("id") == 4950


def test_the_local_path_never_imports_ray(tmp_path):
    code = ("import sys\n"
            "import engine as ed\n"
            f"out = {str(tmp_path / 'out')!r}\n"
            "ed.range(100).map_batches(lambda b: b).write_parquet(out)\n"
            "assert ed.read_parquet(out).count() == 100\n"
            "its = ed.range(10).streaming_split(2)\n"
            "assert sum(len(b['id']) for it in its for b in it.iter_batches()) == 10\n"
            "ed.shutdown()\n"
            "print('RAY IMPORTED' if 'ray' in sys.modules else 'NO RAY')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "ENGINE_ADDRESS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip().endswith("NO RAY"), out
