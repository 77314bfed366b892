"""Blocks and batches (a leaf module: imports nothing of the engine).

A block is a ``pyarrow.Table``. User functions see batches in the format they ask for
("default"/"numpy": dict of numpy arrays, "pandas", "pyarrow"); conversions happen here,
at the edge, and are zero-copy wherever Arrow allows. N-d numpy columns round-trip through
Arrow's fixed-shape tensor extension type.
"""

from __future__ import annotations

import collections.abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.context import DataContext
from engine.errors import UDFOutputError
from engine.object_column import (
    is_object_type,
    object_column_to_numpy,
    objects_to_column,
    untorch,
)

if TYPE_CHECKING:
    import pandas as pd

Block = pa.Table
BatchFormat = Literal["default", "numpy", "pandas", "pyarrow"]
BATCH_FORMATS = ("default", "numpy", "pandas", "pyarrow")


@dataclass(frozen=True)
class BlockMetadata:
    """What is known about a block without reading it."""

    num_rows: int
    size_bytes: int
    schema: pa.Schema | None = None
    input_files: tuple[str, ...] = field(default=())


def metadata_of(table: pa.Table, input_files: tuple[str, ...] = ()) -> BlockMetadata:
    """Return the metadata of an in-memory block."""
    return BlockMetadata(table.num_rows, table.nbytes, table.schema, input_files)


def validate_batch_format(batch_format: str | None) -> str:
    """Return the canonical batch format name, raising ``ValueError`` on an unknown one."""
    if batch_format is None:
        return "pyarrow"
    if batch_format not in BATCH_FORMATS:
        raise ValueError(
            f"batch_format must be one of {list(BATCH_FORMATS)} or None, got {batch_format!r}"
        )
    return "numpy" if batch_format == "default" else batch_format


# ---------------------------------------------------------------- columns <-> numpy


def _is_tensor_type(typ: pa.DataType) -> bool:
    return isinstance(typ, pa.FixedShapeTensorType)


# Arrow's number types as numpy's (``DataType.to_pandas_dtype`` imports pandas).
_NUMPY_NUMBER_DTYPES = {pa.from_numpy_dtype(np.dtype(name)): np.dtype(name) for name in (
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64")}


def number_view(arr: pa.Array) -> np.ndarray | None:
    """A numpy view of a number array without nulls (writable where its buffer is), or
    None for any other array. Unlike ``Array.to_numpy``, it never imports pandas (pyarrow
    does on its first conversion: a quarter of a second of CPU in a process that had no
    other use for it)."""
    if isinstance(arr.type, pa.BaseExtensionType):  # unhashable, and never plain numbers
        return None
    dtype = _NUMPY_NUMBER_DTYPES.get(arr.type)
    if dtype is None or arr.null_count:
        return None
    data = arr.buffers()[1]
    if data is None:
        return None
    return np.frombuffer(data, dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def bool_values(arr: pa.Array) -> np.ndarray | None:
    """A boolean array without nulls as a numpy bool array (a copy: Arrow packs bools in
    bits), or None for any other array; never imports pandas (see ``number_view``)."""
    if not pa.types.is_boolean(arr.type) or arr.null_count:
        return None
    n = len(arr)
    data = arr.buffers()[1]
    if not n or data is None:
        return np.zeros(n, dtype=np.bool_)
    start = arr.offset  # a slice starts mid-byte: unpack only the bytes it covers
    packed = np.frombuffer(data, dtype=np.uint8)[start // 8:(start + n + 7) // 8]
    skip = start % 8
    return np.unpackbits(packed, bitorder="little")[skip:skip + n].view(np.bool_)


def one_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``column`` as one array: its only chunk as it is (``combine_chunks`` copies even
    one), an empty array for no chunks (``combine_chunks`` makes that one with
    ``pa.array``, which imports pandas: see ``number_view``), else the chunks joined."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    if column.num_chunks == 1:
        return column.chunk(0)
    if not column.num_chunks:
        return pa.nulls(0, column.type)
    return column.combine_chunks()


def to_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``values.to_numpy(zero_copy_only=False)``: zero-copy and read-only for a single
    chunk of numbers without nulls, a copy otherwise. Numbers and bools without nulls never
    import pandas (see ``number_view``); other types take pyarrow's conversion."""
    values = one_array(values)
    view = number_view(values)
    if view is not None:
        view.flags.writeable = False
        return view
    bools = bool_values(values)
    if bools is not None:
        return bools
    return values.to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def numpy_dtype(typ: pa.DataType) -> np.dtype:
    """The numpy dtype of Arrow values of type ``typ`` (``typ.to_pandas_dtype()``, which
    imports pandas, only for types other than numbers and bool)."""
    dtype = _NUMPY_NUMBER_DTYPES.get(typ)
    if dtype is not None:
        return dtype
    return np.dtype(np.bool_) if pa.types.is_boolean(typ) else np.dtype(typ.to_pandas_dtype())


def number_array(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array | None:
    """A 1-d numpy array of numbers or bools as an Arrow array (zero-copy for numbers), or
    None for any other array; ``mask`` (bools, True for null) as in ``pa.array``. Unlike
    ``pa.array``, it never imports pandas (see ``number_view``)."""
    if values.ndim != 1 or not values.dtype.isnative:
        return None
    validity = None
    if mask is not None:
        if mask.shape != values.shape:
            raise ValueError(f"mask of shape {mask.shape} for values of shape {values.shape}")
        validity = pa.py_buffer(np.packbits(~np.asarray(mask, dtype=np.bool_),
                                            bitorder="little"))
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [validity, pa.py_buffer(bits)])
    typ = _ARROW_NUMBER_TYPES.get(values.dtype)
    if typ is None:
        return None
    values = np.ascontiguousarray(values)  # Arrow's buffers are contiguous (pa.array copies too)
    return pa.Array.from_buffers(typ, len(values), [validity, pa.py_buffer(values)])


_ARROW_NUMBER_TYPES = {dtype: typ for typ, dtype in _NUMPY_NUMBER_DTYPES.items()}


def row_indices(rows: np.ndarray) -> pa.Array:
    """Row numbers (a numpy integer array) as Arrow indices for ``take``: int32 below 2**31
    rows (a quarter faster to take by than int64), without ``pa.array``'s pandas import."""
    indices = number_array(rows.astype(np.int32) if len(rows) < 1 << 31 else rows)
    if indices is None or not pa.types.is_integer(indices.type):
        raise TypeError(f"row numbers must be integers, not {rows.dtype}")
    return indices


# ``take`` through its function object: the ``pc.take`` wrapper rebuilds its options on
# every call (a shuffled iterator calls it once per batch).
_TAKE = pc.get_function("take")
_TAKE_UNCHECKED = pc.TakeOptions(boundscheck=False)


def take_rows(table: pa.Table, rows: np.ndarray | pa.Array) -> pa.Table:
    """``table``'s rows at ``rows`` (valid by construction: no bounds check), gathered from
    its chunks as they are: on pyarrow 25 a take over 2 to 4,000 chunks costs the same as
    or less than one over their joined copy, so joining them first only adds a copy."""
    if isinstance(rows, np.ndarray):
        rows = row_indices(rows)
    return _TAKE.call([table, rows], _TAKE_UNCHECKED)  # type: ignore[no-any-return]


def python_scalar(value: Any) -> pa.Scalar:
    """``pa.scalar(value)``, made from numpy for a Python bool, int or float, or a list of
    them, so that no pandas import is started (see ``number_view``); the same type either
    way."""
    if type(value) is list and value:
        items = _number_list(value)
        if items is not None:
            offsets = number_array(np.array([0, len(items)], dtype=np.int32))
            return pa.ListArray.from_arrays(offsets, items)[0]
    if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
        try:
            values = np.array([value])
        except OverflowError:  # an int beyond int64: Arrow chooses
            values = None
        if values is not None and values.dtype.kind in "bif":
            array = number_array(values)
            if array is not None:
                return array[0]
    return pa.scalar(value)


def _number_list(values: list[Any]) -> pa.Array | None:
    """The items of a list of Python bools, ints or floats as Arrow infers them (bool,
    int64, or double when there is a float), or None where Arrow would choose otherwise or
    refuse (other types, an int beyond int64, or beyond 2**53 beside a float)."""
    kinds = {type(v) for v in values}
    if kinds == {bool}:
        dtype: type = np.bool_
    elif kinds == {int}:
        if not all(-(1 << 63) <= v < 1 << 63 for v in values):
            return None
        dtype = np.int64
    elif kinds == {float} or kinds == {int, float}:
        if not all(type(v) is float or -(1 << 53) <= v <= 1 << 53 for v in values):
            return None
        dtype = np.float64
    else:
        return None
    return number_array(np.array(values, dtype=dtype))


def tensor_column(values: np.ndarray) -> pa.Array:
    """An n-d (n > 1) numpy array as a fixed-shape tensor column, one row per first-axis
    entry (zero-copy for numbers, and without the pandas import ``from_numpy_ndarray``
    starts)."""
    values = np.ascontiguousarray(values)
    flat = number_array(values.reshape(-1))
    if flat is None or values.dtype == np.bool_:
        return pa.FixedShapeTensorArray.from_numpy_ndarray(values)
    shape = values.shape[1:]
    storage = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(shape)))
    return pa.ExtensionArray.from_storage(pa.fixed_shape_tensor(flat.type, shape), storage)


def column_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Convert one column to numpy, zero-copy (and read-only, as Arrow's own zero-copy
    views are) for single-chunk numbers without nulls."""
    column = one_array(column)
    if _is_tensor_type(column.type):
        return column.to_numpy_ndarray()  # type: ignore[no-any-return]
    if is_object_type(column.type):
        return object_column_to_numpy(column)
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or \
            pa.types.is_fixed_size_list(column.type):
        return _list_column_to_numpy(column)
    return to_numpy(column)


def _list_column_to_numpy(column: pa.Array) -> np.ndarray:
    values = column.to_pylist()
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = None if v is None else np.asarray(v)
    return out


def numpy_to_column(values: Any, name: str = "") -> pa.Array:
    """Convert a numpy array (or list) to an Arrow array; n-d arrays become tensors, torch
    tensors are converted through numpy, and values with no Arrow type (user objects,
    dicts of varying shape) become a pickled-object column, as in Ray Data."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    values = untorch(values)
    if not isinstance(values, np.ndarray):
        if isinstance(values, collections.abc.Sequence) and not isinstance(values, (str, bytes)):
            if values and all(isinstance(v, np.ndarray) for v in values):
                return _ndarrays_to_column(list(values), name)
            try:
                return pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                    TypeError):
                return objects_to_column(values)
        values = np.asarray(values)
    if values.ndim == 0:
        raise UDFOutputError(f"column {name!r} is a single {type(values.item()).__name__}, "
                             "not an array or list of values")
    if values.ndim > 1:
        return tensor_column(values)
    if values.dtype == object and len(values) and all(isinstance(v, np.ndarray) for v in values):
        return _ndarrays_to_column(list(values), name)
    numbers = number_array(values)
    if numbers is not None:
        return numbers
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as exc:
        if values.dtype == object:
            return objects_to_column(values)
        raise TypeError(f"column {name!r}: cannot convert values to Arrow: {exc}") from exc


def _ndarrays_to_column(arrays: list[np.ndarray], name: str) -> pa.Array:
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1 and arrays[0].ndim >= 1:
        return pa.FixedShapeTensorArray.from_numpy_ndarray(np.stack(arrays))
    try:  # ragged: a list column of flattened values is the best Arrow offers
        return pa.array([a.tolist() for a in arrays])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return objects_to_column(arrays)


# ---------------------------------------------------------------- table <-> batches


def table_to_batch(table: pa.Table, batch_format: str) -> Any:
    """Convert a block to the batch format a UDF asked for."""
    fmt = validate_batch_format(batch_format)
    if fmt == "pyarrow":
        return table
    if fmt == "numpy":
        return {name: column_to_numpy(table.column(i)) for i, name in
                enumerate(table.column_names)}
    return table_to_pandas(table)


def _arrow_backed_dtype(typ: pa.DataType) -> Any:
    """The pandas dtype of a column under ``enable_arrow_backed_pandas_conversion``: Arrow's
    own (``pd.ArrowDtype``) for standard types; ``None`` (pandas' default conversion) for
    extension, dictionary and null types, as in Ray Data."""
    import pandas as pd

    if isinstance(typ, pa.BaseExtensionType) or pa.types.is_dictionary(typ) or \
            pa.types.is_null(typ):
        return None
    return pd.ArrowDtype(typ)


def table_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Convert a block to pandas: Arrow-backed dtypes unless the current DataContext's
    ``enable_arrow_backed_pandas_conversion`` is off (then numpy dtypes); tensor columns
    become object columns of ndarrays, pickled-object columns the objects."""
    import pandas as pd

    arrow_backed = DataContext.get_current().enable_arrow_backed_pandas_conversion
    mapper = _arrow_backed_dtype if arrow_backed else None
    special = [f.name for f in table.schema if _is_tensor_type(f.type) or
               is_object_type(f.type)]
    if not special:
        return table.to_pandas(types_mapper=mapper)
    plain = table.drop_columns(special).to_pandas(types_mapper=mapper)
    data = {}
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if is_object_type(col.type):
            data[name] = object_column_to_numpy(col)
        elif _is_tensor_type(col.type):
            arr = column_to_numpy(col)
            obj = np.empty(len(arr), dtype=object)
            for j in range(len(arr)):
                obj[j] = arr[j]
            data[name] = obj
        else:
            data[name] = plain[name]
    return pd.DataFrame(data)


def batch_to_table(batch: Any, udf_name: str = "the function") -> pa.Table:
    """Convert a UDF's returned batch to a block, or raise ``UDFOutputError`` (a
    ``TypeError`` and a ``ValueError``) naming the UDF."""
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    if isinstance(batch, collections.abc.Mapping):
        return columns_to_table(batch, udf_name)
    if type(batch).__module__.startswith("pandas") and type(batch).__name__ == "DataFrame":
        return pandas_to_table(batch)
    hint = ""
    if isinstance(batch, (list, tuple, np.ndarray)):
        hint = "; to return values, wrap them in a dict of columns, e.g. {'item': values}"
    raise UDFOutputError(
        f"{udf_name} must return a batch: a dict of column name to numpy array, a "
        f"pandas.DataFrame or a pyarrow.Table; got {type(batch).__name__}{hint}"
    )


def columns_to_table(columns: collections.abc.Mapping[str, Any],
                     udf_name: str = "the function") -> pa.Table:
    """Build a block from a mapping of column name to array-like."""
    arrays = []
    names = []
    length = None
    for name, values in columns.items():
        if not isinstance(name, str):
            raise TypeError(f"{udf_name} returned a batch with a non-string column name {name!r}")
        if np.isscalar(values) or values is None:
            raise UDFOutputError(
                f"{udf_name} returned column {name!r} as a scalar ({type(values).__name__}); "
                "every column of a batch must be an array or list"
            )
        arr = numpy_to_column(values, name)
        if length is None:
            length = len(arr)
        elif len(arr) != length:
            raise ValueError(
                f"{udf_name} returned columns of different lengths: {names[0]!r} has "
                f"{length} rows, {name!r} has {len(arr)}"
            )
        arrays.append(arr)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def pandas_to_table(df: pd.DataFrame) -> pa.Table:
    """Convert a DataFrame to a block; object columns of equal-shape ndarrays become tensors."""
    tensor_cols = [c for c in df.columns if df[c].dtype == object and len(df)
                   and isinstance(df[c].iloc[0], np.ndarray)]
    if not tensor_cols:
        try:
            return pa.Table.from_pandas(df, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # some object column has no Arrow type: convert column by column
            tensor_cols = [c for c in df.columns if df[c].dtype == object]
    plain = df.drop(columns=tensor_cols)
    table = pa.Table.from_pandas(plain, preserve_index=False) if len(plain.columns) else None
    cols = {}
    for c in df.columns:
        if c in tensor_cols:
            values = df[c].values
            cols[str(c)] = numpy_to_column(list(values) if len(values) and isinstance(
                values[0], np.ndarray) else values, str(c))
        else:
            assert table is not None
            cols[str(c)] = table.column(str(c))
    return pa.Table.from_arrays(list(cols.values()), names=list(cols.keys()))


# ---------------------------------------------------------------- rows


def table_to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Return the rows of a block as dicts (tensor columns as ndarrays, pickled-object
    columns as the objects)."""
    tensor_names = [f.name for f in table.schema
                    if _is_tensor_type(f.type) or is_object_type(f.type)]
    if not tensor_names:
        return table.to_pylist()  # type: ignore[no-any-return]
    plain = table.drop_columns(tensor_names).to_pylist()
    if not plain:
        plain = [{} for _ in range(table.num_rows)]
    tensors = {n: column_to_numpy(table.column(n)) for n in tensor_names}
    order = table.column_names
    rows = []
    for i, row in enumerate(plain):
        for n in tensor_names:
            row[n] = tensors[n][i]
        rows.append({k: row[k] for k in order})
    return rows


def rows_to_table(rows: list[Any], udf_name: str = "the function") -> pa.Table:
    """Build a block from row dicts, or raise ``TypeError`` naming the UDF."""
    if not rows:
        return pa.table({})
    names: dict[str, None] = {}
    for row in rows:
        if not isinstance(row, collections.abc.Mapping):
            raise UDFOutputError(f"{udf_name} must return a dict per row; got "
                                 f"{type(row).__name__}")
        for k in row:
            names.setdefault(k, None)
    columns = {n: [row.get(n) for row in rows] for n in names}
    return columns_to_table(columns, udf_name)


# ---------------------------------------------------------------- slicing and joining


def concat_tables(tables: list[pa.Table]) -> pa.Table:
    """Concatenate blocks, unifying schemas where columns differ in order or nullability."""
    tables = [t for t in tables if t.num_columns or t.num_rows]
    if not tables:
        return pa.table({})
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid:
        return pa.concat_tables(tables, promote_options="permissive")


def single_chunk(table: pa.Table) -> pa.Table:
    """Return ``table`` with one chunk per column (a copy only when it has several)."""
    if all(c.num_chunks <= 1 for c in table.columns):
        return table
    return table.combine_chunks()


def split_by_size(table: pa.Table, max_bytes: int) -> list[pa.Table]:
    """Split a block into slices of at most about ``max_bytes`` each (zero-copy)."""
    if table.nbytes <= max_bytes or table.num_rows <= 1:
        return [table]
    pieces = -(-table.nbytes // max_bytes)
    rows = max(1, -(-table.num_rows // pieces))
    return [table.slice(i, rows) for i in range(0, table.num_rows, rows)]


def empty_table_like(schema: pa.Schema | None) -> pa.Table:
    """Return an empty block with ``schema`` (or no columns)."""
    if schema is None:
        return pa.table({})
    # Not ``schema.empty_table()``: its empty arrays come from ``pa.array``, which imports
    # pandas (see ``number_view``).
    return pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def rebatch(blocks: collections.abc.Iterable[pa.Table],
            batch_size: int | None) -> collections.abc.Iterator[pa.Table]:
    """Yield tables of exactly ``batch_size`` rows (the last may be smaller): slices of a
    block, or slices of several concatenated (``None``: each non-empty block as it is)."""
    if batch_size is None:
        for block in blocks:
            if block.num_rows:
                yield block
            del block  # not held while the next block is made
        return
    buffer: list[pa.Table] = []
    buffered = 0
    for block in blocks:
        offset = 0
        while offset < block.num_rows:
            take = min(batch_size - buffered, block.num_rows - offset)
            buffer.append(block.slice(offset, take))
            buffered += take
            offset += take
            if buffered == batch_size:
                yield buffer[0] if len(buffer) == 1 else concat_tables(buffer)
                buffer, buffered = [], 0
        del block  # held by ``buffer``'s slices only, if at all
    if buffered:
        yield buffer[0] if len(buffer) == 1 else concat_tables(buffer)
