"""A fitted model recorded as a run: scored (the one look at the test split) and written.

    path = record_run(root, run_id, config, data, splits, result, facts, lean=False)

``train.train_model`` calls it while it holds the fit's work folder; the run folder is
written in one step by ``artifacts.write_run``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

import keras
import numpy as np

from cifar_core import artifacts, evaluate, runtime
from cifar_core.config import TrainConfig
from cifar_core.data import Cifar10Data, Splits
from cifar_core.fitting import FitResult
from cifar_core.inference import Predictor, predict_probs
from cifar_core.models import builderfile, count_trainable, create_model, get_spec

# Test images stored with a run as 32x32 thumbnails (for machines without the data):
# every cat<->dog confusion, then other mistakes up to MAX_THUMBNAILS, plus a random sample.
MAX_THUMBNAILS = 300
THUMBNAIL_SAMPLE = 50
# A lean run (a ladder's rung: a ladder is 4-11 runs) keeps fewer, mistakes only, and no map.
LEAN_THUMBNAILS = 100


def export_float32(config: TrainConfig, trained: keras.Model) -> keras.Model:
    """A float32, uncompiled copy of the trained model: what the run stores and serves."""
    with runtime.dtype_policy("float32"):
        model = create_model(config.model, **config.model_kwargs(load_weights=False))
    model.set_weights([np.asarray(w, dtype=np.float32) for w in trained.get_weights()])
    return model


def thumbnail_choice(data: Cifar10Data, y_pred: np.ndarray, seed: int, lean: bool = False) -> dict:
    """The test images a run keeps as thumbnails: its first mistakes (cat<->dog first) and,
    unless ``lean``, a seeded random sample."""
    wrong = evaluate.mistakes_first(data.y_test, y_pred, data.class_names)
    rng = np.random.default_rng(seed)
    size = 0 if lean else min(THUMBNAIL_SAMPLE, len(data.y_test))
    most = LEAN_THUMBNAILS if lean else MAX_THUMBNAILS
    index = np.union1d(wrong[:most], rng.choice(len(data.y_test), size=size, replace=False))
    index = index.astype(np.int32)
    return {"index": index, "images": data.x_test[index]}


def score(
    config: TrainConfig, model: keras.Model, splits: Splits, data: Cifar10Data, fit_time: float
) -> tuple[dict, np.ndarray, tuple]:
    """All metrics of a trained model; returns (metrics, test probabilities, the storage
    check for ``store_model``: the validation split, or the train sample without one)."""
    names = data.class_names
    # Train accuracy on a fixed, unaugmented subset (smaller for the slow transfer models).
    n_train = min(len(splits.x_train), 2000 if get_spec(config.model).is_transfer else 5000)
    predict = Predictor(model)  # one compiled call for every score below and the latency
    train_probs = predict_probs(predict, splits.x_train[:n_train], config.tta)
    val_probs = predict_probs(predict, splits.x_val, config.tta) if len(splits.y_val) else None
    test_probs = predict_probs(predict, data.x_test, config.tta)  # the one look at the test split
    plain_test = predict_probs(predict, data.x_test, "none") if config.tta != "none" else test_probs
    test = evaluate.classification_metrics(data.y_test, test_probs, names)
    train_accuracy = evaluate.accuracy(splits.y_train[:n_train], train_probs)
    metrics = {
        "test": test,
        "test_without_tta": {"accuracy": evaluate.accuracy(data.y_test, plain_test)},
        "val": (  # val_size 0: a final fit on all of train, no validation figures
            evaluate.classification_metrics(splits.y_val, val_probs, names)
            if val_probs is not None
            else {"accuracy": None}
        ),
        "train": {"accuracy": train_accuracy},
        "overfitting_gap": train_accuracy - test["accuracy"],
        "params": int(model.count_params()),
        "trainable_params": count_trainable(model),
        "train_time_s": fit_time,
        "train_images_per_s": None,
        "inference": {
            "latency_ms_batch1": evaluate.latency_ms_per_image(predict, data.x_test[:1]),
            "images_per_s_batch256": evaluate.throughput_images_per_s(predict, data.x_test[:256]),
        },
        "tta": config.tta,
    }
    if val_probs is not None:
        check = ("val", splits.x_val, splits.y_val, val_probs)
    else:  # no validation split: the storage check reuses the train sample's predictions
        check = ("train", splits.x_train[:n_train], splits.y_train[:n_train], train_probs)
    return metrics, test_probs, check


def store_model(config: TrainConfig, model: keras.Model, folder: Path, check: tuple) -> tuple[Path, dict]:
    """Save ``model`` as ``folder/model.keras`` with float16 weights and check what that cost.

    The compact file is loaded back (safe mode, as the dashboard does) and scored on
    ``check`` = (split name, images, labels, the float32 model's probabilities): the
    validation split, or a train sample for a run without one. The figures go into
    metrics.json as ``stored_model``, so anyone can see how far the served model is from the
    float32 one that made the test predictions.
    """
    from cifar_core.artifacts import work as files
    from cifar_core.inference import load_model

    split, x, y, probs = check
    full = files.stored_model_scratch(folder)
    model.save(full)
    sizes = artifacts.compact_keras_file(full, folder / artifacts.MODEL)
    full.unlink()
    stored = predict_probs(load_model(folder / artifacts.MODEL), x, config.tta)
    info = {
        "weights_dtype": "float16",
        **sizes,
        "checked_on": split,
        f"{split}_accuracy": evaluate.accuracy(y, stored),
        f"{split}_accuracy_float32": evaluate.accuracy(y, probs),
        f"{split}_agreement": float(np.mean(stored.argmax(1) == probs.argmax(1))),
        f"{split}_max_prob_diff": float(np.abs(stored - probs).max()),
    }
    return folder / artifacts.MODEL, info


def _history(result: FitResult, splits: Splits):
    """The run's history.csv: every epoch; without a validation split Keras logs an empty
    val_ twin of every column, and the run keeps the two val_ columns a run has."""
    from cifar_core.artifacts import work as files

    history = files.read_history(result.work)
    if not len(splits.y_val):
        history = history.drop(columns=[c for c in history if c.startswith("val_")])
        history = history.assign(val_loss=np.nan, val_accuracy=np.nan)
    return history


def _fit_metrics(metrics: dict, result: FitResult, history, n_train: int) -> None:
    """What the fit itself measured: epochs, speed, time per phase, best epoch."""
    fit_time = result.fit_time_s
    metrics["epochs_run"] = int(len(history))
    metrics["train_images_per_s"] = n_train * len(history) / fit_time if fit_time else None
    metrics["phase_time_s"] = {str(p.phase): p.total_s for p in result.phases}
    # The exported model carries phase 1's trainable flags; report what training updated.
    metrics["trainable_params"] = max(
        [metrics["trainable_params"], *(p.trainable_params for p in result.phases)]
    )
    if len(history) and history["val_accuracy"].notna().any():
        metrics["best_epoch"] = int(history.loc[history["val_accuracy"].idxmax(), "epoch"]) + 1


def record_run(
    root: Path,
    run_id: str,
    config: TrainConfig,
    data: Cifar10Data,
    splits: Splits,
    result: FitResult,
    facts: dict,
    lean: bool = False,
) -> Path:
    """Score the fitted model (the one look at the test split) and write the run folder;
    ``lean`` keeps mistakes-only thumbnails and no map of the test set."""
    from cifar_core.runmap import map_run

    exported = export_float32(config, result.model)
    metrics, test_probs, check = score(config, exported, splits, data, result.fit_time_s)
    model_file, metrics["stored_model"] = store_model(config, exported, result.work, check)
    history = _history(result, splits)
    _fit_metrics(metrics, result, history, len(splits.x_train))
    spec = get_spec(config.model)
    manifest = {
        "model": config.model,
        "description": spec.description,
        "family": spec.family,
        "input_size": spec.input_size,
        "config": config.to_dict(),
        "class_names": list(data.class_names),
        "data": artifacts.data_record(data, root, len(splits.x_train), len(splits.x_val)),
        "seed": config.seed,
        "weights": config.weights,  # transfer models: imagenet, a file, or none (random)
        "phases": [p.to_dict() for p in result.phases],
        "phase_boundary_epoch": result.phases[1].start_epoch if len(result.phases) > 1 else None,
        **facts,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": runtime.command_line(),
    }
    y_pred = test_probs.argmax(1)
    sources = {}
    if (facts.get("source") or {}).get("kind") == "builder_file":  # a copy of the user's file
        sources[facts["source"]["file"]] = builderfile.read(config.model).source
    path = artifacts.write_run(
        root,
        run_id,
        manifest=manifest,
        history=history,
        metrics=metrics,
        per_class=evaluate.per_class_report(data.y_test, y_pred, data.class_names),
        confusion=evaluate.confusion(data.y_test, y_pred, len(data.class_names)),
        predictions={"probs": test_probs, "y_pred": y_pred, "y_true": data.y_test, "test_ids": data.test_ids},
        thumbnails=thumbnail_choice(data, y_pred, config.seed, lean),
        save_model=lambda p: shutil.copyfile(model_file, p),
        sources=sources,
    )
    _summary(run_id, metrics)
    try:  # the run is complete: a failure here leaves it without its map, never half-written
        map_run(root, run_id, exported, data, splits, seed=config.seed, facts_only=lean)
    except Exception as error:  # noqa: BLE001
        print(
            f"warning: {run_id} has no map of the test set ({error}); make it with "
            f"`python -m cifar_core embed {run_id} --data-dir DIR`",
            file=sys.stderr,
        )
    return path


def _summary(run_id: str, metrics: dict) -> None:
    test = metrics["test"]
    print(
        f"[{run_id}] test accuracy {test['accuracy']:.2%}, macro F1 {test['macro_f1']:.3f}, "
        f"{metrics['epochs_run']} epochs in {metrics['train_time_s'] / 60:.1f} min, "
        f"{metrics['params']:,} params"
    )
