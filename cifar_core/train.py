"""Train one model from a TrainConfig and record everything as a run folder.

    from cifar_core.config import TrainConfig
    from cifar_core.data import load_cifar10
    from cifar_core.train import train_model
    run_path = train_model(TrainConfig.from_preset("cnn_bn"), load_cifar10("data/"))

A killed run started again with the same config resumes from its last finished epoch
(BackupAndRestore under ``artifacts/work/<run_id>/``); the test split is touched once,
after training, and the run folder appears only when complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shlex
import shutil
import sys
from pathlib import Path

import keras
import numpy as np

from cifar_core import artifacts, evaluate, runtime
from cifar_core.analyse import analyse
from cifar_core.artifacts import work as files
from cifar_core.config import TrainConfig, same_config
from cifar_core.data import Cifar10Data, run_splits
from cifar_core.errors import ArtifactError, WeightsError
from cifar_core.fileio import write_json
from cifar_core.fitting import FitResult, Splits, fit, read_history
from cifar_core.inference import Predictor, predict_probs
from cifar_core.models import create_model, get_spec
from cifar_core.report import as_module_command

# Test images stored with a run as 32x32 thumbnails (for machines without the data):
# every cat<->dog confusion, then other mistakes up to MAX_THUMBNAILS, plus a random sample.
MAX_THUMBNAILS = 300
THUMBNAIL_SAMPLE = 50
# A ladder's rungs (cifar_core.ladders) keep mistakes only, fewer: a ladder is 4-11 runs.
LADDER_THUMBNAILS = 100


def default_run_id(config: TrainConfig, data: Cifar10Data) -> str:
    """``<model>-<hash of config and data>``: the same command always names the same run."""
    blob = json.dumps({"config": config.non_default(), "data": data.checksum}, sort_keys=True)
    return f"{config.model}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def find_finished_run(root: Path, config: TrainConfig, data: Cifar10Data) -> str | None:
    """A complete run in ``root`` made with ``config`` on the same data, whatever its id.

    Run ids hash the config, and a config written by an older version of the code lacks
    the fields added since; comparing configs keeps those runs when ``run --all`` resumes.
    """
    root = artifacts.artifacts_root(root)
    exact = default_run_id(config, data)
    if artifacts.run_exists(root, exact):
        return exact
    for run_id in artifacts.list_runs(root):
        if not run_id.startswith(f"{config.model}-"):
            continue
        try:
            manifest = artifacts.read_manifest(root, run_id)
        except ArtifactError:
            continue
        if (
            manifest["model"] == config.model
            and manifest["data"]["checksum"] == data.checksum
            and same_config(manifest["config"], config)
        ):
            return run_id
    return None


def export_float32(config: TrainConfig, trained: keras.Model) -> keras.Model:
    """A float32, uncompiled copy of the trained model: what the run stores and serves."""
    with runtime.dtype_policy("float32"):
        model = create_model(config.model, **config.model_kwargs(load_weights=False))
    model.set_weights([np.asarray(w, dtype=np.float32) for w in trained.get_weights()])
    return model


def _thumbnails(
    data: Cifar10Data, y_pred: np.ndarray, seed: int, sample: bool = True
) -> dict[str, np.ndarray]:
    wrong = evaluate.mistakes_first(data.y_test, y_pred, data.class_names)
    rng = np.random.default_rng(seed)
    size = min(THUMBNAIL_SAMPLE, len(data.y_test)) if sample else 0
    most = MAX_THUMBNAILS if sample else LADDER_THUMBNAILS
    index = np.union1d(wrong[:most], rng.choice(len(data.y_test), size=size, replace=False))
    index = index.astype(np.int32)
    return {"index": index, "images": data.x_test[index]}


def score(
    config: TrainConfig, model: keras.Model, splits: Splits, data: Cifar10Data, fit_time: float
) -> tuple[dict, np.ndarray, np.ndarray]:
    """All metrics of a trained model; returns (metrics, test probabilities, the storage
    check for ``store_model``: the validation split, or the train sample without one)."""
    names = data.class_names
    # Train accuracy on a fixed, unaugmented subset (smaller for the slow transfer models).
    n_train = min(len(splits.x_train), 5000 if get_spec(config.model).family == "scratch" else 2000)
    predict = Predictor(model)  # one compiled call for every score below and the latency
    train_probs = predict_probs(predict, splits.x_train[:n_train], config.tta)
    val_probs = predict_probs(predict, splits.x_val, config.tta) if len(splits.y_val) else None
    test_probs = predict_probs(predict, data.x_test, config.tta)  # the one look at the test split
    plain_test = predict_probs(predict, data.x_test, "none") if config.tta != "none" else test_probs
    test = evaluate.classification_metrics(data.y_test, test_probs, names)
    metrics = {
        "test": test,
        "test_without_tta": {"accuracy": evaluate.accuracy(data.y_test, plain_test)},
        "val": (  # val_size 0: a final fit on all of train, no validation figures
            evaluate.classification_metrics(splits.y_val, val_probs, names)
            if val_probs is not None
            else {"accuracy": None}
        ),
        "train": {"accuracy": evaluate.accuracy(splits.y_train[:n_train], train_probs)},
        "overfitting_gap": evaluate.accuracy(splits.y_train[:n_train], train_probs) - test["accuracy"],
        "params": int(model.count_params()),
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
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


def store_model(
    config: TrainConfig,
    model: keras.Model,
    folder: Path,
    check: tuple[str, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[Path, dict]:
    """Save ``model`` as ``folder/model.keras`` with float16 weights and check what that cost.

    The compact file is loaded back (safe mode, as the dashboard does) and scored on
    ``check`` = (split name, images, labels, the float32 model's probabilities): the
    validation split, or a train sample for a run without one. The figures go into
    metrics.json as ``stored_model``, so anyone can see how far the served model is from the
    float32 one that made the test predictions.
    """
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


def train_model(
    config: TrainConfig,
    data: Cifar10Data,
    root: Path | None = None,
    run_id: str | None = None,
    strategy_name: str = "default",
    verbose: int | None = None,
    ladder: dict | None = None,
    study: dict | None = None,
) -> Path:
    """Train ``config`` on ``data``, write ``root/runs/<run_id>/`` and return its path.

    ``ladder`` ({ladder, index, rung, change}) marks a rung of a ladder (cifar_core.ladders):
    its manifest names it, and it is stored lean (mistakes-only thumbnails, no map).
    ``study`` ({study, trial, val_accuracy, settings}) marks the retrained best trial of a
    hyper-parameter study (cifar_core.tuning): its manifest names it.

    Raises:
        artifacts.RunExistsError: the run is already complete.
        artifacts.RunLockedError: another process is training the same run id.
    """
    root = artifacts.artifacts_root(root)
    run_id = artifacts.check_run_id(run_id or default_run_id(config, data))
    if artifacts.run_exists(root, run_id):
        raise artifacts.RunExistsError(
            f"run {run_id!r} is already complete in {root}: pass --run-id to train another"
        )
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    env = runtime.environment()  # at the start: the git commit of the code that trains
    policy = runtime.resolve_precision(config.precision, config.model)
    strategy = runtime.make_strategy(strategy_name)
    # Non-chief multi-workers keep their own checkpoints and write no run.
    chief = runtime.is_chief(strategy)
    lock_id = run_id if chief else f"{run_id}.worker{runtime.task_index(strategy)}"
    # Bad splits fail here, before anything is written.
    splits = Splits(*run_splits(data, config.val_size, config.seed, config.train_limit))
    with artifacts.training_lock(root, lock_id) as work:
        _check_same_config(work, config, data)
        keras.utils.set_random_seed(config.seed)
        resumed = files.history_file(work).exists()
        try:
            with runtime.dtype_policy(policy):
                result = fit(config, splits, strategy, work, len(data.class_names), verbose)
        except WeightsError:
            if not resumed:  # failed before training: leave nothing behind
                shutil.rmtree(work, ignore_errors=True)
            raise
        facts = {
            "strategy": strategy_name,
            "num_replicas": strategy.num_replicas_in_sync,
            "precision": policy,
            "started_at": started,
            "resumed": resumed,
            "environment": env,
            "hardware": runtime.hardware_label(env),
        }
        if ladder is not None:
            facts["ladder"] = ladder
        if study is not None:
            facts["study"] = study
        path = record_run(root, run_id, config, data, splits, result, work, facts) if chief else None
        files.clear(work)
    shutil.rmtree(artifacts.work_dir(root, lock_id), ignore_errors=True)
    return path or artifacts.run_dir(root, run_id)


def record_run(
    root: Path,
    run_id: str,
    config: TrainConfig,
    data: Cifar10Data,
    splits: Splits,
    result: FitResult,
    work: Path,
    facts: dict,
) -> Path:
    """Score the trained model (the one look at the test split) and write the run folder."""
    exported = export_float32(config, result.model)
    metrics, test_probs, check = score(config, exported, splits, data, result.fit_time_s)
    model_file, metrics["stored_model"] = store_model(config, exported, work, check)
    # Without a validation split Keras logs no val_ columns; the run's history keeps its shape.
    history = read_history(files.history_file(work))
    if not len(splits.y_val):  # Keras logs an empty val_ twin of every column: keep the two a run has
        history = history.drop(columns=[c for c in history if c.startswith("val_")])
        history = history.assign(val_loss=np.nan, val_accuracy=np.nan)
    metrics["epochs_run"] = int(len(history))
    fit_time = result.fit_time_s
    metrics["train_images_per_s"] = len(splits.x_train) * len(history) / fit_time if fit_time else None
    metrics["phase_time_s"] = {
        str(p["phase"]): (p.get("time_s") or 0) + p.get("cache_time_s", 0) for p in result.phases
    }
    # The exported model carries phase 1's trainable flags; report what training updated.
    metrics["trainable_params"] = max(
        [metrics["trainable_params"], *(p.get("trainable_params", 0) for p in result.phases)]
    )
    if len(history) and history["val_accuracy"].notna().any():
        metrics["best_epoch"] = int(history.loc[history["val_accuracy"].idxmax(), "epoch"]) + 1
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
        "phases": result.phases,
        "phase_boundary_epoch": result.phases[1]["start_epoch"] if len(result.phases) > 1 else None,
        **facts,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": _command_line(),
    }
    y_pred = test_probs.argmax(1)
    path = artifacts.write_run(
        root,
        run_id,
        manifest=manifest,
        history=history,
        metrics=metrics,
        per_class=evaluate.per_class_report(data.y_test, y_pred, data.class_names),
        confusion=evaluate.confusion(data.y_test, y_pred, len(data.class_names)),
        predictions={"probs": test_probs, "y_pred": y_pred, "y_true": data.y_test, "test_ids": data.test_ids},
        thumbnails=_thumbnails(data, y_pred, config.seed, sample="ladder" not in facts),
        save_model=lambda p: shutil.copyfile(model_file, p),
    )
    _summary(run_id, metrics)
    try:  # the run is complete: a failure here leaves it without its map, never half-written
        analyse(root, run_id, exported, data, splits, seed=config.seed, facts_only="ladder" in facts)
    except Exception as error:  # noqa: BLE001
        print(
            f"warning: {run_id} has no map of the test set ({error}); make it with "
            f"`python -m cifar_core embed {run_id} --data-dir DIR`",
            file=sys.stderr,
        )
    return path


def _check_same_config(work: Path, config: TrainConfig, data: Cifar10Data) -> None:
    """Refuse to resume a checkpoint that was made with another config or data."""
    saved = files.config_file(work)
    current = {"config": config.to_dict(), "data_checksum": data.checksum}
    if saved.exists():
        previous = json.loads(saved.read_text())
        if previous.get("data_checksum") != data.checksum or not same_config(
            previous.get("config", {}), config
        ):
            raise ArtifactError(
                f"{saved}: unfinished run with a different config or data; delete {work} to start over"
            )
    else:
        write_json(saved, current)


def _command_line() -> str | None:
    """How this process was started, as a user would type it (``python -m cifar_core ...``)."""
    if not sys.argv or not sys.argv[0]:
        return None
    return shlex.join(as_module_command(sys.argv))


def _summary(run_id: str, metrics: dict) -> None:
    test = metrics["test"]
    print(
        f"[{run_id}] test accuracy {test['accuracy']:.2%}, macro F1 {test['macro_f1']:.3f}, "
        f"{metrics['epochs_run']} epochs in {metrics['train_time_s'] / 60:.1f} min, "
        f"{metrics['params']:,} params"
    )
