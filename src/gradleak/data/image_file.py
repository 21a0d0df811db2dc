"""One image file -> RGB pixels at a square size, refusing decompression bombs before decoding.

A few kilobytes of PNG can declare billions of pixels. PIL guards with
``PIL.Image.MAX_IMAGE_PIXELS``: past twice the limit ``Image.open`` raises
``DecompressionBombError``, between the limit and twice it only warns and then decodes. Both
become a ``ValueError`` naming the file and the limit, raised from the header alone; the limit
itself stays PIL's (a caller may change it, never this package).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image


def square(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bilinear) and centre-crop to ``size`` x ``size``."""
    width, height = image.size
    if (width, height) == (size, size):
        return image
    ratio = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * ratio)), max(size, round(height * ratio))),
        Image.Resampling.BILINEAR,
    )
    left, top = (resized.size[0] - size) // 2, (resized.size[1] - size) // 2
    return resized.crop((left, top, left + size, top + size))


def read_square_rgb(path: Path, size: int, *, dataset: str) -> np.ndarray:
    """Read ``path`` as RGB, ``square`` it to ``size`` and scale to [0, 1].

    Errors are ``ValueError`` prefixed with ``dataset`` and naming ``path``: an unreadable file,
    or one with more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels.

    Shapes: -> (size, size, 3) float32.
    """
    try:
        with warnings.catch_warnings():
            # PIL only warns between the limit and twice it; such an image is refused too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                pixels = np.asarray(square(image.convert("RGB"), size), dtype=np.float32)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(
            f"{dataset}: {path} is refused as a possible decompression bomb ({error}); images "
            f"may have at most {Image.MAX_IMAGE_PIXELS} pixels (PIL.Image.MAX_IMAGE_PIXELS)"
        ) from error
    except OSError as error:
        raise ValueError(f"{dataset}: {path} is not a readable image ({error})") from error
    return pixels / np.float32(255.0)
