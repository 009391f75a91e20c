"""Speed and memory per model (``python -m cifar_core benchmark``).

Each model is measured in its own subprocess, so its peak memory is its own:
- training images/s per precision, through the real tf.data pipeline (augmentation on),
  and the share of step time spent waiting for the next batch;
- inference ms/image at batch 1 and images/s at batch 256 (float32, as served);
- peak resident memory of the process.
For ``fast``, the wall time to reach 88% and 90% validation accuracy (airbench94, the peer,
ends at about 90% on the shared JPEG copies) is read from the
per-epoch history of its runs in the artifacts folder.
Only compare figures from one invocation: this machine is shared and noisy.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import numpy as np


def peak_memory_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over from the parent across fork+exec, which would charge every model the parent's peak."""
    try:
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def preset(name: str, settings: list[str] = (), **overrides):
    """The model's preset with ``--set`` settings and ``overrides`` on top."""
    from cifar_core.config import TrainConfig

    return TrainConfig.from_preset(name, list(settings), **overrides)


def _train_speed(
    name: str, precision: str, steps: int, phase: int = 1, input_size=None, settings=(), profile=False
) -> dict:
    """Training images/s on pixels (phase 2: with the top of the backbone unfrozen); with
    ``profile``, also the forward + backward time of every layer (stepprofile.py)."""
    import keras
    import tensorflow as tf

    from cifar_core import finetune, runtime
    from cifar_core.fitting import build_model, compile_for
    from cifar_core.pipeline import make_dataset

    config = preset(name, settings, precision=precision, input_size=input_size).phase(phase)
    if config.weights is not None:  # speed does not depend on the values: nothing to download
        config.weights = "none"
    keras.backend.clear_session()
    with runtime.dtype_policy(precision):
        rng = np.random.default_rng(0)
        n = config.batch_size * 4
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        strategy = tf.distribute.get_strategy()
        model = build_model(config, strategy, x)
        if finetune.is_transfer(model):
            finetune.set_phase(model, phase, config.fine_tune_layers)
        compile_for(model, config, strategy, 100, config.epochs, config.learning_rate)
        ds = make_dataset(x, y, config.batch_size, 10, augment=config.augment, shuffle=True, repeat=True)
        batches = iter(ds)
        for _ in range(2):  # warm-up: tracing, allocation
            model.train_on_batch(*next(batches))
        wait = total = 0.0
        for _ in range(steps):
            start = time.perf_counter()
            xb, yb = next(batches)
            got = time.perf_counter()
            model.train_on_batch(xb, yb)
            wait += got - start
            total += time.perf_counter() - start
        out = {
            "images_per_s": steps * config.batch_size / total,
            "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "data_wait_share": wait / total,
            "batch_size": config.batch_size,
        }
        if profile:
            from cifar_core import stepprofile

            out["layers"] = stepprofile.layer_times(model, config.batch_size)
        return out


def measure(
    name: str, steps: int, precisions: list[str], input_size=None, settings=(), profile=False
) -> dict:
    """All figures for one model, in this process."""
    import keras

    from cifar_core import evaluate
    from cifar_core.inference import Predictor
    from cifar_core.models import create_model, get_spec

    transfer = get_spec(name).family == "transfer"
    config = preset(
        name, settings, weights="none" if transfer else None, input_size=input_size if transfer else None
    )
    result = {"model": name, "train": {}, "input_size": config.input_size, "settings": list(settings)}
    for precision in precisions:
        result["train"][precision] = _train_speed(
            name, precision, steps, 1, config.input_size, settings, profile
        )
    if transfer and config.fine_tune_epochs > 0:
        result["train_phase2"] = {p: _train_speed(name, p, steps, 2, config.input_size) for p in precisions}
    keras.backend.clear_session()
    model = create_model(name, **config.model_kwargs())
    result["params"] = int(model.count_params())
    images = np.random.default_rng(1).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    predict = Predictor(model)  # the call every prediction in the workbench makes
    result["latency_ms_batch1"] = evaluate.latency_ms_per_image(predict, images[:1])
    result["images_per_s_batch256"] = evaluate.throughput_images_per_s(predict, images)
    result["peak_memory_mb"] = peak_memory_mb()
    return result


TARGETS = (0.88, 0.90)


def time_to_accuracy(root=None, thresholds=TARGETS) -> list[dict]:
    """For each readable `fast` run: cumulative training seconds until val accuracy >= t."""
    from cifar_core import artifacts

    runs, _ = artifacts.load_runs(artifacts.artifacts_root(root))
    out = []
    for run in runs:
        if run.model != "fast":
            continue
        elapsed = run.history["epoch_time_s"].cumsum()
        row = {"run": run.run_id}
        for t in thresholds:
            hit = run.history.index[run.history["val_accuracy"] >= t]
            row[f"s_to_{round(t * 100)}"] = float(elapsed[hit[0]]) if len(hit) else None
        out.append(row)
    return out


def projection(
    result: dict, epochs: int, precisions: list[str], n_train: int = 45_000, n_test: int = 5_000
) -> str:
    """The wall time of an ``epochs``-epoch run at the measured speed: training on the
    default split of the shared data (45,000 images) plus six-view TTA on the test split."""
    parts = []
    for p in precisions:
        train_min = epochs * n_train / result["train"][p]["images_per_s"] / 60
        parts.append(f"{p.replace('mixed_', '')} {train_min:.1f} min")
    tta_min = 6 * n_test / result["images_per_s_batch256"] / 60
    return (
        f"{result['model']}: {epochs} epochs of {n_train:,} images: training "
        + ", ".join(parts)
        + f"; + {tta_min:.1f} min for six-view TTA on {n_test:,} test images"
    )


def _table(results: list[dict], precisions: list[str]) -> str:
    head = f"{'model':<20}{'params':>11}"
    for p in precisions:
        head += f"{'train img/s ' + p.replace('mixed_', ''):>24}{'wait':>6}"
    head += f"{'ms/img b1':>11}{'img/s b256':>12}{'peak MB':>9}"
    lines = [head]
    for r in results:
        if "error" in r:
            lines.append(f"{r['model']:<20} failed: {r['error']}")
            continue
        name = r["model"] + (f" @{r['input_size']}" if r.get("input_size") else "")
        line = f"{name:<20}{r['params']:>11,}"
        for p in precisions:
            t = r["train"][p]
            line += f"{t['images_per_s']:>24.0f}{t['data_wait_share']:>6.0%}"
        line += (
            f"{r['latency_ms_batch1']:>11.2f}{r['images_per_s_batch256']:>12.0f}{r['peak_memory_mb']:>9.0f}"
        )
        lines.append(line)
        if "train_phase2" in r:  # the fine-tuning phase, on pixels, top of the backbone unfrozen
            t2 = r["train_phase2"]
            line = f"{'  phase 2':<20}{t2[precisions[0]]['trainable_params']:>11,}"
            for p in precisions:
                line += f"{t2[p]['images_per_s']:>24.0f}{t2[p]['data_wait_share']:>6.0%}"
            lines.append(line)
    return "\n".join(lines)


def _zoo_runs(root) -> list:
    from cifar_core import artifacts

    runs, _ = artifacts.load_runs(artifacts.artifacts_root(root))
    return [run for run in runs if not artifacts.is_ladder_run(run)]  # what the Classify page shows


def inference_speed(root=None) -> list[dict]:
    """Per committed zoo run, what the Classify page gets from it: seconds to load and warm
    its ``Predictor`` (as the dashboard's background loader does), the median batch-1
    latency of that same call and its batch-256 throughput."""
    from cifar_core import evaluate
    from cifar_core.inference import Predictor, load_model

    images = np.random.default_rng(3).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    results = []
    for run in _zoo_runs(root):
        start = time.perf_counter()
        predict = Predictor(load_model(run.model_path)).warm()
        loaded = time.perf_counter() - start
        results.append(
            {
                "run": run.run_id,
                "load_s": loaded,
                "latency_ms_batch1": evaluate.latency_ms_per_image(predict, images[:1]),
                "images_per_s_batch256": evaluate.throughput_images_per_s(predict, images),
            }
        )
    return results


def saliency_speed(root=None, repeats: int = 3) -> dict:
    """Seconds to compute one photo's heatmap for every run's model (its top class), after
    a warm-up call (loading and tracing, also timed), as the Classify page's "Why?" does."""
    from cifar_core import saliency
    from cifar_core.inference import load_model

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


def add_arguments(p, add_set) -> None:
    """The benchmark command's options (``add_set`` adds the CLI's ``--set``)."""
    from argparse import SUPPRESS

    p.add_argument("--models", help="comma-separated names (default: the reference zoo, as run --all)")
    p.add_argument("--steps", type=int, default=8, help="timed training steps per precision")
    p.add_argument("--precisions", default="float32,mixed_bfloat16", help="comma-separated")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--input-size", type=int, help="transfer models: measure at this input size (px)")
    p.add_argument("--epochs", type=int, help="also print the wall time of an N-epoch run at this speed")
    p.add_argument("--profile", action="store_true", help="forward + backward time per layer")
    help = "only time the heatmaps of one photo for every run's model (the Classify page's Why?)"
    p.add_argument("--saliency", action="store_true", help=help)
    help = "only time every committed run's inference as the Classify page calls it (load, batch 1, 256)"
    p.add_argument("--inference", action="store_true", help=help)
    add_set(p, "config overrides for every model measured (as train --set), repeatable")
    p.add_argument("--single", help=SUPPRESS)  # internal: one model in this process


def main(args) -> int:
    from cifar_core.models import get_spec, list_models

    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    settings = list(args.settings or [])
    if args.saliency:
        r = saliency_speed(args.artifacts_dir)
        print(
            f"heatmaps of one photo for all {r['models']} models: {r['warm_s']:.2f} s after warm-up "
            f"(first call, with loading and tracing: {r['first_s']:.1f} s)"
        )
        return 0
    if args.inference:
        rows = inference_speed(args.artifacts_dir)
        if args.json:
            print(json.dumps(rows))
            return 0
        print(f"{'run':<36}{'load+trace s':>13}{'batch-1 ms':>11}{'img/s @256':>11}")
        for r in rows:
            speed = f"{r['latency_ms_batch1']:>11.2f}{r['images_per_s_batch256']:>11.0f}"
            print(f"{r['run']:<36}{r['load_s']:>13.2f}{speed}")
        total_ms = sum(r["latency_ms_batch1"] for r in rows)
        print(
            f"{len(rows)} models: batch-1 latencies sum to {total_ms:.1f} ms per photo; "
            f"loading them all took {sum(r['load_s'] for r in rows):.1f} s"
        )
        return 0
    if args.single:
        print(
            json.dumps(measure(args.single, args.steps, precisions, args.input_size, settings, args.profile))
        )
        return 0
    names = [n.strip() for n in args.models.split(",")] if args.models else list_models(zoo_only=True)
    for name in names:
        get_spec(name)
        preset(name, settings)  # a bad --set fails here, before any measuring
    results = []
    for name in names:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        cmd = [
            sys.executable,
            "-m",
            "cifar_core",
            "benchmark",
            "--single",
            name,
            "--steps",
            str(args.steps),
            "--precisions",
            ",".join(precisions),
            *(["--input-size", str(args.input_size)] if args.input_size else []),
            *(["--profile"] if args.profile else []),
            *[f"--set={setting}" for setting in settings],
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        try:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            results.append({"model": name, "error": tail[:200]})
    if args.json:
        print(json.dumps({"models": results, "fast_time_to_accuracy": time_to_accuracy(args.artifacts_dir)}))
        return 0
    print(_table(results, precisions))
    if settings:
        print("settings: " + " ".join(settings))
    for r in results:
        if "error" in r:
            continue
        if args.epochs:
            print(projection(r, args.epochs, precisions))
        for p in precisions if args.profile else []:
            from cifar_core import stepprofile

            t = r["train"][p]
            print(f"\n{r['model']}, {p}, batch {t['batch_size']}: forward + backward per layer")
            print(stepprofile.table(t["layers"], step_ms=1000 * t["batch_size"] / t["images_per_s"]))
    for row in time_to_accuracy(args.artifacts_dir):
        fmt = lambda s: "not reached" if s is None else f"{s / 60:.1f} min"  # noqa: E731
        reached = ", ".join(f"{t:.0%} val after {fmt(row[f's_to_{round(t * 100)}'])}" for t in TARGETS)
        print(f"fast run {row['run']}: {reached}")
    return 0
