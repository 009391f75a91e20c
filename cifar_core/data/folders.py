"""Image folders: ``train/<class>/*`` + ``test/<class>/*`` data sets and labelled folders to
evaluate on, all decoded by ``images.decode_image``.

    data = load_image_folder(Path("../shared/data/cifar10-jpeg"), cache_dir)
    x, y, ids = load_labelled_folder("my_photos/", run.class_names)   # <class>/* or test/<class>/*

A data set is decoded once and cached as .npz, keyed by a fingerprint of the file listing
(names, sizes, modification times) and the decoder's format version, so the second load
reads one file.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import cifar_core.data.images as images
from cifar_core.data.dataset import CIFAR10_CLASSES, Cifar10Data, arrays_checksum
from cifar_core.errors import DataError, ImageError
from cifar_core.fileio import atomic_write, npz_bytes

CACHE_FORMAT = 2  # bump when the decoded arrays change meaning (2: the one decoder, images.py)


def _class_names(root: Path) -> tuple[str, ...]:
    splits = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"{folder}: missing split folder (need train/ and test/)")
        names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not names:
            raise DataError(f"{folder}: no class folders")
        splits[split] = names
    if splits["train"] != splits["test"]:
        missing = sorted(set(splits["train"]) ^ set(splits["test"]))
        raise DataError(f"{root}: train/ and test/ have different class folders: {missing}")
    names = splits["train"]
    if set(names) == set(CIFAR10_CLASSES):
        return CIFAR10_CLASSES  # CIFAR-10's own label order, not alphabetical
    return tuple(names)


def _class_files(folder: Path, label: int) -> list[tuple[Path, int]]:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for entry in entries:
        if entry.is_dir() or entry.suffix.lower() not in images.SUFFIXES:
            raise DataError(f"{entry}: not an image file (expected {sorted(images.SUFFIXES)})")
    return [(entry, label) for entry in entries]


def _list_images(root: Path, classes: tuple[str, ...]) -> dict[str, list[tuple[Path, int]]]:
    listing = {}
    for split in ("train", "test"):
        files = []
        for label, name in enumerate(classes):
            found = _class_files(root / split / name, label)
            if not found:
                raise DataError(f"{root / split / name}: empty class folder")
            files += found
        listing[split] = files
    return listing


def _listing_fingerprint(root: Path, listing: dict[str, list[tuple[Path, int]]]) -> str:
    """Cheap cache key: names, sizes and modification times of every file (no reads)."""
    digest = hashlib.sha256(f"format{CACHE_FORMAT}".encode())
    for split, files in listing.items():
        for path, label in files:
            stat = path.stat()
            rel = path.relative_to(root).as_posix()
            digest.update(f"{split}|{rel}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _decode_one(path: Path) -> tuple[np.ndarray, bool]:
    """The one decoder on one file; the flag says whether it was not 32x32 RGB already."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            converted = image.mode != "RGB" or image.size != (images.SIZE, images.SIZE)
        return images.decode_image(path, max_bytes=images.MAX_FILE_BYTES), converted
    except (ImageError, OSError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None


def _decode_all(files: list[tuple[Path, int]], desc: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode every file with a progress bar on a terminal (one line when piped to a log)."""
    out = np.empty((len(files), images.SIZE, images.SIZE, 3), dtype=np.uint8)
    labels = np.array([label for _, label in files], dtype=np.int64)
    converted = 0
    progress = None
    if len(files) >= 2000:
        print(f"Decoding {len(files)} {desc} images (cached after the first time)", flush=True)
        if sys.stdout.isatty():
            from keras.utils import Progbar

            progress = Progbar(len(files), unit_name="image")
    # PIL releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for i, (array, was_converted) in enumerate(pool.map(_decode_one, [f for f, _ in files])):
            out[i] = array
            converted += was_converted
            if progress and (i + 1) % 1000 == 0:
                progress.update(i + 1)
    if progress:
        progress.update(len(files), finalize=True)
    return out, labels, converted


def load_image_folder(root: Path, cache_dir: Path) -> Cifar10Data:
    root = root.resolve()
    classes = _class_names(root)
    listing = _list_images(root, classes)
    key = _listing_fingerprint(root, listing)
    cache_file = cache_dir / f"imagefolder-{key[:24]}.npz"
    test_ids = np.array([p.relative_to(root).as_posix() for p, _ in listing["test"]])
    source = f"image folder {root.name}"
    cached = _read_cache(cache_file)
    if cached is not None:
        arrays = (cached["x_train"], cached["y_train"], cached["x_test"], cached["y_test"])
        checksum = str(cached["checksum"])
    else:
        x_train, y_train, conv_train = _decode_all(listing["train"], "train")
        x_test, y_test, conv_test = _decode_all(listing["test"], "test")
        if conv_train + conv_test:
            warnings.warn(
                f"{root}: converted {conv_train + conv_test} images that were not 32x32 RGB", stacklevel=2
            )
        arrays = (x_train, y_train, x_test, y_test)
        checksum = arrays_checksum(x_train, x_test)
        _write_cache(
            cache_file,
            x_train=x_train,
            y_train=y_train,
            x_test=x_test,
            y_test=y_test,
            checksum=np.array(checksum),
        )
    return Cifar10Data(*arrays, classes, source, checksum, test_ids, kind="image_folder", root=root)


def _read_cache(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as archive:
            return {name: archive[name] for name in archive.files}
    except Exception:  # a corrupt cache is only a cache: decode again
        return None


def _write_cache(path: Path, **arrays: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, npz_bytes(compressed=False, **arrays))
    except OSError as error:  # read-only home: work on without a cache
        warnings.warn(f"could not write the data cache {path}: {error}", stacklevel=2)


def load_labelled_folder(folder: str | os.PathLike, class_names: tuple[str, ...] | list[str]):
    """Decode ``folder/<class>/*`` (or ``folder/test/<class>/*``) for evaluating a saved model.

    Class folders must be among ``class_names`` (the run's); labels follow that order.
    Returns (x uint8 (N, 32, 32, 3), y int64 (N,), ids relative to ``folder``).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    base = root / "test" if (root / "test").is_dir() else root
    present = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not present:
        raise DataError(f"{base}: no class folders")
    unknown = [name for name in present if name not in class_names]
    if unknown:
        raise DataError(f"{base}: class folders {unknown} are not classes of this model {list(class_names)}")
    files = [f for name in present for f in _class_files(base / name, list(class_names).index(name))]
    if not files:
        raise DataError(f"{base}: no images")
    x, y, converted = _decode_all(files, base.name)
    if converted:
        warnings.warn(f"{base}: converted {converted} images that were not 32x32 RGB", stacklevel=2)
    return x, y, np.array([p.relative_to(root).as_posix() for p, _ in files])
