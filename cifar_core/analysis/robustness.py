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
import pandas as pd

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
    clean_pred = predictor(x).argmax(1)
    clean = float((clean_pred == y).mean())
    accuracy, predicted = {}, np.zeros((len(names), 5, len(y)), dtype=np.uint8)
    for k, name in enumerate(names):
        if progress:
            progress(name, k, len(names))
        for s in corruptions.SEVERITIES:
            predicted[k, s - 1] = predictor(_corrupted(x, key, name, s)).argmax(1)
        accuracy[name] = [float((predicted[k, s] == y).mean()) for s in range(5)]
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
    artifacts.write_robustness(
        root, run_id, result, indices=chosen, labels=y, clean=clean_pred.astype(np.uint8), predicted=predicted
    )
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


def table(runs, images: int | None = None) -> tuple[pd.DataFrame, int | None]:
    """One row per run measured on ``images`` images (default: the N most runs have), for
    the Robustness page: label, run id, model, clean, mean corruption accuracy, drop,
    relative mCE and each corruption's accuracy (mean over severities), best first."""
    found = {run.run_id: artifacts.read_robustness(run.path.parent.parent, run.run_id) for run in runs}
    counts = pd.Series([n for results in found.values() for n in results]).value_counts()
    if images is None:
        images = int(counts.index[0]) if len(counts) else None
    rows = []
    for run in runs:
        result = found[run.run_id].get(images) if images else None
        if result is None:
            continue
        base = reference(run.path.parent.parent, images)
        rows.append(
            {
                "label": run.label,
                "run_id": run.run_id,
                "model": run.model,
                "clean": result["clean"],
                "mean corruption accuracy": result["mean_corruption_accuracy"],
                "drop": result["drop"],
                "relative mCE": relative_ce(result, base) if base is not None else np.nan,
                **{name: float(np.mean(row)) for name, row in result["accuracy"].items()},
            }
        )
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values("mean corruption accuracy", ascending=False, ignore_index=True)
    return frame, images


def by_severity(runs, images: int) -> pd.DataFrame:
    """Accuracy against severity (0: clean), mean over corruptions, per run: label, model,
    severity, accuracy (the page draws a seed group's band from several runs of a label)."""
    rows = []
    for run in runs:
        result = artifacts.read_robustness(run.path.parent.parent, run.run_id).get(images)
        if result is None:
            continue
        levels = np.array(list(result["accuracy"].values())).mean(axis=0)
        for severity, accuracy in enumerate([result["clean"], *levels]):
            rows.append(
                {"label": run.label, "run_id": run.run_id, "severity": severity, "accuracy": accuracy}
            )
    return pd.DataFrame(rows)


def clean_line(frame: pd.DataFrame) -> tuple[float, float] | None:
    """Slope and intercept of mean corruption accuracy on clean accuracy over the runs: the
    line a model would follow if its robustness came only from its clean accuracy."""
    if len(frame) < 2 or frame["clean"].nunique() < 2:
        return None
    slope, intercept = np.polyfit(frame["clean"], frame["mean corruption accuracy"], 1)
    return float(slope), float(intercept)


def cell_images(run, images: int, corruption: str, severity: int, wrong_only: bool = True, most: int = 24):
    """The test images of one cell as the model saw them: (test index, corrupted image,
    label, prediction), those it got wrong (or all), at most ``most``. None when the run's
    predictions or its test images are not on this machine."""
    from cifar_core.artifacts.testdata import test_images

    corruptions.check(corruption, severity)
    arrays = artifacts.read_robustness_arrays(run.path.parent.parent, run.run_id, images)
    result = artifacts.read_robustness(run.path.parent.parent, run.run_id).get(images)
    if arrays is None or result is None:
        return None
    k = list(result["accuracy"]).index(corruption)
    predicted, labels = arrays["predicted"][k, severity - 1], arrays["labels"]
    chosen = np.flatnonzero(predicted != labels) if wrong_only else np.arange(len(labels))
    chosen = chosen[:most]
    pixels = test_images(run, arrays["indices"][chosen])
    out = []
    for position, image in zip(chosen, pixels):
        if image is None:
            return None
        bent = corruptions.corrupt(image[None], corruption, severity, first_index=int(position))[0]
        out.append((int(arrays["indices"][position]), bent, int(labels[position]), int(predicted[position])))
    return out


def answers(runs, images: int, corruption: str, position: int = 0) -> pd.DataFrame:
    """Every run's answer for one sampled test image (the ``position``-th), clean and at each
    severity of ``corruption``: model, truth, clean, severity 1..5 (class names)."""
    rows = []
    for run in runs:
        root = run.path.parent.parent
        arrays = artifacts.read_robustness_arrays(root, run.run_id, images)
        result = artifacts.read_robustness(root, run.run_id).get(images)
        if arrays is None or result is None or corruption not in result["accuracy"]:
            continue
        k = list(result["accuracy"]).index(corruption)
        names = run.class_names
        row = {
            "model": run.label,
            "truth": names[arrays["labels"][position]],
            "clean": names[arrays["clean"][position]],
        }
        row.update({f"severity {s + 1}": names[arrays["predicted"][k, s, position]] for s in range(5)})
        rows.append(row)
    return pd.DataFrame(rows)
