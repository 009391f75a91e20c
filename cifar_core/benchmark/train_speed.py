"""Training and inference speed of one model, measured in this process (the benchmark
command runs each model in its own subprocess, so its peak memory is its own)."""

from __future__ import annotations

import resource
import time

import numpy as np

from cifar_core.phases import plan


def peak_memory_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over from the parent across fork+exec, which would charge every model the parent's peak."""
    try:
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def preset(name: str, settings: list[str] = (), **overrides):
    """The model's recipe with ``--set`` settings and ``overrides`` on top, as timed: on whole
    32x32 images (a recipe's small-crop epochs are not timed here; a run's history.csv has
    every epoch's seconds)."""
    import dataclasses

    from cifar_core.config import TrainConfig

    config = TrainConfig.from_preset(name, list(settings), **overrides)
    if config.augment.small_crop:
        whole = dataclasses.replace(config.augment, small_crop=0, small_crop_epochs=0)
        config = dataclasses.replace(config, augment=whole)
    return config


SMALL_CROP_NOTE = (
    "small-crop epochs (augment.small_crop) are not timed: the steps above are whole 32x32 "
    "images; a run's history.csv has every epoch's seconds"
)


def _prepared(name: str, precision: str, phase: int = 1, input_size=None, settings=()):
    """(model compiled for ``phase``, endless batch iterator, the phase's config, dataset):
    the preset with ``settings``, on random images (speed does not depend on the values)."""
    import tensorflow as tf

    from cifar_core.data.pipeline import make_dataset
    from cifar_core.training import finetune
    from cifar_core.training.fitting import build_model, compile_for

    full = preset(name, settings, precision=precision, input_size=input_size)
    if full.weights is not None:  # nothing to download
        full.weights = "none"
    planned = plan(full)[phase - 1]
    config = planned.config
    rng = np.random.default_rng(0)
    n = config.batch_size * 4
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    strategy = tf.distribute.get_strategy()
    model = build_model(config, strategy, x)
    finetune.apply_phase(model, planned.unfrozen)
    compile_for(model, planned, strategy, 100)
    ds = make_dataset(x, y, config.batch_size, 10, augment=config.augment, shuffle=True, repeat=True)
    return model, iter(ds), config, ds


def train_speed(
    name: str, precision: str, steps: int, phase: int = 1, input_size=None, settings=(), profile=False
) -> dict:
    """Training images/s on pixels (phase 2: with the top of the backbone unfrozen); with
    ``profile``, also the forward + backward time of every layer and the step's parts
    (stepprofile.py)."""
    import keras

    from cifar_core.models import count_trainable
    from cifar_core.training.precision import dtype_policy

    keras.backend.clear_session()
    with dtype_policy(precision):
        model, batches, config, ds = _prepared(name, precision, phase, input_size, settings)
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
            "trainable_params": count_trainable(model),
            "data_wait_share": wait / total,
            "batch_size": config.batch_size,
        }
        if profile:
            import cifar_core.benchmark.stepprofile as stepprofile

            out["layers"] = stepprofile.layer_times(model, config.batch_size)
            out["parts"] = stepprofile.step_parts(model, ds, steps)
        return out


def xla_pairs(name: str, pairs: int, precision: str = "float32", settings=()) -> dict:
    """Seconds per training step of ``name`` with XLA off and on, two models in this process
    taking steps in turn, so that both see the same machine (its drift, its other load)."""
    from cifar_core.training.precision import dtype_policy

    runs = {}
    with dtype_policy(precision):
        for xla in ("off", "on"):
            model, batches, config, _ = _prepared(name, precision, settings=[*settings, f"xla={xla}"])
            model.train_on_batch(*next(batches))  # trace (and compile)
            runs[xla] = (model, batches)
        times = {"off": [], "on": []}
        for _ in range(pairs):
            for xla, (model, batches) in runs.items():
                xb, yb = next(batches)
                start = time.perf_counter()
                model.train_on_batch(xb, yb)
                times[xla].append(time.perf_counter() - start)
    ratios = sorted(on / off for off, on in zip(times["off"], times["on"]))
    return {"model": name, "batch_size": config.batch_size, **times, "median_ratio": float(np.median(ratios))}


def measure(
    name: str, steps: int, precisions: list[str], input_size=None, settings=(), profile=False
) -> dict:
    """All figures for one model, in this process."""
    import keras

    from cifar_core import evaluate
    from cifar_core.models import create_model, get_spec
    from cifar_core.serving.inference import Predictor

    transfer = get_spec(name).is_transfer
    config = preset(
        name, settings, weights="none" if transfer else None, input_size=input_size if transfer else None
    )
    result = {"model": name, "train": {}, "input_size": config.input_size, "settings": list(settings)}
    for precision in precisions:
        result["train"][precision] = train_speed(
            name, precision, steps, 1, config.input_size, settings, profile
        )
    if len(plan(config)) > 1:  # a fine-tuning phase: its own row
        result["train_phase2"] = {p: train_speed(name, p, steps, 2, config.input_size) for p in precisions}
    keras.backend.clear_session()
    model = create_model(name, **config.model_kwargs())
    result["params"] = int(model.count_params())
    images = np.random.default_rng(1).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    predict = Predictor(model)  # the call every prediction in the workbench makes
    result["latency_ms_batch1"] = evaluate.latency_ms_per_image(predict, images[:1])
    result["images_per_s_batch256"] = evaluate.throughput_images_per_s(predict, images)
    result["peak_memory_mb"] = peak_memory_mb()
    return result
