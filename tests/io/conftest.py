"""Fixtures and helpers for the datasource/datasink tests.

The ``read_all`` fixture plans a read, pickles every read task (they run on worker
processes in the engine) and runs them in order; ``run_tasks`` returns the blocks
themselves; ``listing`` lists a local directory recursively. ``CountingFileSystem`` is a
local fsspec filesystem that counts the files opened and bytes read, to prove that
pushdown reads less. ``s3`` starts a moto S3 server on a free loopback port for the
module that asks for it.
"""

from __future__ import annotations

import itertools
import os
import pickle
from collections.abc import Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pytest

# A module of its own: pickle finds the class by module name, and every conftest is
# named "conftest".
from counting_filesystem import COUNTERS, CountingFileSystem

from engine.context import DataContext
from engine.io.interfaces import Datasource

_ids = itertools.count()


def _run_tasks(ds: Datasource, parallelism: int = 4) -> list[pa.Table]:
    """The blocks of every read task, in task order, after a pickle round trip."""
    blocks = []
    for task in ds.get_read_tasks(parallelism):
        task = pickle.loads(pickle.dumps(task))
        blocks.extend(task())
    return blocks


def _read_all(ds: Datasource, parallelism: int = 4) -> pa.Table:
    """Every row the datasource yields, concatenated."""
    blocks = [b for b in _run_tasks(ds, parallelism) if b.num_rows]
    if not blocks:
        schema = ds.schema()
        return schema.empty_table() if schema is not None else pa.table({})
    return pa.concat_tables(blocks, promote_options="permissive")


@pytest.fixture
def counting_fs() -> Iterator[CountingFileSystem]:
    counter_id = f"c{next(_ids)}"
    yield CountingFileSystem(counter_id)
    COUNTERS.pop(counter_id, None)


@pytest.fixture
def memory_root(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh ``memory://`` directory, removed afterwards."""
    fs = fsspec.filesystem("memory")
    name = f"engine-tests/{request.node.name}-{next(_ids)}"
    yield f"memory://{name}"
    root = f"/{name}"
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture
def small_blocks() -> Iterator[DataContext]:
    """A context whose blocks are at most 4 KiB, restored afterwards."""
    ctx = DataContext.get_current()
    saved = ctx.target_max_block_size
    ctx.target_max_block_size = 4096
    yield ctx
    ctx.target_max_block_size = saved


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 (free port) with a bucket, and credentials for it.

    Yields ``{"endpoint": url, "bucket": name, "fs": s3fs filesystem}``; the AWS
    environment variables point boto at the server while the module runs.
    """
    s3fs = pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(key, raising=False)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem(key="testing", secret="testing",
                               client_kwargs={"endpoint_url": endpoint,
                                              "region_name": "us-east-1"})
        try:
            boto3 = pytest.importorskip("boto3")
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="engine-test-bucket")
            yield {"endpoint": endpoint, "bucket": "engine-test-bucket", "fs": fs}
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


def _listing(root: str) -> list[str]:
    """Every file below a local directory, relative and sorted (hidden ones included)."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            out.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(out)


# Helpers are handed out as fixtures so test modules need not import this file.
@pytest.fixture
def run_tasks() -> Any:
    return _run_tasks


@pytest.fixture
def read_all() -> Any:
    return _read_all


@pytest.fixture
def listing() -> Any:
    return _listing
