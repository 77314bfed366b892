"""Image files as rows of an ``image`` column (Ray's ``read_images``), decoded by Pillow.

``size=(height, width)`` resizes (bilinear) and ``mode=`` converts (``"RGB"``, ``"L"``,
...), as in Ray. Images are fixed-shape tensors (``uint8`` ``H x W [x C]``); consecutive
images of one shape share a block, and an image of another shape starts a new block, so
the blocks of one read can differ in shape (Ray would use a variable-shape tensor type,
which the engine does not have). Pass ``size`` and ``mode`` to get uniform tensors.

Pillow is optional: without it, building the datasource raises an ``ImportError`` that
says how to install it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from engine.io.file_datasource import FileBasedDatasource

IMAGE_COLUMN = "image"
IMAGE_FILE_EXTENSIONS = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif"]


def _import_pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("read_images needs Pillow to decode images; install it with "
                          "`pip install pillow` (or `pip install engine[images]`)") from exc
    return Image


class ImageDatasource(FileBasedDatasource):
    """Reads image files.

    Args:
        paths: Files, directories, globs or URLs.
        size: ``(height, width)`` to resize every image to.
        mode: A Pillow mode to convert every image to.
        **file_kwargs: See :class:`FileBasedDatasource`; ``file_extensions`` defaults to
            common image extensions.
    """

    def __init__(self, paths: str | list[str], *, size: tuple[int, int] | None = None,
                 mode: str | None = None, **file_kwargs: Any) -> None:
        _import_pillow()
        if size is not None and (len(size) != 2 or size[0] <= 0 or size[1] <= 0):
            raise ValueError(f"size must be (height, width) with positive values, got {size!r}")
        file_kwargs.setdefault("file_extensions", IMAGE_FILE_EXTENSIONS)
        super().__init__(paths, **file_kwargs)
        self._size = tuple(size) if size is not None else None
        self._mode = mode

    def _read_stream(self, stream: pa.NativeFile, path: str,
                     max_bytes: int) -> Iterator[pa.Table]:
        image_module = _import_pillow()
        image = image_module.open(io.BytesIO(stream.read()))
        if self._size is not None:
            height, width = self._size
            image = image.resize((width, height), resample=image_module.BILINEAR)
        if self._mode is not None and image.mode != self._mode:
            image = image.convert(self._mode)
        array = np.asarray(image)
        batch = np.ascontiguousarray(array).reshape((1, *array.shape))
        yield pa.table({IMAGE_COLUMN: pa.FixedShapeTensorArray.from_numpy_ndarray(batch)})
