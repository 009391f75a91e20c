"""Shared fixtures: tiny synthetic CIFAR-like data built on the fly, and one tiny trained run.

No test downloads anything or reads ../shared: images are generated here, with a class
signal (a colour and a stripe per class) that a CNN can pick up in one epoch.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_HOME", str(Path(__file__).parent / ".keras-test-home-unused"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
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
    """A preset shrunk to the 300-image synthetic set: batches of 32, 50 validation images,
    float32 pinned (auto may pick bfloat16 on some CPUs)."""
    from cifar_core.config import TrainConfig

    return TrainConfig.from_preset(
        model, **{"batch_size": 32, "val_size": 50, "precision": "float32", **overrides}
    )


CLASSES = ["a", "b", "c"]


def run_values(classes=CLASSES) -> dict:
    """The parts of a small but complete version-2 run, for artifacts.write_run."""
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])
    test = {
        "accuracy": 0.75,
        "top3_accuracy": 1.0,
        "macro_precision": 0.8,
        "macro_recall": 0.8,
        "macro_f1": 0.7,
        "weighted_f1": 0.7,
        "log_loss": 0.6,
        "ece": 0.1,
    }
    return dict(
        manifest={
            "model": "m",
            "family": "scratch",
            "input_size": 32,
            "class_names": list(classes),
            "config": {"model": "m", "epochs": 1},
            "data": {
                "kind": "arrays",
                "root": None,
                "source": "x",
                "checksum": "abc",
                "n_train": 10,
                "n_val": 2,
                "n_test": 4,
            },
            "seed": 0,
            "phases": [{"phase": 1, "trainable_params": 10}],
            "phase_boundary_epoch": None,
            "precision": "float32",
            "environment": {"git_commit": None},
            "hardware": "CPU x2 (test)",
            "command": "python -m cifar_core train --model m",
        },
        history=pd.DataFrame(
            {
                "epoch": [0, 1],
                "phase": [1, 1],
                "loss": [2.0, 1.5],
                "accuracy": [0.3, 0.5],
                "val_loss": [2.1, 1.6],
                "val_accuracy": [0.3, 0.5],
                "learning_rate": [1e-3, 1e-3],
                "epoch_time_s": [1.0, 1.0],
            }
        ),
        metrics={
            "test": test,
            "val": {"accuracy": 0.5},
            "train": {"accuracy": 0.9},
            "overfitting_gap": 0.15,
            "params": 10,
            "trainable_params": 10,
            "train_time_s": 2.0,
            "epochs_run": 2,
            "inference": {"latency_ms_batch1": 1.0, "images_per_s_batch256": 1000.0},
            "stored_model": {"weights_dtype": "float16"},
        },
        per_class=[{"class": c, "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 1} for c in classes],
        confusion=np.array([[2, 0, 0], [0, 1, 0], [0, 0, 1]]),
        predictions={
            "probs": probs,
            "y_true": np.array([0, 1, 2, 0]),
            "test_ids": np.array(["t0", "t1", "t2", "t3"]),
        },
        thumbnails={"index": np.array([2]), "images": np.zeros((1, 32, 32, 3), np.uint8)},
    )


def fake_model(path) -> None:
    """A zip that passes the run reader's model check (never loaded by Keras)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """The same cache for the session fixtures (built before any test's own fixtures)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIFAR_CACHE_DIR", str(shared_temp(tmp_path_factory) / "cache"))
        yield


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Keep caches and artifacts of every test out of the home folder and the repo. The
    cache is shared by the xdist workers (its files are written atomically): a model
    exported by one worker's fixture is found by the other's dashboard."""
    monkeypatch.setenv("CIFAR_CACHE_DIR", str(shared_temp(tmp_path_factory) / "cache"))
    monkeypatch.setenv("CIFAR_ARTIFACTS", str(tmp_path_factory.getbasetemp() / "default-artifacts"))


def shared_temp(tmp_path_factory) -> Path:
    """The temporary folder of the whole session (both xdist workers)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` once per test session, shared by the xdist workers (pytest-xdist's
    documented recipe: the first worker builds under a file lock, the others wait and reuse).
    Tests copy a shared folder before they change anything in it."""
    from filelock import FileLock

    shared = shared_temp(tmp_path_factory)
    folder = shared / name
    with FileLock(str(folder) + ".lock"):
        if not (shared / f"{name}.done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (shared / f"{name}.done").touch()
    return folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, "cifar-like", write_image_folder)


@pytest.fixture(scope="session")
def tiny_data():
    from cifar_core.data import Cifar10Data

    x_train, y_train = synthetic_images(300, seed=0)
    x_test, y_test = synthetic_images(60, seed=1)
    return Cifar10Data(x_train, y_train, x_test, y_test, CIFAR10_CLASSES, "synthetic", "synthetic-0")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_data):
    """Two epochs of baseline_cnn on 300 synthetic images, written to its own artifacts root."""
    from cifar_core import artifacts
    from cifar_core.config import TrainConfig
    from cifar_core.training.trainer import train_model

    settings = {"epochs": 2, "batch_size": 64, "val_size": 50, "precision": "float32"}
    config = TrainConfig.from_preset("baseline_cnn", **settings)
    root = built_once(
        tmp_path_factory, "artifacts", lambda r: train_model(config, tiny_data, r, verbose=0, export=False)
    )
    (run_id,) = artifacts.list_runs(root)
    return root, run_id, config


@pytest.fixture(scope="session")
def dash_root(tmp_path_factory, tiny_data):
    """Three tiny runs (baseline_cnn, cnn_bn, resnet20) for the dashboard tests, exported
    to ONNX as ``train`` does (the dashboard serves the exports)."""
    from cifar_core.config import TrainConfig
    from cifar_core.serving import exports
    from cifar_core.training.trainer import train_model

    def build(root):
        for model, epochs in (("baseline_cnn", 2), ("cnn_bn", 2), ("resnet20", 1)):
            config = TrainConfig.from_preset(
                model, epochs=epochs, val_size=50, batch_size=64, precision="float32"
            )
            path = train_model(config, tiny_data, root, verbose=0, export=False)
            exports.export_run(root, path.name)

    return built_once(tmp_path_factory, "dash-artifacts", build)


@pytest.fixture(scope="session")
def folder_run(tmp_path_factory, image_folder):
    """One epoch of baseline_cnn trained from an image folder (the data is on this machine)."""
    from cifar_core import artifacts
    from cifar_core.cli import main

    argv = ["train", "--model", "baseline_cnn", "--epochs", "1", "--val-size", "50", "--precision", "float32"]

    def build(root):
        assert main([*argv, "--data-dir", str(image_folder), "--artifacts-dir", str(root)]) == 0

    root = built_once(tmp_path_factory, "folder-artifacts", build)
    (run_id,) = artifacts.list_runs(root)
    return root, run_id


@pytest.fixture(scope="session")
def ladder_root(tmp_path_factory, image_folder):
    """Rungs 1 and 2 of seed 004's ladder, one epoch each, through the command line."""
    from cifar_core.cli import main

    argv = ["ladder", "run", "seed004", "--rungs", "1-2", "--epochs", "1", "--val-size", "50"]

    def build(root):
        assert main([*argv, "--data-dir", str(image_folder), "--artifacts-dir", str(root)]) == 0

    return built_once(tmp_path_factory, "ladder-artifacts", build)


@pytest.fixture
def pg():
    """A new empty database on the PostgreSQL test server (tests/pg.py), dropped after."""
    from pg import drop_database, fresh_database, server_url

    base = server_url()
    url = fresh_database(base)
    yield url
    drop_database(base, url)
