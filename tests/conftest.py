"""Shared fixtures: tiny synthetic CIFAR-like data built on the fly, and one tiny trained run.

No test downloads anything or reads ../shared: images are generated here, with a class
signal (a colour and a stripe per class) that a CNN can pick up in one epoch.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_HOME", str(Path(__file__).parent / ".keras-test-home-unused"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

from cifar_core.data import CIFAR10_CLASSES  # noqa: E402


def synthetic_images(n: int, seed: int = 0, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 32, 32, 3) images whose class shows as a colour cast and a stripe position."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    x = rng.integers(0, 90, (n, 32, 32, 3)).astype(np.int16)
    hues = np.array(
        [
            [200, 40, 40],
            [40, 200, 40],
            [40, 40, 200],
            [200, 200, 40],
            [200, 40, 200],
            [40, 200, 200],
            [120, 120, 120],
            [230, 130, 30],
            [30, 130, 230],
            [130, 30, 230],
        ]
    )
    x += (hues[y % 10] // 2)[:, None, None, :]
    for i, label in enumerate(y):
        x[i, :, (label * 3) % 30 : (label * 3) % 30 + 3, :] = 255
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


def write_image_folder(
    root: Path, n_train: int = 200, n_test: int = 50, classes=CIFAR10_CLASSES, fmt: str = "png"
) -> Path:
    """root/train/<class>/*.png and root/test/<class>/*.png from synthetic_images."""
    from PIL import Image

    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        x, y = synthetic_images(n, seed, len(classes))
        for i, (image, label) in enumerate(zip(x, y)):
            folder = root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:04d}.{fmt}")
    return root


def tiny_config(model: str, **overrides):
    """A preset shrunk to the 300-image synthetic set: batches of 32, 50 validation images."""
    from cifar_core.config import TrainConfig

    return TrainConfig.from_preset(model, **{"batch_size": 32, "val_size": 50, **overrides})


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Keep caches and artifacts of every test out of the home folder and the repo."""
    monkeypatch.setenv("CIFAR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("CIFAR_ARTIFACTS", str(tmp_path_factory.getbasetemp() / "default-artifacts"))


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imgs") / "cifar-like")


@pytest.fixture(scope="session")
def tiny_data():
    from cifar_core.data import Cifar10Data

    x_train, y_train = synthetic_images(300, seed=0)
    x_test, y_test = synthetic_images(60, seed=1)
    return Cifar10Data(x_train, y_train, x_test, y_test, CIFAR10_CLASSES, "synthetic", "synthetic-0")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_data):
    """One epoch of baseline_cnn on 300 synthetic images, written to its own artifacts root."""
    from cifar_core.config import TrainConfig
    from cifar_core.train import train_model

    root = tmp_path_factory.mktemp("artifacts")
    config = TrainConfig.from_preset("baseline_cnn", epochs=2, batch_size=64, val_size=50)
    path = train_model(config, tiny_data, root, verbose=0)
    return root, path.name, config


@pytest.fixture(scope="session")
def dash_root(tmp_path_factory, tiny_data):
    """Three tiny runs (baseline_cnn, cnn_bn, resnet20) for the dashboard tests."""
    from cifar_core.config import TrainConfig
    from cifar_core.train import train_model

    root = tmp_path_factory.mktemp("dash-artifacts")
    for model, epochs in (("baseline_cnn", 2), ("cnn_bn", 2), ("resnet20", 1)):
        config = TrainConfig.from_preset(model, epochs=epochs, val_size=50, batch_size=64)
        train_model(config, tiny_data, root, verbose=0)
    return root
