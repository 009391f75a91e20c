"""A fitted model recorded as a run: the one step after every training.

    path = finish_run(root, run_id, FinishedFit(model, data, splits, work, phases, manifest, ...))

``finish_run`` scores the model (the one look at the test split), stores it, writes the run
folder in one step (``artifacts.write_run``), makes its map and exports it to ONNX. Every way
a run is made ends there: ``trainer.train_model`` (train, run, ladders, a study's retrained
best) through ``record_run``, and a recorded ``fit`` (``tracking``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from cifar_core import artifacts, evaluate, runtime
from cifar_core.analysis.runmap import map_run
from cifar_core.config import TrainConfig
from cifar_core.data import Cifar10Data, Splits
from cifar_core.models import count_trainable, create_model, get_spec, is_builder_ref
from cifar_core.phases import PhaseRecord
from cifar_core.serving.inference import Predictor, predict_probs
from cifar_core.training.fitting import FitResult
from cifar_core.training.precision import dtype_policy

# Test images stored with a run as 32x32 thumbnails (for machines without the data):
# every cat<->dog confusion, then other mistakes up to MAX_THUMBNAILS, plus a random sample.
MAX_THUMBNAILS = 300
THUMBNAIL_SAMPLE = 50
# A lean run (a ladder's rung: a ladder is 4-11 runs) keeps fewer, mistakes only, and no map.
LEAN_THUMBNAILS = 100


def export_float32(config: TrainConfig, trained: keras.Model) -> keras.Model:
    """A float32, uncompiled copy of the trained model: what the run stores and serves."""
    with dtype_policy("float32"):
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
    model: keras.Model, splits: Splits, data: Cifar10Data, tta: str, train_sample: int
) -> tuple[dict, np.ndarray, tuple]:
    """All metrics of a trained model; returns (metrics, test probabilities, the storage
    check for ``store_model``: the validation split, or the train sample without one).
    Train accuracy is measured on the first ``train_sample`` train images, unaugmented."""
    names = data.class_names
    n_train = min(len(splits.x_train), train_sample)
    predict = Predictor(model)  # one compiled call for every score below and the latency
    train_probs = predict_probs(predict, splits.x_train[:n_train], tta)
    val_probs = predict_probs(predict, splits.x_val, tta) if len(splits.y_val) else None
    test_probs = predict_probs(predict, data.x_test, tta)  # the one look at the test split
    plain_test = predict_probs(predict, data.x_test, "none") if tta != "none" else test_probs
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
        "train_time_s": None,
        "train_images_per_s": None,
        "inference": {
            "latency_ms_batch1": evaluate.latency_ms_per_image(predict, data.x_test[:1]),
            "images_per_s_batch256": evaluate.throughput_images_per_s(predict, data.x_test[:256]),
        },
        "tta": tta,
    }
    if val_probs is not None:
        check = ("val", splits.x_val, splits.y_val, val_probs)
    else:  # no validation split: the storage check reuses the train sample's predictions
        check = ("train", splits.x_train[:n_train], splits.y_train[:n_train], train_probs)
    return metrics, test_probs, check


def store_model(model: keras.Model, folder: Path, check: tuple, tta: str) -> tuple[Path, dict]:
    """Save ``model`` as ``folder/model.keras`` with float16 weights and check what that cost.

    The compact file is loaded back (safe mode, as the dashboard does) and scored on
    ``check`` = (split name, images, labels, the float32 model's probabilities): the
    validation split, or a train sample for a run without one. The figures go into
    metrics.json as ``stored_model``, so anyone can see how far the served model is from the
    float32 one that made the test predictions.
    """
    from cifar_core.artifacts import work as files
    from cifar_core.serving.inference import load_model

    split, x, y, probs = check
    full = files.stored_model_scratch(folder)
    model.save(full)
    sizes = artifacts.compact_keras_file(full, folder / artifacts.MODEL)
    full.unlink()
    stored = predict_probs(load_model(folder / artifacts.MODEL), x, tta)
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


def _history(work: Path, splits: Splits):
    """The run's history.csv: every epoch; without a validation split Keras logs an empty
    val_ twin of every column, and the run keeps the two val_ columns a run has."""
    from cifar_core.artifacts import work as files

    history = files.read_history(work)
    if not len(splits.y_val):
        history = history.drop(columns=[c for c in history if c.startswith("val_")])
        history = history.assign(val_loss=np.nan, val_accuracy=np.nan)
    return history


def _fit_metrics(metrics: dict, phases: list[PhaseRecord], history, n_train: int) -> None:
    """What the fit itself measured: time, epochs, speed, time per phase, best epoch."""
    fit_time = float(sum(p.total_s for p in phases))
    metrics["train_time_s"] = fit_time
    metrics["epochs_run"] = int(len(history))
    metrics["train_images_per_s"] = n_train * len(history) / fit_time if fit_time else None
    metrics["phase_time_s"] = {str(p.phase): p.total_s for p in phases}
    # The exported model carries phase 1's trainable flags; report what training updated.
    metrics["trainable_params"] = max([metrics["trainable_params"], *(p.trainable_params for p in phases)])
    if len(history) and history["val_accuracy"].notna().any():
        metrics["best_epoch"] = int(history.loc[history["val_accuracy"].idxmax(), "epoch"]) + 1


@dataclass
class FinishedFit:
    """What a finished fit hands to ``finish_run``: the model, the data it was fitted on, its
    work folder (history.csv) and phases, and the manifest so far (how it was made)."""

    model: keras.Model
    data: Cifar10Data
    splits: Splits
    work: Path
    phases: list[PhaseRecord]
    manifest: dict
    tta: str = "none"
    train_sample: int = 5000  # train images scored for the train accuracy, unaugmented
    seed: int = 0
    lean: bool = False  # no model file, mistakes-only thumbnails, no map
    sources: dict[str, bytes] | None = None  # the user's code the model came from, kept with it


def record_run(
    root: Path,
    run_id: str,
    config: TrainConfig,
    data: Cifar10Data,
    splits: Splits,
    result: FitResult,
    how_trained: dict,
    lean: bool = False,
    sources: dict[str, bytes] | None = None,
    export: bool = True,
) -> Path:
    """Record a fit of the engine (``fitting.resumable_fit``'s result) as run ``run_id``;
    ``how_trained`` (precision, hardware, where the run comes from...) joins the manifest."""
    spec = get_spec(config.model)
    manifest = {
        "model": config.model,
        "description": spec.description,
        "family": spec.family,
        "input_size": spec.input_size,
        "config": config.to_dict(),
        "weights": config.weights,  # transfer models: imagenet, a file, or none (random)
        **how_trained,
    }
    fitted = FinishedFit(
        export_float32(config, result.model),
        data,
        splits,
        result.work,
        result.phases,
        manifest,
        tta=config.tta,
        train_sample=2000 if spec.is_transfer else 5000,  # smaller for the slow transfer models
        seed=config.seed,
        lean=lean,
        sources=sources,
    )
    # A builder file has just run in this process: its layers load for the export.
    return finish_run(root, run_id, fitted, export=export, trust_code=is_builder_ref(config.model))


def finish_run(
    root: Path, run_id: str, fitted: FinishedFit, export: bool = True, trust_code: bool = False
) -> Path:
    """Score ``fitted.model`` (the one look at the test split), store it beside its history,
    write the run folder with the manifest completed (data, phases, command), then its map
    and (unless ``export`` is False or the run is lean) its ONNX export. What fails after the
    folder is written leaves the run complete and says how to make the rest."""
    data, splits = fitted.data, fitted.splits
    metrics, test_probs, check = score(fitted.model, splits, data, fitted.tta, fitted.train_sample)
    if fitted.lean:  # no model file: nothing to store or check
        model_file, metrics["stored_model"] = None, {"stored": False}
    else:
        model_file, metrics["stored_model"] = store_model(fitted.model, fitted.work, check, fitted.tta)
    history = _history(fitted.work, splits)
    _fit_metrics(metrics, fitted.phases, history, len(splits.x_train))
    phases = fitted.phases
    manifest = {
        **fitted.manifest,
        "class_names": list(data.class_names),
        "data": artifacts.data_record(data, root, len(splits.x_train), len(splits.x_val)),
        "seed": fitted.seed,
        "phases": [p.to_dict() for p in phases],
        "phase_boundary_epoch": phases[1].start_epoch if len(phases) > 1 else None,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": fitted.manifest.get("command", runtime.command_line()),
    }
    y_pred = test_probs.argmax(1)
    contents = artifacts.RunContents(
        manifest=manifest,
        history=history,
        metrics=metrics,
        per_class=evaluate.per_class_report(data.y_test, y_pred, data.class_names),
        confusion=evaluate.confusion(data.y_test, y_pred, len(data.class_names)),
        predictions={"probs": test_probs, "y_pred": y_pred, "y_true": data.y_test, "test_ids": data.test_ids},
        thumbnails=thumbnail_choice(data, y_pred, fitted.seed, fitted.lean),
        save_model=(lambda p: shutil.copyfile(model_file, p)) if model_file else None,
        sources=fitted.sources,
    )
    path = artifacts.write_run(root, run_id, contents)
    _summary(run_id, metrics)
    _make_map(root, run_id, fitted)
    _record_architecture(root, run_id, fitted.model)
    if export and not fitted.lean:
        export_new_run(root, run_id, trust_code)
    return path


def _make_map(root: Path, run_id: str, fitted: FinishedFit) -> None:
    try:  # the run is complete: a failure here leaves it without its map, never half-written
        map_run(
            root, run_id, fitted.model, fitted.data, fitted.splits, seed=fitted.seed, facts_only=fitted.lean
        )
    except Exception as error:  # noqa: BLE001
        print(
            f"warning: {run_id} has no map of the test set ({error}); make it with "
            f"`python -m cifar_core embed {run_id} --data-dir DIR`",
            file=sys.stderr,
        )


def _record_architecture(root: Path, run_id: str, model) -> None:
    from cifar_core.analysis import runcard

    try:  # the run is complete: without the file, the pages compute the table themselves
        runcard.record_architecture(root, run_id, model)
    except Exception as error:  # noqa: BLE001
        print(
            f"warning: {run_id} has no stored layer table ({error}): `python -m cifar_core migrate`",
            file=sys.stderr,
        )


def export_new_run(root: Path, run_id: str, trust_code: bool = False) -> None:
    """The ONNX export of a run just written. A failure leaves the run as it is and names
    the command that retries."""
    from cifar_core.errors import CifarError
    from cifar_core.serving import exports

    try:
        report = exports.export_run(root, run_id, trust_code=trust_code)
    except (CifarError, OSError, ImportError) as error:
        default = Path(root).resolve() == artifacts.artifacts_root(None).resolve()
        print(
            f"the run is complete, but {exports.describe_failure(error)}\n"
            f"  retry with: python -m cifar_core export {run_id}"
            + ("" if default else f" --artifacts-dir {root}"),
            flush=True,
        )
        return
    print(f"exported: {report['file']}: {exports.summary(report)}", flush=True)


def _summary(run_id: str, metrics: dict) -> None:
    test = metrics["test"]
    print(
        f"[{run_id}] test accuracy {test['accuracy']:.2%}, macro F1 {test['macro_f1']:.3f}, "
        f"{metrics['epochs_run']} epochs in {metrics['train_time_s'] / 60:.1f} min, "
        f"{metrics['params']:,} params"
    )
