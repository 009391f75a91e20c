"""The run format, version 2: what each file of a run must hold, and the readers that
check it. ``reading.py`` and ``writing.py`` read and write run folders with these;
``migrate.py`` converts older formats once. A file that does not match raises ArtifactError naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cifar_core.errors import ArtifactError
from cifar_core.evaluate import confusion as confusion_counts

SCHEMA_VERSION = 2
NUMBER = (int, float)
OPTIONAL_STR = (str, type(None))

# What a v2 run must hold: key -> type, or a nested dict of the same. Readers rely on it.
MANIFEST_SCHEMA: dict[str, Any] = {
    "schema_version": int,
    "run_id": str,
    "model": str,
    "family": str,
    "input_size": int,
    "class_names": list,
    "config": dict,
    "data": {
        "kind": str,
        "root": OPTIONAL_STR,
        "source": str,
        "checksum": str,
        "n_train": int,
        "n_val": int,
        "n_test": int,
    },
    "seed": int,
    "phases": list,
    "precision": str,
    "phase_boundary_epoch": (int, type(None)),
    "environment": {"git_commit": OPTIONAL_STR},
    "hardware": str,
    "command": OPTIONAL_STR,
}
METRICS_SCHEMA: dict[str, Any] = {
    "test": {
        "accuracy": NUMBER,
        "top3_accuracy": NUMBER,
        "macro_precision": NUMBER,
        "macro_recall": NUMBER,
        "macro_f1": NUMBER,
        "log_loss": NUMBER,
        "ece": NUMBER,
    },
    "val": {"accuracy": (int, float, type(None))},  # None: no validation split (val_size 0)
    "train": {"accuracy": NUMBER},
    "overfitting_gap": NUMBER,
    "params": int,
    "trainable_params": int,
    "train_time_s": NUMBER,
    "epochs_run": int,
    "inference": {"latency_ms_batch1": NUMBER, "images_per_s_batch256": NUMBER},
    "stored_model": dict,
}
HISTORY_COLUMNS = (
    "epoch",
    "phase",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "epoch_time_s",
)
# robustness/n<N>.json (``robustness``): accuracy under the regenerated CIFAR-10-C corruptions.
ROBUSTNESS_SCHEMA: dict[str, Any] = {
    "corruptions": str,
    "images": int,
    "clean": NUMBER,
    "accuracy": dict,
    "mean_corruption_accuracy": NUMBER,
    "drop": NUMBER,
}
EVALUATION_SCHEMA: dict[str, Any] = {
    "name": str,
    "data_dir": str,
    "n_images": int,
    "accuracy": NUMBER,
    "macro_f1": NUMBER,
}


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path}: corrupt JSON ({error})") from None


def read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except Exception as error:  # pandas raises several parser errors
        raise ArtifactError(f"{path}: corrupt CSV ({type(error).__name__}: {error})") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except Exception as error:
        raise ArtifactError(f"{path}: corrupt array file ({type(error).__name__}: {error})") from None


def require(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise ArtifactError(f"{path}: {message}")


def validate_schema(path: Path, value: Any, schema: dict[str, Any], where: str = "") -> None:
    require(isinstance(value, dict), path, f"{where or 'file'} must be a JSON object")
    for key, kind in schema.items():
        name = f"{where}{key}"
        require(key in value, path, f"missing key {name!r}")
        if isinstance(kind, dict):
            validate_schema(path, value[key], kind, f"{name}.")
        else:
            ok = isinstance(value[key], kind) and not (isinstance(value[key], bool) and kind is not bool)
            require(ok, path, f"{name!r} must be {_names(kind)}")


def validate_manifest(path: Path, manifest: Any) -> None:
    require(isinstance(manifest, dict), path, "not a JSON object")
    version = manifest.get("schema_version")
    hint = ": run `python -m cifar_core migrate` to convert it" if version == 1 else ""
    require(
        version == SCHEMA_VERSION, path, f"schema_version {version!r}, this code reads {SCHEMA_VERSION}{hint}"
    )
    validate_schema(path, manifest, MANIFEST_SCHEMA)
    names = manifest["class_names"]
    require(
        bool(names) and all(isinstance(n, str) for n in names),
        path,
        "class_names must be a non-empty list of strings",
    )
    if "recipe" in manifest:  # optional: the named recipe a zoo run is, and what it changed
        recipe = manifest["recipe"]
        ok = isinstance(recipe, dict) and isinstance(recipe.get("name"), str)
        require(ok and isinstance(recipe.get("changes", {}), dict), path, "recipe must be {name, changes}")


def validate_predictions(path: Path, arrays: dict[str, np.ndarray], k: int, confusion: np.ndarray) -> None:
    for key in ("probs", "y_pred", "y_true", "test_ids"):
        require(key in arrays, path, f"missing array {key!r}")
    probs, y_pred, y_true, ids = arrays["probs"], arrays["y_pred"], arrays["y_true"], arrays["test_ids"]
    require(probs.ndim == 2 and probs.shape[1] == k, path, f"probs must be (N, {k}), got {probs.shape}")
    n = probs.shape[0]
    require(
        y_true.shape == (n,) and y_pred.shape == (n,) and ids.shape == (n,),
        path,
        f"y_true, y_pred and test_ids must have {n} entries each",
    )
    n_expected = int(confusion.sum())
    require(n == n_expected, path, f"{n} predictions but the confusion matrix counts {n_expected}")
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        require(n == 0 or (labels.min() >= 0 and labels.max() < k), path, f"{name} out of range")
    arrays["probs"] = probs.astype(np.float32)
    arrays["y_true"] = y_true.astype(np.int64)
    arrays["y_pred"] = y_pred.astype(np.int64)
    matches = np.array_equal(confusion_counts(arrays["y_true"], arrays["y_pred"], k), confusion)
    require(matches, path, "y_pred does not match the confusion matrix")


def _names(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
