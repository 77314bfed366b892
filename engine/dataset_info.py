"""What a :class:`~engine.dataset.Dataset` says about itself without running: its repr, name,
context, copies, and (running it) its block references. A mixin of ``Dataset``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from engine.context import DataContext

if TYPE_CHECKING:
    from engine.dataset import Dataset

logger = logging.getLogger(__name__)


class DatasetInfo:
    """``repr``, ``name``/``set_name``, ``context``, ``copy``, ``get_internal_block_refs``."""

    _name: str | None = None

    def __repr__(self: Any) -> str:
        from engine.dataset import MaterializedDataset, _known_row_count, _known_schema
        from engine.dataset_repr import plan_text, schema_text, source_text

        dag = self._dag

        def source(op: Any, pad: str) -> str:
            rows = _known_row_count(op)
            fields: list[tuple[str, Any]] = []
            kind = "Dataset"
            if op is dag and isinstance(self, MaterializedDataset):
                kind = "MaterializedDataset"
                fields.append(("num_blocks", self.num_blocks()))
            if self._name is not None and op is dag:
                fields.insert(0, ("name", self._name))
            fields.append(("num_rows", "?" if rows is None else rows))
            fields.append(("schema", schema_text(_known_schema(op))))
            return source_text(kind, fields, pad)

        return plan_text(dag, source)

    def __str__(self) -> str:
        return repr(self)

    # ------------------------------------------------------------------ name
    def set_name(self, name: str | None) -> None:
        """Name the dataset (shown in its repr); datasets derived from it keep the name."""
        if name is not None and not isinstance(name, str):
            raise TypeError(f"set_name takes a str or None; got {type(name).__name__}")
        self._name = name

    def _set_name(self, name: str | None) -> None:
        self.set_name(name)

    @property
    def name(self) -> str | None:
        """The name given with :meth:`set_name`, or ``None``."""
        return self._name

    # ------------------------------------------------------------------ context and copies
    @property
    def context(self) -> DataContext:
        """The :class:`DataContext` this dataset runs with.

        The engine reads settings when a dataset executes (not when it is created, as Ray
        Data does), so this is the current context of this process.
        """
        return DataContext.get_current()

    @staticmethod
    def copy(ds: Dataset, _deep_copy: bool = False, _as: type | None = None) -> Dataset:
        """A new dataset object with the same plan (and name): ``Dataset.copy(ds)``.

        Plans are immutable, so a deep copy shares them too. ``_as`` picks the class of the
        copy (``Dataset`` to view a materialized dataset as a lazy one).
        """
        from engine.dataset import Dataset, MaterializedDataset

        cls = _as or type(ds)
        if cls is MaterializedDataset or issubclass(cls, MaterializedDataset):
            if not isinstance(ds, MaterializedDataset):
                raise TypeError("copy: only a MaterializedDataset copies as one; call "
                                "materialize() first")
            new: Any = MaterializedDataset(list(ds._refs), input_files=ds.input_files())
        elif issubclass(cls, Dataset):
            new = Dataset(ds._plan)
        else:
            raise TypeError(f"copy: _as must be Dataset or MaterializedDataset; got {cls!r}")
        new._name = ds._name
        return new  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ blocks
    def get_internal_block_refs(self: Any) -> list[Any]:
        """Execute the dataset and return references to its blocks (``engine.get(refs)``
        reads them). Deprecated in Ray Data in favour of ``iter_internal_ref_bundles``;
        the blocks stay alive while the references do."""
        logger.warning("`Dataset.get_internal_block_refs()` is deprecated. Use "
                       "`Dataset.iter_internal_ref_bundles()` instead.")
        return list(self.materialize().to_arrow_refs())
