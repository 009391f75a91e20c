"""Where CIFAR-10 images come from: the Keras cache, the official tarball, or an image folder.

    from cifar_core.data import load_cifar10, split_train_val
    data = load_cifar10("../shared/data/cifar10-jpeg")      # or None for keras.datasets
    x_tr, y_tr, x_val, y_val = split_train_val(data.x_train, data.y_train, None, seed=0)

Every loader returns uint8 arrays of shape (N, 32, 32, 3) and int64 labels. Image folders
(``folders.py``) are decoded once by the one image decoder (``images.decode_image``) and
cached as .npz under the cache dir (``CIFAR_CACHE_DIR``, default ``~/.cache/cifar_core``).
"""

from __future__ import annotations

import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_core.data.dataset import CIFAR10_CLASSES, Cifar10Data, arrays_checksum, validate_arrays
from cifar_core.data.folders import load_image_folder
from cifar_core.errors import DataError

KERAS_ARCHIVE_NAME = "cifar-10-batches-py-target_archive"  # what keras.datasets.cifar10 looks for
MAX_VAL_SIZE = 5000  # the automatic validation split: 10% of train, at most this many
VAL_FRACTION = 0.1

__all__ = [
    "CIFAR10_CLASSES",
    "Cifar10Data",
    "DataError",
    "Splits",
    "arrays_checksum",
    "load_cifar10",
    "run_splits",
    "split_train_val",
    "validate_arrays",
]


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
        return load_image_folder(path, cache_dir or default_cache_dir())
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
        kind="keras",
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


def _assemble_batches(read, where: Path, kind: str) -> Cifar10Data:
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
        f"cifar-10-python ({where.name})",
        arrays_checksum(x_train, x_test),
        kind=kind,
        root=where.resolve(),
    )


def _load_batches_dir(folder: Path) -> Cifar10Data:
    def read(name: str) -> bytes:
        file = folder / name
        if not file.is_file():
            raise DataError(f"{file}: missing CIFAR-10 batch file")
        return file.read_bytes()

    return _assemble_batches(read, folder, "batches")


def _load_tarball(path: Path) -> Cifar10Data:
    try:
        with tarfile.open(path, "r:*") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}

            def read(name: str) -> bytes:
                if name not in members:
                    raise DataError(f"{path}: missing {name} in the archive")
                return archive.extractfile(members[name]).read()

            return _assemble_batches(read, path, "tarball")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"{path}: unreadable tarball ({error})") from None


# --- splits ----------------------------------------------------------------------------------


def auto_val_size(n_train: int) -> int:
    """The default validation split: 10% of the train images, at most 5,000 (CIFAR-10's
    50,000 give the usual 45,000 / 5,000)."""
    return min(MAX_VAL_SIZE, max(1, round(VAL_FRACTION * n_train)))


def split_train_val(
    x: np.ndarray,
    y: np.ndarray,
    val_size: int | None,
    seed: int,
    class_names: tuple[str, ...] | list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded split of train into (x_train, y_train, x_val, y_val).

    ``val_size`` None means ``auto_val_size(len(x))``; 0 means no validation split (all of
    train, and empty validation arrays: a final fit). Otherwise every class needs at least two
    images (one for each side) and the validation split at least one image per class;
    otherwise DataError says which class is short.
    """
    from sklearn.model_selection import train_test_split

    n = len(x)
    size = auto_val_size(n) if val_size is None else int(val_size)
    if size == 0:
        return x, y, x[:0], y[:0]
    if not 0 < size < n:
        raise DataError(f"val_size must be between 1 and {n - 1} for {n} train images, got {size}")
    labels, counts = np.unique(y, return_counts=True)
    name = lambda c: repr(class_names[c]) if class_names is not None else str(c)  # noqa: E731
    short = [f"{name(c)} ({k})" for c, k in zip(labels, counts) if k < 2]
    if short:
        raise DataError(
            f"too few train images to carve a stratified validation split: class {', '.join(short)}; "
            "every class needs at least 2 (one of them goes to validation)"
        )
    if size < len(labels) or n - size < len(labels):
        raise DataError(
            f"a validation split of {size} of {n} images cannot hold every one of the "
            f"{len(labels)} classes on both sides: set --val-size between {len(labels)} and {n - len(labels)}"
        )
    x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=size, random_state=seed, stratify=y)
    return x_tr, y_tr, x_val, y_val


@dataclass
class Splits:
    """The images a run trains and validates on (its test images are the data's own)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def run_splits(data: Cifar10Data, val_size: int | None, seed: int, train_limit: int | None) -> Splits:
    """The splits a run with these settings trains on: the seeded stratified split, then
    the train subset (every caller makes them this way)."""
    x_tr, y_tr, x_val, y_val = split_train_val(data.x_train, data.y_train, val_size, seed, data.class_names)
    x_tr, y_tr = subsample(x_tr, y_tr, train_limit, seed)
    return Splits(x_tr, y_tr, x_val, y_val)


def subsample(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int):
    """A stratified subset of at most ``limit`` images (for quick runs); all when None."""
    if limit is None or limit >= len(x):
        return x, y
    from sklearn.model_selection import train_test_split

    x_sub, _, y_sub, _ = train_test_split(x, y, train_size=limit, random_state=seed, stratify=y)
    return x_sub, y_sub
