"""The data wing: where CIFAR-10 images come from and how they reach a model.

- ``sources``: the loaders (Keras cache, the official tarball, an image folder) and the
  train/validation split; its API is this package's (``from cifar_core.data import load_cifar10``).
- ``dataset``: the arrays and their checks; ``folders``: image folders, decoded once and cached;
  ``images``: the one image decoder (uploads, folders); ``pipeline``: tf.data and augmentation;
  ``datafacts``: what a run's data looked like.

Imports only the root modules (errors, fileio, config) and nothing above it.
"""

from cifar_core.data.dataset import CIFAR10_CLASSES, Cifar10Data
from cifar_core.data.sources import (
    Splits,
    auto_val_size,
    default_cache_dir,
    load_cifar10,
    run_splits,
    split_train_val,
    subsample,
)

__all__ = [
    "CIFAR10_CLASSES",
    "Cifar10Data",
    "Splits",
    "auto_val_size",
    "default_cache_dir",
    "load_cifar10",
    "run_splits",
    "split_train_val",
    "subsample",
]
