"""How robust is a model? Its accuracy under the CIFAR-10-C corruptions, regenerated
(``data.corruptions``), at the five severities, on N test images (the same for every model).

    result = measure(root, run_id, data, images=1000)   # stored in robustness/n1000.json
    relative_ce(result, reference)                               # against baseline_cnn's

Predictions come from the run's checked ONNX export where it has one (no TensorFlow, faster),
else from its Keras model; one view per image (no TTA), for the clean images too, so the
drop compares like with like. The mean corruption accuracy is the mean over the 75 cells.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cifar_core import artifacts
from cifar_core.data import corruptions
from cifar_core.errors import ArtifactError, ConfigError

LABEL = "CIFAR-10-C corruptions, regenerated"
REFERENCE_MODEL = "baseline_cnn"  # the zoo's plainest CNN: the "AlexNet" of this workbench


def sample(n_test: int, images: int, seed: int = 0) -> np.ndarray:
    """The indices of ``images`` test images: a seeded draw, the same for every model."""
    if images < 1:
        raise ConfigError(f"--images {images}: at least 1")
    return np.sort(np.random.default_rng(seed).permutation(n_test)[: min(images, n_test)])


def _predictor(run):
    from cifar_core.artifacts.exported import find_export
    from cifar_core.serving.inference import OnnxPredictor, Predictor, load_model

    if not run.model_path or not Path(run.model_path).is_file():
        raise ArtifactError(f"{run.run_id} has no model file (a lean run): nothing to measure")
    found = find_export(run.model_path)
    if found is not None:
        return OnnxPredictor(found).warm(), "onnx"
    return Predictor(load_model(run.model_path)).warm(), "keras"


def measure(
    root: Path,
    run_id: str,
    data,
    images: int = 1000,
    names: tuple[str, ...] = corruptions.NAMES,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Accuracy of the run's model on clean and corrupted test images; stored in the run."""
    for name in names:
        corruptions.check(name, 1)
    run = artifacts.read_run(root, run_id)
    if data.checksum != run.manifest.get("data", {}).get("checksum"):
        raise ConfigError(f"{run_id} was trained on other data: pass its --data-dir")
    chosen = sample(len(data.y_test), images)
    x, y = data.x_test[chosen], data.y_test[chosen]
    key = (data.checksum, hashlib.sha256(chosen.astype(np.int64).tobytes()).hexdigest())
    predictor, runtime = _predictor(run)
    start = time.perf_counter()
    clean = float((predictor(x).argmax(1) == y).mean())
    accuracy = {}
    for k, name in enumerate(names):
        if progress:
            progress(name, k, len(names))
        accuracy[name] = [
            float((predictor(_corrupted(x, key, name, s)).argmax(1) == y).mean())
            for s in corruptions.SEVERITIES
        ]
    mean = float(np.mean([v for row in accuracy.values() for v in row]))
    result = {
        "corruptions": LABEL,
        "images": int(len(chosen)),
        "indices_sha256": key[1],
        "runtime": runtime,
        "clean": clean,
        "accuracy": accuracy,
        "mean_corruption_accuracy": mean,
        "drop": clean - mean,
        "seconds": time.perf_counter() - start,
        "model_mtime_ns": Path(run.model_path).stat().st_mtime_ns,
    }
    artifacts.write_robustness(root, run_id, result)
    return result


_CORRUPTED: dict[tuple, np.ndarray] = {}  # the same images for every model of one command


def _corrupted(x: np.ndarray, key: tuple, name: str, severity: int) -> np.ndarray:
    """``x`` under one corruption, made once per process for all the models scored on it."""
    found = _CORRUPTED.get((*key, name, severity))
    if found is None:
        found = _CORRUPTED[(*key, name, severity)] = corruptions.corrupt(x, name, severity)
    return found


def cached(root: Path, run, images: int) -> dict | None:
    """The stored result for ``images`` images of this very model file, if there is one."""
    found = artifacts.read_robustness(root, run.run_id).get(images)
    if found is None or not run.model_path or not Path(run.model_path).is_file():
        return found
    return found if found.get("model_mtime_ns") == Path(run.model_path).stat().st_mtime_ns else None


def relative_ce(result: dict, reference: dict) -> float:
    """Hendrycks & Dietterich's relative mCE against ``reference`` (baseline_cnn's result on
    the same images): per corruption, the error added by it, summed over severities, over
    the reference's; averaged over corruptions. Below 1: it loses less than the reference."""
    ratios = []
    for name, row in result["accuracy"].items():
        base = reference["accuracy"].get(name)
        if base is None:
            continue
        ours = sum((1 - a) - (1 - result["clean"]) for a in row)
        theirs = sum((1 - a) - (1 - reference["clean"]) for a in base)
        if theirs > 0:
            ratios.append(ours / theirs)
    return float(np.mean(ratios)) if ratios else float("nan")


def worst(result: dict) -> tuple[str, float]:
    """The corruption that costs the most (mean over severities) and its severity-5 accuracy."""
    name = min(result["accuracy"], key=lambda k: np.mean(result["accuracy"][k]))
    return name, result["accuracy"][name][-1]


def reference(root: Path, images: int) -> dict | None:
    """``REFERENCE_MODEL``'s stored result on ``images`` images in ``root`` (its first run
    that has one), the yardstick of the relative mCE."""
    for run_id in artifacts.list_runs(root):
        try:
            if artifacts.read_manifest(root, run_id).get("config", {}).get("model") != REFERENCE_MODEL:
                continue
        except ArtifactError:
            continue
        found = artifacts.read_robustness(root, run_id).get(images)
        if found is not None:
            return found
    return None


def summary(run) -> dict | None:
    """The run's robustness row (its largest N), for ``show``, the Run page and the tables;
    None before ``robustness`` has measured it."""
    root = run.path.parent.parent
    found = artifacts.read_robustness(root, run.run_id)
    if not found:
        return None
    images = max(found)
    result = found[images]
    name, at_five = worst(result)
    base = reference(root, images)
    return {
        "images": images,
        "clean": result["clean"],
        "mean corruption accuracy": result["mean_corruption_accuracy"],
        "drop": result["drop"],
        "worst": name,
        "worst at severity 5": at_five,
        "relative mCE": relative_ce(result, base) if base is not None else float("nan"),
        "accuracy": result["accuracy"],
    }
