"""The one image decoder: any image file -> the uint8 32x32 RGB pixels a model sees.

    pixels = decode_image("cat.jpg")                     # (32, 32, 3) uint8
    image = open_image(upload_bytes, name="cat.jpg")     # upright RGB PIL image (for display)
    pixels = to_pixels(image)                            # the same pixels as decode_image

Training (image folders), ``evaluate``, ``predict``, the dashboard's uploads and its test
images all decode through ``decode_image``, so one file gives the same array everywhere:
- EXIF orientation is applied (a phone photo is upright);
- transparency is flattened onto white (a transparent PNG is not a black square);
- palette, greyscale and 16-bit images become 8-bit RGB; animations give their first frame;
- anything not 32x32 is center-cropped to a square (CIFAR-10 objects fill the frame) and
  resized with antialiasing.
Oversized files, decompression bombs, absurd aspect ratios and non-images raise ImageError
with a one-line reason, before any pixel is decoded where possible.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cifar_core.errors import ImageError

SIZE = 32
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # uploads larger than this are refused before decoding
MAX_FILE_BYTES = 100 * 1024 * 1024  # files in a data folder (a user's own photos)
MAX_PIXELS = 40_000_000  # width x height; larger is treated as a decompression bomb
MAX_ASPECT = 50  # a 10000x10 strip says nothing about a 32x32 object

PREVIEW = 480  # the longest side of an upload as a page shows it

__all__ = ["ImageError", "decode_image", "open_image", "preview", "to_pixels", "SUFFIXES"]


def open_image(
    source: bytes | str | os.PathLike | BinaryIO, name: str | None = None, max_bytes: int = MAX_UPLOAD_BYTES
) -> "PIL.Image.Image":  # noqa: F821
    """Decode ``source`` safely into an upright 8-bit RGB PIL image (see the module doc)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "upload")
    label = os.path.basename(label) or "upload"
    data = _read_bytes(source, label, max_bytes)
    if not data:
        raise ImageError(f"{label}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"{label}: {width}x{height} pixels is too large (limit {MAX_PIXELS:,})")
            if max(width, height) > MAX_ASPECT * min(width, height):
                raise ImageError(f"{label}: {width}x{height} is too elongated to classify")
            image.seek(0)  # first frame of GIF/WebP/TIFF animations
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            return _to_rgb(upright)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{label}: image too large (decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not a readable image (UnidentifiedImageError)") from None
    except Exception as error:  # PIL raises many types for broken files
        kind = "broken or truncated image" if isinstance(error, OSError) else "not a readable image"
        raise ImageError(f"{label}: {kind} ({type(error).__name__})") from None


def to_pixels(image: "PIL.Image.Image", size: int = SIZE) -> np.ndarray:  # noqa: F821
    """Center-crop an RGB PIL image to a square, resize it to size x size with
    antialiasing (LANCZOS), and return uint8 (size, size, 3) pixels."""
    from PIL import Image

    if image.size != (size, size):
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def preview(image: "PIL.Image.Image", longest: int = PREVIEW) -> "PIL.Image.Image":  # noqa: F821
    """A copy at most ``longest`` pixels on its longer side, for display: a phone's 12 MP
    photo is sent to the browser as a few tens of kilobytes, not encoded whole every rerun."""
    from PIL import Image

    if max(image.size) <= longest:
        return image
    small = image.copy()
    small.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    return small


def decode_image(
    source: bytes | str | os.PathLike | BinaryIO,
    name: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    size: int = SIZE,
) -> np.ndarray:
    """The pixels a model sees for ``source``: ``to_pixels(open_image(source))``."""
    return to_pixels(open_image(source, name, max_bytes), size)


def _read_bytes(source, label: str, max_bytes: int) -> bytes:
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{label}: no such file")
        if path.stat().st_size > max_bytes:
            raise ImageError(f"{label}: file larger than {max_bytes // 1_048_576} MB")
        data = path.read_bytes()
    else:
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageError(f"{label}: file larger than {max_bytes // 1_048_576} MB")
    return data


def _to_rgb(image: "PIL.Image.Image") -> "PIL.Image.Image":  # noqa: F821
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: rescale to 8 bits
        array = np.asarray(image, dtype=np.float64)
        top = array.max() or 1.0
        image = Image.fromarray(np.uint8(np.clip(array / top * 255, 0, 255)), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")
