"""BatchIterable: the batch, row and torch iteration shared by Dataset and DataIterator.

A subclass provides ``_block_refs()`` (an iterator of block references that owns whatever
execution feeds it); everything else is defined once here. Each call to ``iter_batches``
(or ``iter_torch_batches``) is one pass, numbered from 0: the execution index a
``RandomSeedConfig(reseed_after_execution=True)`` local shuffle seed combines with, so
every epoch gets its own reproducible order. The timings of the latest pass are kept for
``stats()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from engine.block import table_to_rows
from engine.consumption.iter_stats import IterStats


class BatchIterable:
    _passes: int = 0  # passes begun over this iterable
    _iter_stats: IterStats | None = None  # timings of the latest pass
    _iter_run: Any = None  # the execution the latest pass consumed (see _current_run)

    def _block_refs(self) -> Iterator[Any]:
        raise NotImplementedError

    def _current_run(self) -> Any:
        """The latest execution of this iterable (``None`` where it has no such notion)."""
        return None

    def _ordered_block_refs(self) -> Iterator[Any]:
        """The block references in a deterministic order (default: as ``_block_refs``)."""
        return self._block_refs()

    def _permuted_block_refs(self, entropy: Any, ordered: bool) -> Iterator[Any] | None:
        """For a local shuffle: the block references of an execution whose tasks permute
        each block they make (``local_shuffle.permute_block`` with ``entropy``), in a
        deterministic order if ``ordered``; ``None`` where this iterable cannot add that
        step (the consumer then permutes each block itself)."""
        return None

    def iter_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = 256,
                     batch_format: str | None = "default", drop_last: bool = False,
                     local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: Any = None,
                     _collate_fn: Callable[[Any], Any] | None = None) -> Iterator[Any]:
        """Stream batches of ``batch_size`` rows in ``batch_format``.

        The execution runs while you iterate; a slow consumer pauses it (memory stays
        flat). Breaking out of the loop stops it. ``local_shuffle_buffer_size`` draws
        batches at random from a buffer of at least that many rows; ``local_shuffle_seed``
        (an int, or a ``RandomSeedConfig`` for a new order every pass) makes it
        reproducible.
        """
        collate = None
        if _collate_fn is not None:
            fn = _collate_fn
            collate = lambda batch, owned: fn(batch)  # noqa: E731
        return self._iter(prefetch_batches=prefetch_batches, batch_size=batch_size,
                          batch_format=batch_format, drop_last=drop_last,
                          local_shuffle_buffer_size=local_shuffle_buffer_size,
                          local_shuffle_seed=local_shuffle_seed, collate=collate)

    def _iter(self, *, collate: Callable[[Any, bool], Any] | None,
              finalize: Callable[[Any], Any] | None = None, **kwargs: Any) -> Iterator[Any]:
        from engine.consumption.batching import iter_batches
        from engine.random_seed import rng_entropy

        stats = IterStats()
        epoch = self._passes
        self._passes = epoch + 1
        self._iter_stats = stats
        # A seeded local shuffle must see the blocks in the same order every pass, or the
        # same seed would give another order.
        buffer = kwargs.get("local_shuffle_buffer_size")
        seeded = bool(buffer) and kwargs.get("local_shuffle_seed") is not None
        refs = None
        if isinstance(buffer, int) and buffer >= 1 and kwargs.get("batch_size") is not None:
            entropy = rng_entropy(kwargs.get("local_shuffle_seed"), epoch)
            refs = self._permuted_block_refs(entropy, ordered=seeded)
        permuted = refs is not None
        if refs is None:
            refs = self._ordered_block_refs() if seeded else self._block_refs()
        self._iter_run = self._current_run()  # the refs' execution exists by now
        return iter_batches(refs, collate_fn=collate, finalize_fn=finalize,
                            stats=stats, epoch=epoch, permuted=permuted, **kwargs)

    def iter_torch_batches(self, *, prefetch_batches: int = 1,
                           batch_size: int | None = 256, dtypes: Any = None,
                           device: Any = "auto", collate_fn: Callable[[Any], Any] | None = None,
                           drop_last: bool = False,
                           local_shuffle_buffer_size: int | None = None,
                           local_shuffle_seed: Any = None,
                           pin_memory: bool = False) -> Iterator[Any]:
        """Like ``iter_batches``, with batches as dicts of ``torch.Tensor`` on ``device``.

        Tensors share memory with the data where that is safe and are copied where it is
        not (a read-only shared block), so they may always be modified in place.
        ``collate_fn`` replaces the conversion: a subclass of ``ArrowBatchCollateFn``,
        ``NumpyBatchCollateFn`` or ``PandasBatchCollateFn`` (``engine.collate_fn``) gets
        batches in that format, a plain function numpy batches; tensors it returns go to
        ``device``. ``pin_memory`` copies tensors to page-locked memory for a faster
        transfer to a GPU (nothing to do without one).
        """
        from engine.collate_fn import (
            ArrowBatchCollateFn,
            DefaultCollateFn,
            NumpyBatchCollateFn,
            PandasBatchCollateFn,
        )
        from engine.consumption.torch_batches import finalizer, import_torch

        import_torch()
        if collate_fn is not None and (dtypes is not None or device != "auto"):
            raise ValueError("iter_torch_batches: collate_fn cannot be used with dtypes or "
                             "device; convert dtypes and move tensors inside collate_fn")
        if pin_memory and collate_fn is not None:
            raise ValueError("iter_torch_batches: pin_memory is only supported with the "
                             "default collate function (pass DefaultCollateFn(pin_memory="
                             "True) as collate_fn instead)")
        if collate_fn is None:
            collate_fn = DefaultCollateFn(dtypes=dtypes, pin_memory=pin_memory)
        if isinstance(collate_fn, DefaultCollateFn):
            default = collate_fn
            collate: Callable[[Any, bool], Any] = default.collate
            batch_format = "pyarrow"
        else:
            if isinstance(collate_fn, ArrowBatchCollateFn):
                batch_format = "pyarrow"
            elif isinstance(collate_fn, PandasBatchCollateFn):
                batch_format = "pandas"
            elif isinstance(collate_fn, NumpyBatchCollateFn) or callable(collate_fn):
                batch_format = "numpy"
            else:
                raise ValueError(f"iter_torch_batches: unsupported collate_fn "
                                 f"{type(collate_fn).__name__}")
            fn = collate_fn
            collate = lambda batch, owned: fn(batch)  # noqa: E731
        return self._iter(prefetch_batches=prefetch_batches, batch_size=batch_size,
                          batch_format=batch_format, drop_last=drop_last,
                          local_shuffle_buffer_size=local_shuffle_buffer_size,
                          local_shuffle_seed=local_shuffle_seed, collate=collate,
                          finalize=finalizer(device, pin_memory))

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """Stream rows as dicts."""
        for ref in self._block_refs():
            yield from table_to_rows(ref.get())

    def _iterator_stats(self) -> str:
        """The time breakdown of the latest pass over ``iter_batches`` (empty if none)."""
        return self._iter_stats.to_string() if self._iter_stats is not None else ""

    def _latest_pass_stats(self) -> str:
        """The latest pass's breakdown if it consumed the latest execution (empty if another
        run, a ``count()`` say, came after it)."""
        if self._iter_stats is None or self._iter_run is not self._current_run():
            return ""
        return self._iter_stats.to_string()
