"""Dataset sources that need no files: ``range``, ``range_tensor`` and ``from_*``.

File readers (``read_parquet``...) live in ``engine.file_read_api``.
"""

from __future__ import annotations

import builtins
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine import session
from engine.block import columns_to_table, pandas_to_table, rows_to_table
from engine.dataset import Dataset, MaterializedDataset
from engine.io.interfaces import Datasource
from engine.io.range_datasource import RangeDatasource
from engine.logical.operators import Read
from engine.logical.plan import LogicalPlan

if TYPE_CHECKING:
    import pandas as pd


def _num_blocks(parallelism: int, override_num_blocks: int | None) -> int | None:
    if override_num_blocks is not None:
        if override_num_blocks < 1:
            raise ValueError(f"override_num_blocks must be positive; got {override_num_blocks}")
        return override_num_blocks
    return parallelism if parallelism and parallelism > 0 else None


def read_datasource(datasource: Datasource, *, parallelism: int = -1,
                    override_num_blocks: int | None = None, **ray_remote_args: Any) -> Dataset:
    """A dataset that reads ``datasource`` (lazily, in parallel read tasks)."""
    blocks = _num_blocks(parallelism, override_num_blocks) or -1
    return Dataset(LogicalPlan(Read(datasource, blocks, dict(ray_remote_args))))


def range(n: int, *, parallelism: int = -1, concurrency: int | None = None,
          override_num_blocks: int | None = None) -> Dataset:
    """Rows ``{"id": 0}`` .. ``{"id": n - 1}`` (int64), generated on the workers."""
    session.prestart()
    return read_datasource(RangeDatasource(n), parallelism=parallelism,
                           override_num_blocks=override_num_blocks)


def range_tensor(n: int, *, shape: tuple[int, ...] = (1,), parallelism: int = -1,
                 concurrency: int | None = None,
                 override_num_blocks: int | None = None) -> Dataset:
    """Rows with a ``data`` tensor of ``shape`` filled with the row index."""
    session.prestart()
    return read_datasource(RangeDatasource(n, tuple(shape)), parallelism=parallelism,
                           override_num_blocks=override_num_blocks)


def _split(table: pa.Table, num_blocks: int) -> list[pa.Table]:
    """Exactly ``num_blocks`` contiguous slices (empty ones when rows run out), as Ray does."""
    n = table.num_rows
    return [table.slice(n * i // num_blocks, n * (i + 1) // num_blocks - n * i // num_blocks)
            for i in builtins.range(num_blocks)]


def _from_tables(tables: list[pa.Table], num_blocks: int | None) -> MaterializedDataset:
    cluster = session.get_cluster()
    if num_blocks is not None:
        from engine.block import concat_tables

        whole = concat_tables(tables) if tables else pa.table({})
        tables = _split(whole, num_blocks)
    return MaterializedDataset([cluster.put(t) for t in tables])


def from_blocks(blocks: list[Any]) -> MaterializedDataset:
    """A dataset of exactly one block per item of ``blocks`` (Arrow tables or DataFrames).

    Unlike ``from_arrow``/``from_pandas`` the blocks are kept as given: none are split,
    merged or dropped, so ``ds.num_blocks() == len(blocks)``.
    """
    if not isinstance(blocks, (list, tuple)):
        raise TypeError(f"from_blocks takes a list of blocks; got {type(blocks).__name__}")
    tables = []
    for i, block in enumerate(blocks):
        if isinstance(block, pa.Table):
            tables.append(block)
        elif type(block).__name__ == "DataFrame":
            tables.append(pandas_to_table(block))
        else:
            raise TypeError(f"from_blocks takes pyarrow Tables or pandas DataFrames; "
                            f"blocks[{i}] is {type(block).__name__}")
    return _from_tables(tables, None)


def from_items(items: list[Any], *, parallelism: int = -1,
               override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset of ``items``: dicts become rows; anything else becomes ``{"item": x}``."""
    # Ray Data takes any sized sequence; a str (a sequence of characters) or a one-shot
    # iterator is almost surely a mistake, so those are refused with a hint.
    if isinstance(items, (tuple, builtins.range)) or \
            (isinstance(items, np.ndarray) and items.ndim >= 1):
        items = list(items)
    if not isinstance(items, list):
        raise TypeError(f"from_items takes a list (or a tuple, range or numpy array) of "
                        f"items; got {type(items).__name__}" +
                        ("; wrap it in list(...)" if hasattr(items, "__next__") else ""))
    rows = [i if isinstance(i, dict) else {"item": i} for i in items]
    table = rows_to_table(rows, "from_items")
    blocks = _num_blocks(parallelism, override_num_blocks)
    if blocks is None:
        blocks = math.ceil(table.nbytes / (1 << 20))
    # Like Ray, never more blocks than items (no empty blocks), but always one.
    return _from_tables([table], max(1, min(len(rows), blocks)))


def from_pandas(dfs: pd.DataFrame | list[pd.DataFrame], *,
                override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset of one block per DataFrame."""
    frames = dfs if isinstance(dfs, list) else [dfs]
    tables = []
    for df in frames:
        if type(df).__name__ != "DataFrame":
            raise TypeError(f"from_pandas takes DataFrames; got {type(df).__name__}")
        tables.append(pandas_to_table(df))
    return _from_tables(tables, override_num_blocks)


def from_numpy(ndarrays: np.ndarray | list[np.ndarray], *,
               override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset with one ``data`` column; n-d arrays become tensor columns."""
    arrays = ndarrays if isinstance(ndarrays, list) else [ndarrays]
    tables = []
    for arr in arrays:
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"from_numpy takes numpy arrays; got {type(arr).__name__}")
        tables.append(columns_to_table({"data": arr}, "from_numpy"))
    return _from_tables(tables, override_num_blocks)


def from_arrow(tables: pa.Table | list[pa.Table], *,
               override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset of one block per Arrow table."""
    items = tables if isinstance(tables, list) else [tables]
    for t in items:
        if not isinstance(t, pa.Table):
            raise TypeError(f"from_arrow takes pyarrow Tables; got {type(t).__name__}")
    return _from_tables(list(items), override_num_blocks)


def _block_refs_of(refs: Any, what: str) -> list[Any]:
    """The engine's block references behind ``refs`` (one or a list), checked."""
    from engine.refs_api import FormattedRef
    from engine.runtime.interfaces import BlockRef

    items = list(refs) if isinstance(refs, (list, tuple)) else [refs]
    out = []
    for item in items:
        if isinstance(item, FormattedRef):
            item = item.ref  # the same block, read as Arrow
        if not isinstance(item, BlockRef):
            raise TypeError(f"{what} takes block references (from to_arrow_refs() or "
                            f"to_pandas_refs()); got {type(item).__name__}")
        out.append(item)
    return out


def from_arrow_refs(refs: Any) -> MaterializedDataset:
    """A dataset over block references handed out by ``to_arrow_refs`` (one or a list)."""
    return MaterializedDataset(_block_refs_of(refs, "from_arrow_refs"))


def from_pandas_refs(refs: Any) -> MaterializedDataset:
    """A dataset over block references handed out by ``to_pandas_refs`` (one or a list)."""
    return MaterializedDataset(_block_refs_of(refs, "from_pandas_refs"))
