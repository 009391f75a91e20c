"""Where CIFAR-10 images come from: the Keras cache, the official tarball, or an image folder.

    from cifar_core.data import load_cifar10, split_train_val
    data = load_cifar10("../shared/data/cifar10-jpeg")      # or None for keras.datasets
    x_tr, y_tr, x_val, y_val = split_train_val(data.x_train, data.y_train, 5000, seed=0)

Every loader returns uint8 arrays of shape (N, 32, 32, 3) and int64 labels. Image
folders are decoded once and cached as .npz under the cache dir (``CIFAR_CACHE_DIR``,
default ``~/.cache/cifar_core``), keyed by a fingerprint of the file listing, so the
second load only reads one file.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
KERAS_ARCHIVE_NAME = "cifar-10-batches-py-target_archive"  # what keras.datasets.cifar10 looks for
CACHE_FORMAT = 1  # bump when the cached arrays change meaning


class DataError(ValueError):
    """A data source is missing, malformed or unreadable. The message names the path."""


@dataclass
class Cifar10Data:
    """Decoded CIFAR-10: uint8 images (N, 32, 32, 3), int64 labels, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str  # human-readable description of the source
    checksum: str  # sha256 over the decoded arrays: identical pixels -> identical checksum
    test_ids: np.ndarray = field(default=None)  # type: ignore[assignment]  # per test image: file or index

    def __post_init__(self) -> None:
        if self.test_ids is None:
            self.test_ids = np.array([f"test:{i}" for i in range(len(self.y_test))])
        validate_arrays(self.x_train, self.y_train, len(self.class_names), "train")
        validate_arrays(self.x_test, self.y_test, len(self.class_names), "test")


def validate_arrays(x: np.ndarray, y: np.ndarray, num_classes: int, where: str) -> None:
    """Raise DataError unless x is uint8 (N, 32, 32, 3) and y holds N labels in range."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise DataError(f"{where}: images must be uint8 (N, 32, 32, 3), got {x.dtype} {x.shape}")
    if y.shape != (len(x),):
        raise DataError(f"{where}: {len(x)} images but labels of shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{where}: labels out of range 0..{num_classes - 1} (min {y.min()}, max {y.max()})")


def arrays_checksum(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("CIFAR_CACHE_DIR", Path.home() / ".cache" / "cifar_core"))


def keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def load_cifar10(source: str | os.PathLike | None = None, cache_dir: Path | None = None) -> Cifar10Data:
    """Load CIFAR-10 from ``source``.

    Args:
        source: None for ``keras.datasets.cifar10`` (downloads once); a path to
            ``cifar-10-python.tar.gz``; its extracted ``cifar-10-batches-py/`` folder;
            or an image folder with ``train/<class>/*`` and ``test/<class>/*``.
        cache_dir: where decoded image folders are cached (default ``default_cache_dir()``).

    Raises:
        DataError: naming the path when the source is missing or malformed.
    """
    if source is None:
        return _load_keras()
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path}: data source does not exist")
    if path.is_file():
        if tarfile.is_tarfile(path):
            return _load_tarball(path)
        raise DataError(f"{path}: not a CIFAR-10 tarball or folder")
    if (path / "data_batch_1").exists():
        return _load_batches_dir(path)
    if (path / "cifar-10-batches-py").is_dir():
        return _load_batches_dir(path / "cifar-10-batches-py")
    if (path / "train").is_dir() or (path / "test").is_dir():
        return _load_image_folder(path, cache_dir or default_cache_dir())
    raise DataError(
        f"{path}: expected train/<class>/ and test/<class>/ image folders, "
        "cifar-10-batches-py/ or cifar-10-python.tar.gz"
    )


# --- keras.datasets and the official pickled batches ------------------------------------


def _load_keras() -> Cifar10Data:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # URL errors, hash mismatch, no network: all end here
        target = keras_home() / "datasets" / KERAS_ARCHIVE_NAME
        raise DataError(
            f"could not download CIFAR-10 with keras.datasets.cifar10 ({type(error).__name__}: "
            f"{error}). Offline? Copy the official cifar-10-python.tar.gz to {target} "
            "(Keras extracts it from there), or pass --data-dir with the tarball, its extracted "
            "cifar-10-batches-py/ folder, or an image folder train/<class>/, test/<class>/."
        ) from None
    return Cifar10Data(
        x_train,
        y_train.reshape(-1).astype(np.int64),
        x_test,
        y_test.reshape(-1).astype(np.int64),
        CIFAR10_CLASSES,
        "keras.datasets.cifar10",
        arrays_checksum(x_train, x_test),
    )


def _unpickle_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = pickle.loads(raw, encoding="bytes")  # noqa: S301 -- the official format is pickle
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as error:
        raise DataError(f"{name}: not a CIFAR-10 batch ({error})") from None
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{name}: expected rows of 3072 pixels, got {data.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _assemble_batches(read, where: str) -> Cifar10Data:
    """Assemble the five train batches and the test batch; ``read(name)`` returns bytes."""
    parts = [_unpickle_batch(read(f"data_batch_{i}"), f"{where}/data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _unpickle_batch(read("test_batch"), f"{where}/test_batch")
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{where}: {split} labels out of range 0..9")
    return Cifar10Data(
        x_train,
        y_train,
        x_test,
        y_test,
        CIFAR10_CLASSES,
        f"cifar-10-python ({where})",
        arrays_checksum(x_train, x_test),
    )


def _load_batches_dir(folder: Path) -> Cifar10Data:
    def read(name: str) -> bytes:
        file = folder / name
        if not file.is_file():
            raise DataError(f"{file}: missing CIFAR-10 batch file")
        return file.read_bytes()

    return _assemble_batches(read, str(folder))


def _load_tarball(path: Path) -> Cifar10Data:
    try:
        with tarfile.open(path, "r:*") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}

            def read(name: str) -> bytes:
                if name not in members:
                    raise DataError(f"{path}: missing {name} in the archive")
                return archive.extractfile(members[name]).read()

            return _assemble_batches(read, str(path))
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"{path}: unreadable tarball ({error})") from None


# --- image folders -------------------------------------------------------------------------


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


def _list_images(root: Path, classes: tuple[str, ...]) -> dict[str, list[tuple[Path, int]]]:
    listing = {}
    for split in ("train", "test"):
        files = []
        for label, name in enumerate(classes):
            folder = root / split / name
            entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
            if not entries:
                raise DataError(f"{folder}: empty class folder")
            for entry in entries:
                if entry.is_dir() or entry.suffix.lower() not in IMAGE_SUFFIXES:
                    raise DataError(f"{entry}: not an image file (expected {sorted(IMAGE_SUFFIXES)})")
                files.append((entry, label))
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


def square_pixels(image, size: int = 32) -> np.ndarray:
    """Center-crop a PIL image to a square (CIFAR-10 objects fill the frame), resize it to
    size x size with antialiasing, and return uint8 RGB pixels."""
    from PIL import Image

    if image.size != (size, size):
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _decode_one(path: Path) -> tuple[np.ndarray, bool]:
    """Decode one file to uint8 32x32 RGB; the flag says whether it had to be converted."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            converted = image.mode != "RGB" or image.size != (32, 32)
            return square_pixels(image.convert("RGB")), converted
    except Exception as error:
        raise DataError(f"{path}: not a readable image ({type(error).__name__}: {error})") from None


def _decode_all(files: list[tuple[Path, int]], desc: str) -> tuple[np.ndarray, np.ndarray, int]:
    from keras.utils import Progbar

    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    labels = np.array([label for _, label in files], dtype=np.int64)
    converted = 0
    progress = Progbar(len(files), unit_name="image") if len(files) >= 2000 else None
    if progress:
        print(f"Decoding {len(files)} {desc} images (cached after the first time)")
    # PIL releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for i, (array, was_converted) in enumerate(pool.map(_decode_one, [f for f, _ in files])):
            images[i] = array
            converted += was_converted
            if progress and (i + 1) % 1000 == 0:
                progress.update(i + 1)
    if progress:
        progress.update(len(files), finalize=True)
    return images, labels, converted


def _load_image_folder(root: Path, cache_dir: Path) -> Cifar10Data:
    root = root.resolve()
    classes = _class_names(root)
    listing = _list_images(root, classes)
    key = _listing_fingerprint(root, listing)
    cache_file = cache_dir / f"imagefolder-{key[:24]}.npz"
    test_ids = np.array([p.relative_to(root).as_posix() for p, _ in listing["test"]])
    cached = _read_cache(cache_file)
    if cached is not None:
        return Cifar10Data(
            cached["x_train"],
            cached["y_train"],
            cached["x_test"],
            cached["y_test"],
            classes,
            f"image folder {root}",
            str(cached["checksum"]),
            test_ids,
        )
    x_train, y_train, conv_train = _decode_all(listing["train"], "train")
    x_test, y_test, conv_test = _decode_all(listing["test"], "test")
    if conv_train + conv_test:
        warnings.warn(
            f"{root}: converted {conv_train + conv_test} images that were not 32x32 RGB",
            stacklevel=2,
        )
    checksum = arrays_checksum(x_train, x_test)
    _write_cache(
        cache_file,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        checksum=np.array(checksum),
    )
    return Cifar10Data(x_train, y_train, x_test, y_test, classes, f"image folder {root}", checksum, test_ids)


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
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
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
    files = []
    for name in present:
        entries = sorted(p for p in (base / name).iterdir() if not p.name.startswith("."))
        for entry in entries:
            if entry.is_dir() or entry.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{entry}: not an image file (expected {sorted(IMAGE_SUFFIXES)})")
            files.append((entry, list(class_names).index(name)))
    if not files:
        raise DataError(f"{base}: no images")
    x, y, converted = _decode_all(files, base.name)
    if converted:
        warnings.warn(f"{base}: converted {converted} images that were not 32x32 RGB", stacklevel=2)
    return x, y, np.array([p.relative_to(root).as_posix() for p, _ in files])


# --- splits ----------------------------------------------------------------------------------


def split_train_val(
    x: np.ndarray, y: np.ndarray, val_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded split of train into (x_train, y_train, x_val, y_val)."""
    from sklearn.model_selection import train_test_split

    if not 0 < val_size < len(x):
        raise DataError(
            f"val_size must be between 1 and {len(x) - 1} for {len(x)} train images, got {val_size}"
        )
    x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=val_size, random_state=seed, stratify=y)
    return x_tr, y_tr, x_val, y_val


def subsample(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int):
    """A stratified subset of at most ``limit`` images (for quick runs); all when None."""
    if limit is None or limit >= len(x):
        return x, y
    from sklearn.model_selection import train_test_split

    x_sub, _, y_sub, _ = train_test_split(x, y, train_size=limit, random_state=seed, stratify=y)
    return x_sub, y_sub
