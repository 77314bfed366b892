"""Connecting to a Ray cluster: failing fast on a wrong address, shipping the package."""

from __future__ import annotations

import os
import socket
from typing import Any


def engine_runtime_env(runtime_env: dict[str, Any] | None, ship_engine: bool) -> dict[str, Any]:
    """``runtime_env`` with this ``engine`` package added to ``py_modules`` (so Ray's workers
    import the driver's version even where it is not installed)."""
    env = dict(runtime_env or {})
    if ship_engine:
        # engine/runtime/ray_backend/connect.py -> engine/ (found without importing the API)
        package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        modules = list(env.get("py_modules") or [])
        if package not in modules:
            modules.append(package)
        env["py_modules"] = modules
    return env


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, and clearly, when nothing listens at an explicit ``host:port`` (Ray
    itself retries for minutes)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise ConnectionError(
            f"engine.init(address={address!r}): no Ray cluster answers there ({exc}). "
            "Check the head node's address and port (`ray status` on the head node)") from exc
