"""BatchIterable: the batch, row and torch iteration shared by Dataset and DataIterator.

A subclass provides ``_block_refs()`` (an iterator of block references that owns whatever
execution feeds it); everything else is defined once here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from engine.block import table_to_rows


class BatchIterable:
    def _block_refs(self) -> Iterator[Any]:
        raise NotImplementedError

    def iter_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = 256,
                     batch_format: str | None = "default", drop_last: bool = False,
                     local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None,
                     _collate_fn: Callable[[Any], Any] | None = None) -> Iterator[Any]:
        """Stream batches of ``batch_size`` rows in ``batch_format``.

        The execution runs while you iterate; a slow consumer pauses it (memory stays
        flat). Breaking out of the loop stops it. ``local_shuffle_buffer_size`` draws
        batches at random from a buffer of at least that many rows.
        """
        from engine.batching import iter_batches

        return iter_batches(self._block_refs(), batch_size=batch_size,
                            batch_format=batch_format, prefetch_batches=prefetch_batches,
                            drop_last=drop_last,
                            local_shuffle_buffer_size=local_shuffle_buffer_size,
                            local_shuffle_seed=local_shuffle_seed, collate_fn=_collate_fn)

    def iter_torch_batches(self, *, prefetch_batches: int = 1,
                           batch_size: int | None = 256, dtypes: Any = None,
                           device: str = "auto", collate_fn: Callable[[Any], Any] | None = None,
                           drop_last: bool = False,
                           local_shuffle_buffer_size: int | None = None,
                           local_shuffle_seed: int | None = None) -> Iterator[Any]:
        """Like ``iter_batches``, with batches as dicts of ``torch.Tensor`` on ``device``."""
        from engine.torch_batches import to_torch_collate

        return self.iter_batches(prefetch_batches=prefetch_batches, batch_size=batch_size,
                                 batch_format="numpy", drop_last=drop_last,
                                 local_shuffle_buffer_size=local_shuffle_buffer_size,
                                 local_shuffle_seed=local_shuffle_seed,
                                 _collate_fn=to_torch_collate(dtypes, device, collate_fn))

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """Stream rows as dicts."""
        for ref in self._block_refs():
            yield from table_to_rows(ref.get())
