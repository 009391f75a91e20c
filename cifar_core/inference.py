"""Load a run's model and classify images: shared by the CLI and the dashboard.

    model = load_model(run.model_path)                     # Keras safe mode on
    pixels = images.decode_image(uploaded_bytes)           # ImageError: a one-line reason
    probs = predict_probs(model, pixels[None])

Saved models take raw uint8 32x32 RGB pixels and do their own scaling, so the only
preprocessing is the one decoder's (``images.py``), whatever image came in.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from cifar_core.errors import ModelLoadError


def load_model(path: str | os.PathLike):
    """Load a saved ``.keras`` model with Keras safe mode on (no arbitrary code)."""
    import keras

    import cifar_core.models  # noqa: F401  (registers the zoo's own layers, e.g. ImageNetPreprocess)

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file missing")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "safe_mode" in str(error) or "lambda" in str(error).lower():
            message = "refused: the model contains code (Lambda layer) and safe mode is on"
        raise ModelLoadError(f"{path}: cannot load model ({message[:200]})") from None


def flip_batch(x: np.ndarray) -> np.ndarray:
    return x[:, :, ::-1, :]


def translate_batch(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift images by (dy, dx) pixels with reflect padding."""
    pad = max(abs(dy), abs(dx))
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    return padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w, :]


def predict_probs(model, x: np.ndarray, tta: str = "none", batch_size: int = 500) -> np.ndarray:
    """Class probabilities (N, K) float32, averaged over test-time augmentations.

    tta: "none"; "flip" (image and its mirror, equal weights); "flip_translate" (airbench's
    level 2: half the weight on the image and its mirror, half on both shifted by one pixel
    up-left and down-right, reflect-padded: six views).
    """
    views = [(x, 1.0)]
    if tta == "flip":
        views = [(x, 0.5), (flip_batch(x), 0.5)]
    elif tta == "flip_translate":
        views = [(x, 0.25), (flip_batch(x), 0.25)]
        for shift in (-1, 1):
            moved = translate_batch(x, shift, shift)
            views += [(moved, 0.125), (flip_batch(moved), 0.125)]
    total = None
    for view, weight in views:
        probs = weight * model.predict(np.ascontiguousarray(view), batch_size=batch_size, verbose=0)
        total = probs if total is None else total + probs
    return total.astype(np.float32)


def classify(model, images: list[np.ndarray], class_names: list[str], top_k: int = 3) -> list[dict]:
    """Classify uint8 32x32x3 arrays: per image the probabilities, top-k and time taken."""
    batch = np.stack(images).astype(np.uint8)
    start = time.perf_counter()
    probs = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    ms_per_image = (time.perf_counter() - start) * 1000 / len(images)
    results = []
    for row in probs:
        order = np.argsort(-row)[:top_k]
        results.append(
            {
                "probs": {name: float(p) for name, p in zip(class_names, row)},
                "top": [(class_names[i], float(row[i])) for i in order],
                "ms_per_image": ms_per_image,
            }
        )
    return results


def evaluate_folder(artifacts_dir, run_id: str, data_dir, name: str | None = None):
    """Score a saved run on a labelled image folder (with the run's TTA) and store the result
    as ``evaluations/<name>.json`` (default name: the folder's). Returns (run id, result, path)."""
    from pathlib import Path

    from cifar_core import artifacts, evaluate
    from cifar_core.folders import load_labelled_folder

    root = artifacts.artifacts_root(artifacts_dir)
    run = artifacts.read_run(root, run_id)
    x, y, _ = load_labelled_folder(data_dir, run.class_names)
    probs = predict_probs(load_model(run.model_path), x, run.manifest["config"]["tta"])
    result = evaluate.classification_metrics(y, probs, run.class_names)
    result.update(
        {
            "data_dir": artifacts.relative_path(data_dir, root),
            "n_images": int(len(y)),
            "per_class": evaluate.per_class_report(y, probs.argmax(1), run.class_names),
        }
    )
    path = artifacts.write_evaluation(root, run.run_id, name or Path(data_dir).resolve().name, result)
    return run.run_id, result, path
