"""Ray instances for the Ray backend's tests, started as few times as possible.

One session-wide :class:`RayInstances` hands out a single-node Ray instance (2 CPUs), one
serving Ray Client on loopback, or a two-node ``ray.cluster_utils.Cluster`` (head plus one
worker node, one CPU each), switching only when a test asks for the other kind: Ray takes
seconds to start.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

import engine

_QUIET = {"include_dashboard": False, "log_to_driver": False}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_listener(port: int, timeout: float = 120.0) -> None:
    """Wait until something accepts connections on loopback ``port`` (the client server
    starts after the head node returns)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.1)


class RayInstances:
    """The Ray instance (or local cluster) the current tests run against."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.cluster: Cluster | None = None
        self.worker_node: Any = None
        self.client_port = 0

    def _stop(self) -> None:
        engine.shutdown()
        if ray.is_initialized():
            ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None
        self.kind = None

    def single(self, object_store_memory: int | None = None) -> None:
        """A one-node Ray instance with 2 CPUs, connected (``object_store_memory``: its
        object store's size, Ray's default if ``None``)."""
        kind = "single" if object_store_memory is None else f"single-{object_store_memory}"
        if self.kind != kind:
            self._stop()
            # a new local instance even when another Ray runs on this machine
            ray.init(address="local", num_cpus=2, object_store_memory=object_store_memory,
                     **_QUIET)
            self.kind = kind

    def two_nodes(self) -> Cluster:
        """A head node and a worker node on this machine (one CPU each); Ray not connected
        (the tests connect through ``engine.init(address=...)``)."""
        if self.kind != "two" or self.cluster is None:
            self._stop()
            self.cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": 1, "include_dashboard": False})
            self.worker_node = self.cluster.add_node(num_cpus=1)
            self.cluster.wait_for_nodes()
            self.kind = "two"
        return self.cluster

    def client_server(self) -> int:
        """A one-node Ray instance (2 CPUs) serving Ray Client on a free loopback port,
        not connected; return the port (the tests connect with ``ray://``)."""
        if self.kind != "client" or self.cluster is None:
            self._stop()
            self.client_port = _free_port()
            self.cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": 2, "include_dashboard": False,
                "ray_client_server_port": self.client_port})
            self.kind = "client"
            _wait_for_listener(self.client_port)
        return self.client_port

    def remove_worker_node_once(self, condition: Callable[[], bool],
                                timeout: float = 120.0) -> None:
        """Remove the worker node as soon as ``condition()`` holds (a handshake the test
        sets up); the next ``two_nodes()`` starts a fresh cluster."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "the handshake never came"
            time.sleep(0.05)
        assert self.cluster is not None
        self.cluster.remove_node(self.worker_node)
        self.kind = "two-broken"

    def close(self) -> None:
        self._stop()


@pytest.fixture(scope="session")
def ray_instances() -> Iterator[RayInstances]:
    assert "ENGINE_ADDRESS" not in os.environ, "the Ray tests choose their own backend"
    instances = RayInstances()
    yield instances
    instances.close()


@pytest.fixture
def ray_single(ray_instances: RayInstances) -> Iterator[None]:
    """The engine running on a single-node Ray instance for one test."""
    ray_instances.single()
    engine.shutdown()
    engine.init(address="auto")
    yield
    engine.shutdown()


@pytest.fixture(params=["local", "ray"])
def backend(request: pytest.FixtureRequest, ray_instances: RayInstances) -> Iterator[str]:
    """Run a test on the embedded local cluster, then on Ray."""
    engine.shutdown()
    if request.param == "ray":
        ray_instances.single()
        engine.init(address="auto")
    yield request.param
    engine.shutdown()
