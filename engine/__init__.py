"""engine: a streaming dataset engine for ML pipelines, API-compatible with ``ray.data``.

    import engine as ed
    ds = ed.range(10_000_000).map_batches(lambda b: {"id": b["id"] * 2})
    for batch in ds.iter_batches(batch_size=4096): ...

This module is the table of contents of the public API. It loads lazily (PEP 562), so a
worker importing ``engine.runtime`` does not import the API, and the first call that creates
a dataset starts the cluster's zygote before pyarrow is even imported here.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # sources
    "range": "engine.read_api",
    "range_tensor": "engine.read_api",
    "from_items": "engine.read_api",
    "from_pandas": "engine.read_api",
    "from_numpy": "engine.read_api",
    "from_arrow": "engine.read_api",
    "from_arrow_refs": "engine.read_api",
    "from_blocks": "engine.read_api",
    "from_pandas_refs": "engine.read_api",
    "read_datasource": "engine.read_api",
    "read_parquet": "engine.file_read_api",
    "read_csv": "engine.file_read_api",
    "read_json": "engine.file_read_api",
    "read_text": "engine.file_read_api",
    "read_binary_files": "engine.file_read_api",
    "read_numpy": "engine.file_read_api",
    "read_images": "engine.file_read_api",
    # datasets
    "Dataset": "engine.dataset",
    "MaterializedDataset": "engine.dataset",
    "Schema": "engine.schema",
    "DataIterator": "engine.splits.streaming",
    "RandomSeedConfig": "engine.random_seed",
    # expressions and aggregates
    "col": "engine.expressions",
    "lit": "engine.expressions",
    "AggregateFn": "engine.aggregate",
    "Count": "engine.aggregate",
    "Sum": "engine.aggregate",
    "Min": "engine.aggregate",
    "Max": "engine.aggregate",
    "Mean": "engine.aggregate",
    "Std": "engine.aggregate",
    "AbsMax": "engine.aggregate",
    "Quantile": "engine.aggregate",
    "Unique": "engine.aggregate",
    # all-to-all
    "GroupedData": "engine.grouped_data",
    "JoinType": "engine.join_args",
    # execution
    "DataContext": "engine.context",
    "ExecutionOptions": "engine.context",
    "ExecutionResources": "engine.context",
    "ActorPoolStrategy": "engine.compute",
    "TaskPoolStrategy": "engine.compute",
    "init": "engine.session",
    "shutdown": "engine.session",
    "is_initialized": "engine.session",
    # io contracts
    "Datasource": "engine.io.interfaces",
    "Datasink": "engine.io.interfaces",
    "ReadTask": "engine.io.interfaces",
    "SaveMode": "engine.io.save_mode",
    "FileShuffleConfig": "engine.io.file_datasource",
    "get": "engine.refs_api",
    # errors
    "UserCodeError": "engine.errors",
    "EngineError": "engine.errors",
}

# Calls that create a dataset: starting the zygote first overlaps its imports with ours.
_SOURCES = {n for n, m in _EXPORTS.items() if m in ("engine.read_api", "engine.file_read_api")}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    if name in _SOURCES:
        from engine import session

        session.prestart()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
