"""How a run stores its two big things compactly: the model (float16 weights inside a
standard ``.keras`` file) and its test-image thumbnails (JPEGs in one .npz)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cifar_core.artifacts.schema import read_npz
from cifar_core.errors import ArtifactError, reraised_as
from cifar_core.fileio import atomic_write, npz_bytes, save_npy

MAX_THUMBNAIL_PIXELS = 256 * 256


def compact_keras_file(src: Path, dst: Path, dtype: str = "float16") -> dict[str, int]:
    """Copy a ``.keras`` file with its float32 weights stored as ``dtype``, gzip-compressed.

    The result is still a standard Keras file: ``keras.saving.load_model`` reads it and casts
    the weights back into the model's float32 variables, so a saved model takes about 45% of
    the disk space. Returns the sizes in bytes; ``dst`` appears atomically.
    """
    import h5py

    target = np.dtype(dtype)
    with zipfile.ZipFile(src) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    if "model.weights.h5" not in members:
        raise ArtifactError(f"{src}: no model.weights.h5 inside, not a Keras 3 model file")
    out = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as fin, h5py.File(out, "w") as fout:

        def copy(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset):
                data = item[()]
                if data.dtype == np.float32:
                    data = data.astype(target)
                big = data.ndim > 0 and data.size >= 256
                fout.create_dataset(name, data=data, compression="gzip" if big else None)
            else:
                fout.require_group(name)
            fout[name].attrs.update(dict(item.attrs))

        fin.visititems(copy)
        fout.attrs.update(dict(fin.attrs))
    members["model.weights.h5"] = out.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    atomic_write(dst, buffer.getvalue())
    return {"bytes_float32": src.stat().st_size, "bytes": dst.stat().st_size}


def thumbnail_bytes(index: np.ndarray, images: np.ndarray) -> bytes:
    """thumbnails.npz: test-set ``index`` (M,) and each image as a JPEG (quality 95, no chroma
    subsampling: under one grey level from the original on average, less than half the bytes),
    concatenated in ``jpeg`` with ``offsets`` (M + 1,)."""
    from PIL import Image

    blobs = []
    for image in np.asarray(images, dtype=np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=95, subsampling=0)
        blobs.append(buffer.getvalue())
    return _pack(index, blobs)


def _pack(index: np.ndarray, blobs: list[bytes]) -> bytes:
    """thumbnails.npz bytes for ``index`` and one JPEG blob per index."""
    offsets = np.cumsum([0, *map(len, blobs)]).astype(np.int64)
    jpeg = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    return npz_bytes(index=np.asarray(index, dtype=np.int32), jpeg=jpeg, offsets=offsets)


def decode_thumbnails(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The (M, H, W, 3) uint8 images of a thumbnails.npz; ArtifactError names a bad file.

    Decoding is most of the time it takes to read a run (about 1 s for the committed runs'
    5,500 thumbnails here, on every new server), so the images of a file that decoded
    cleanly once are kept in the cache folder (``thumbnails/<sha1 of its bytes>.npy``) and
    read from there next time; the same bytes always decode to the same images."""
    if not {"index", "jpeg", "offsets"} <= set(arrays):
        raise ArtifactError(f"{path}: needs arrays index, jpeg and offsets")
    jpeg, offsets = arrays["jpeg"].tobytes(), arrays["offsets"]
    ok = offsets.ndim == 1 and offsets[0] == 0 and offsets[-1] == len(jpeg) and np.all(np.diff(offsets) > 0)
    if not ok:
        raise ArtifactError(f"{path}: offsets do not match the JPEG bytes")
    cached = _thumbnail_cache(jpeg, offsets)
    if cached is not None:
        try:
            images = np.load(cached)
            if images.dtype == np.uint8 and images.ndim == 4 and len(images) == len(offsets) - 1:
                return images
        except (OSError, ValueError):
            pass  # unreadable cache entry: decode again and rewrite it
    images = _decode_jpegs(path, jpeg, offsets)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_npy(cached, images)
        except OSError:  # a read-only cache: decode every time
            pass
    return images


def _thumbnail_cache(jpeg: bytes, offsets: np.ndarray) -> Path | None:
    import hashlib

    from cifar_core.data import default_cache_dir

    if len(offsets) < 2:
        return None
    digest = hashlib.sha1(jpeg + np.asarray(offsets, np.int64).tobytes(), usedforsecurity=False).hexdigest()
    return default_cache_dir() / "thumbnails" / f"{digest}.npy"


def _decode_jpegs(path: Path, jpeg: bytes, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image

    images = []
    with reraised_as(ArtifactError, lambda error: f"{path}: corrupt thumbnail ({type(error).__name__})"):
        for start, end in zip(offsets[:-1], offsets[1:]):
            with Image.open(io.BytesIO(jpeg[start:end]), formats=["JPEG"]) as image:
                if image.size[0] * image.size[1] > MAX_THUMBNAIL_PIXELS:
                    raise ArtifactError(f"{path}: thumbnail larger than 256x256")
                images.append(np.asarray(image.convert("RGB")))
    if len({i.shape for i in images}) > 1:
        raise ArtifactError(f"{path}: thumbnails of different sizes")
    return np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8)


def keep_thumbnails(path: Path, keep: np.ndarray) -> int:
    """Rewrite the thumbnails.npz at ``path`` with only the test images in ``keep`` (their
    JPEG bytes copied as they are) and return how many were dropped; nothing is written
    when none is."""
    arrays = read_npz(path)
    decode_thumbnails(path, arrays)  # a corrupt file fails here, untouched
    index, jpeg, offsets = arrays["index"], arrays["jpeg"].tobytes(), arrays["offsets"]
    kept = np.flatnonzero(np.isin(index, keep))
    if len(kept) == len(index):
        return 0
    blobs = [jpeg[offsets[i] : offsets[i + 1]] for i in kept]
    atomic_write(path, _pack(index[kept], blobs))
    return len(index) - len(kept)
