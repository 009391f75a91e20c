"""What the dashboard's Classify page gets from every committed zoo run: load, latency,
throughput and heatmap time, through the same calls the page makes."""

from __future__ import annotations

import time

import numpy as np


def _zoo_runs(root) -> list:
    from cifar_core import artifacts

    runs, _ = artifacts.load_runs(artifacts.artifacts_root(root))
    return [run for run in runs if not artifacts.is_ladder_run(run)]  # what the Classify page shows


KEYS = ("load_s", "latency_ms_batch1", "images_per_s_batch256")


def inference_speed(root=None) -> list[dict]:
    """Per committed zoo run with a model file, what the Classify page gets from it: seconds
    to load and warm its ONNX export as the dashboard's background loader does (``onnx_*``;
    None when it has no checked export here), and the same for its Keras ``Predictor``
    (``keras_*``, what the page used before and still uses without an export): the median
    batch-1 latency of that call and its batch-256 throughput. ``load_s`` and the other
    unprefixed figures are the served runtime's."""
    from cifar_core import evaluate
    from cifar_core.errors import ModelLoadError
    from cifar_core.serving import exports
    from cifar_core.serving.inference import OnnxPredictor, Predictor, load_model

    images = np.random.default_rng(3).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    results = []
    for run in _zoo_runs(root):
        if not run.has_model:
            continue
        row = {"run": run.run_id}
        found = exports.find_export(run.model_path)
        for name in ("keras", "onnx") if found is not None else ("keras",):
            start = time.perf_counter()
            try:  # the run's own code is never imported here: a model that needs it is skipped
                predict = (
                    OnnxPredictor(found) if name == "onnx" else Predictor(load_model(run.model_path))
                ).warm()
            except ModelLoadError:
                row.update({f"{name}_{key}": None for key in KEYS})
                continue
            row[f"{name}_load_s"] = time.perf_counter() - start
            row[f"{name}_latency_ms_batch1"] = evaluate.latency_ms_per_image(predict, images[:1])
            row[f"{name}_images_per_s_batch256"] = evaluate.throughput_images_per_s(predict, images)
        served = "onnx" if found is not None else "keras"
        if row.get(f"{served}_load_s") is None:
            continue
        row["served_by"] = served
        row.update({key: row[f"{served}_{key}"] for key in KEYS})
        results.append(row)
    return results


def saliency_speed(root=None, repeats: int = 3) -> dict:
    """Seconds to compute one photo's heatmap for every run's model (its top class), after
    a warm-up call (loading and tracing, also timed), as the Classify page's "Why?" does."""
    from cifar_core.analysis import saliency
    from cifar_core.serving.inference import load_model

    runs = _zoo_runs(root)
    photo = np.random.default_rng(2).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    start = time.perf_counter()
    explainers = [saliency.explainer(load_model(run.model_path)) for run in runs]
    for explain in explainers:
        saliency.heatmaps(explain, photo)
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for explain in explainers:
            saliency.heatmaps(explain, photo)
        best = min(best, time.perf_counter() - start)
    return {"models": len(runs), "first_s": first, "warm_s": float(best)}


def model_costs(root=None) -> list[dict]:
    """Per committed zoo run, the Run page's cost figures: parameters, FLOPs and
    multiply-adds per image (TensorFlow's profiler), model file size, batch-1 latency,
    batch-500 throughput and the memory one prediction adds, through the Predictor."""
    from cifar_core.analysis import architecture
    from cifar_core.serving.inference import load_model

    rows = []
    for run in _zoo_runs(root):
        model = load_model(run.model_path)
        total = architecture.totals(architecture.layer_table(model))
        cost = architecture.measure_cost(model)
        rows.append(
            {
                "run": run.run_id,
                "model": run.label,
                "params": total["params"],
                "flops": total["flops"],
                "multiply_adds": total["multiply_adds"],
                "file_mb": run.model_path.stat().st_size / 2**20,
                **cost,
            }
        )
    return rows
