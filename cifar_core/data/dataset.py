"""What a loaded data set is: decoded CIFAR-10-like images, labels, and where they came from.

Every loader (``data.load_cifar10``, ``folders.load_image_folder``) returns a ``Cifar10Data``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cifar_core.errors import DataError

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
    kind: str = "arrays"  # keras | tarball | batches | image_folder | arrays (built in code)
    root: Path | None = None  # the file or folder read (None: keras.datasets or in memory)

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
