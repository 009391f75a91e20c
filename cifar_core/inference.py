"""Load a run's model and classify images: shared by the CLI and the dashboard.

    model = load_model(run.model_path)                     # Keras safe mode on
    image = open_image(uploaded_bytes)                     # ImageError: a one-line reason
    probs = predict_probs(model, to_model_input(image)[None])

Saved models take raw uint8 32x32 RGB pixels and do their own scaling, so the only
preprocessing here is making a 32x32 RGB array out of whatever image came in.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cifar_core.data import square_pixels

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # larger uploads are refused before decoding
MAX_PIXELS = 40_000_000  # width x height; larger is treated as a decompression bomb
MAX_ASPECT = 50  # a 10000x10 strip says nothing about a 32x32 object


class ImageError(ValueError):
    """An input that is not a usable image; str() is a one-line message for the user."""


class ModelLoadError(ValueError):
    """A saved model that cannot (or may not) be loaded."""


def open_image(
    source: bytes | str | os.PathLike | BinaryIO, name: str | None = None, max_bytes: int = MAX_UPLOAD_BYTES
) -> "PIL.Image.Image":  # noqa: F821
    """Decode ``source`` safely into an upright 8-bit RGB PIL image.

    Refuses oversized files, decompression bombs and non-images with ImageError; honours
    EXIF orientation; takes the first frame of animations; flattens alpha onto white.
    """
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


def to_model_input(image: "PIL.Image.Image", size: int = 32) -> np.ndarray:  # noqa: F821
    """The uint8 (size, size, 3) array a saved model takes: center square, antialiased."""
    return square_pixels(image, size)


def load_model(path: str | os.PathLike):
    """Load a saved ``.keras`` model with Keras safe mode on (no arbitrary code)."""
    import keras

    import cifar_core.models  # noqa: F401  (registers the zoo's own layers, e.g. ImageNetPreprocess)

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file missing")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "safe_mode" in str(error) or "lambda" in str(error).lower():
            message = "refused: the model contains code (Lambda layer) and safe mode is on"
        raise ModelLoadError(f"{path}: cannot load model ({message[:200]})") from None


def flip_batch(x: np.ndarray) -> np.ndarray:
    return x[:, :, ::-1, :]


def translate_batch(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift images by (dy, dx) pixels with reflect padding."""
    pad = max(abs(dy), abs(dx))
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    return padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w, :]


def predict_probs(model, x: np.ndarray, tta: str = "none", batch_size: int = 500) -> np.ndarray:
    """Class probabilities (N, K) float32, averaged over test-time augmentations.

    tta: "none"; "flip" (image and its mirror, equal weights); "flip_translate" (airbench's
    level 2: half the weight on the image and its mirror, half on both shifted by one pixel
    up-left and down-right, reflect-padded: six views).
    """
    views = [(x, 1.0)]
    if tta == "flip":
        views = [(x, 0.5), (flip_batch(x), 0.5)]
    elif tta == "flip_translate":
        views = [(x, 0.25), (flip_batch(x), 0.25)]
        for shift in (-1, 1):
            moved = translate_batch(x, shift, shift)
            views += [(moved, 0.125), (flip_batch(moved), 0.125)]
    total = None
    for view, weight in views:
        probs = weight * model.predict(np.ascontiguousarray(view), batch_size=batch_size, verbose=0)
        total = probs if total is None else total + probs
    return total.astype(np.float32)


def classify(model, images: list[np.ndarray], class_names: list[str], top_k: int = 3) -> list[dict]:
    """Classify uint8 32x32x3 arrays: per image the probabilities, top-k and time taken."""
    batch = np.stack(images).astype(np.uint8)
    start = time.perf_counter()
    probs = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    ms_per_image = (time.perf_counter() - start) * 1000 / len(images)
    results = []
    for row in probs:
        order = np.argsort(-row)[:top_k]
        results.append(
            {
                "probs": {name: float(p) for name, p in zip(class_names, row)},
                "top": [(class_names[i], float(row[i])) for i in order],
                "ms_per_image": ms_per_image,
            }
        )
    return results
