"""Fitting one model through its phase plan, resumably: the one fit set-up every caller uses.

    splits = run_splits(data, config.val_size, config.seed, config.train_limit)
    with resumable_fit(work_folder, config, data, splits) as result:   # lock, check, seed, precision, fit
        result.model, result.phases, result.work                # record what you need, then leave

``train.train_model`` records a run from it, a tuning trial reads its history. The plan
(``phases.plan``) says what each phase trains; everything that lets a killed fit resume
lives in its work folder (names in ``artifacts/work.py``):

    backup_dir(work, phase)       BackupAndRestore checkpoints (last finished epoch)
    best_weights(work, phase)     best validation epoch of the phase
    phase_marker / phase_weights  a finished phase
    activation_cache(...)         cached frozen-front activations (transfer, see finetune.py)
    history_file(work)            every epoch, every phase
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cifar_core import runtime
from cifar_core.artifacts import work as files
from cifar_core.config import TrainConfig, same_config
from cifar_core.data import Cifar10Data, Splits
from cifar_core.data.pipeline import make_array_dataset, make_dataset
from cifar_core.errors import ArtifactError, ConfigError, StopRequested, WeightsError
from cifar_core.fileio import write_json
from cifar_core.models import count_trainable, create_model, get_spec
from cifar_core.phases import Phase, PhaseRecord, plan
from cifar_core.training import finetune, progress
from cifar_core.training.callbacks import phase_callbacks
from cifar_core.training.precision import dtype_policy, resolve
from cifar_core.training.schedules import make_optimizer, steps_per_epoch


@dataclass
class FitResult:
    model: keras.Model
    phases: list[PhaseRecord]
    work: Path  # the locked work folder: checkpoints and history.csv until the caller leaves
    precision: str  # the dtype policy it trained under
    xla: bool  # whether its training step was compiled with XLA
    resumed: bool  # started from an earlier process's checkpoints
    writer: progress.ProgressWriter  # the progress file (say "recording" while the run is written)


@contextlib.contextmanager
def resumable_fit(
    folder: Path,
    config: TrainConfig,
    data: Cifar10Data,
    splits: Splits,
    strategy=None,
    verbose: int = 0,
    callbacks: list | None = None,
    kind: str = "train",
    run: str | None = None,
) -> Iterator[FitResult]:
    """Fit ``config`` in the work folder ``folder`` (locked while the caller holds the
    result), resuming what an earlier process left there.

    Refuses a folder whose checkpoints belong to another config or data, seeds every
    generator with ``config.seed``, trains under the precision ``config.precision`` resolves
    to; ``callbacks`` are added to every phase's own. A fit that fails before its first
    epoch for want of weights leaves no folder behind. The progress file says ``kind``
    (train, rung, trial) and ``run`` (default: the folder's name); the error a fit dies of
    is kept in the folder (``error.txt``) for ``status``.

    Raises:
        RunLockedError: another process holds the folder.
        ArtifactError: the folder holds another config's checkpoints.
        StopRequested: a stop request made it stop after an epoch (resumable).
    """
    strategy = strategy or runtime.make_strategy("default")
    with files.lock_folder(folder) as work:
        for stale in (files.stop_request(work), files.error_file(work)):  # this attempt's own
            stale.unlink(missing_ok=True)
        writer = progress.ProgressWriter(work, run=run or work.name, kind=kind, model=config.model, epochs=0)
        try:
            check_same_config(work, config, data.checksum)
            keras.utils.set_random_seed(config.seed)
            resumed = files.history_file(work).exists()
            policy, why = resolve(config.precision, config)
            if verbose:
                if resumed:
                    print(f"resuming after epoch {len(files.read_history(work))} from {work}", flush=True)
                print(f"precision {config.precision}: {why}", flush=True)
            try:
                with dtype_policy(policy):
                    model, records = fit(
                        config, splits, strategy, work, len(data.class_names), verbose, callbacks, writer
                    )
            except WeightsError:
                if not resumed:  # failed before training: leave nothing behind
                    shutil.rmtree(work, ignore_errors=True)
                raise
            yield FitResult(model, records, work, policy, bool(model.jit_compile), resumed, writer)
        except Exception as error:
            if not isinstance(error, StopRequested):
                progress.record_failure(work, error)
            raise


def check_same_config(work: Path, config: TrainConfig, checksum: str) -> None:
    """Refuse to resume a checkpoint that was made with another config or data."""
    saved = files.config_file(work)
    if saved.exists():
        previous = json.loads(saved.read_text())
        if previous.get("data_checksum") != checksum or not same_config(previous.get("config", {}), config):
            raise ArtifactError(
                f"{saved}: unfinished run with a different config or data; delete {work} to start over"
            )
    else:
        write_json(saved, {"config": config.to_dict(), "data_checksum": checksum})


def build_model(config: TrainConfig, strategy, x_init: np.ndarray, load_weights: bool = True) -> keras.Model:
    """The model of ``config`` in the strategy's scope, data-initialised where it asks for it."""
    with strategy.scope():
        model = create_model(config.model, **config.model_kwargs(load_weights))
        spec = get_spec(config.model)
        if spec.data_init is not None:
            spec.data_init(model, x_init)
    return model


def compile_for(model: keras.Model, phase: Phase, strategy, steps: int) -> None:
    """Compile with a fresh optimizer whose schedule spans the phase's epochs at its peak LR."""
    with strategy.scope():
        model.compile(
            optimizer=make_optimizer(phase.config, steps),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=phase.config.label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            jit_compile={"auto": "auto", "on": True, "off": False}[phase.config.xla],
        )
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        runtime.patch_multiworker_build(model)


def _datasets(config: TrainConfig, splits: Splits, num_classes: int, cache: dict | None):
    """(train dataset, val dataset, steps per epoch): images, or cached activations."""
    steps = steps_per_epoch(len(splits.y_train), config.batch_size)
    if cache is None:
        train = make_dataset(
            splits.x_train,
            splits.y_train,
            config.batch_size,
            num_classes,
            augment=config.augment,
            shuffle=True,
            seed=config.seed,
            repeat=True,
        )
        val = make_dataset(splits.x_val, splits.y_val, 512, num_classes) if len(splits.y_val) else None
        return train, val, steps
    features, labels = cache["train"], splits.y_train
    if "train_flipped" in cache:  # a random flip = drawing from both orientations
        features = np.concatenate([features, cache["train_flipped"]])
        labels = np.concatenate([labels, labels])
    train = make_array_dataset(
        features, labels, config.batch_size, num_classes, shuffle=True, seed=config.seed, repeat=True
    )
    val = make_array_dataset(cache["val"], splits.y_val, 512, num_classes) if "val" in cache else None
    return train, val, steps


@dataclass
class _Cache:
    """The frozen front's activations that phases train on, and where it was cut."""

    arrays: dict[str, np.ndarray]
    cut: int
    split_layer: str
    time_s: float  # the caching pass, charged once to the phase that ran it


def _build_cache(model, phase: Phase, splits: Splits, work: Path, verbose: int) -> _Cache:
    """Run the frozen front once over train (and its mirror) and val; reuse across restarts."""
    start = time.perf_counter()
    cut = phase.cache_cut
    parts = finetune.split(model, cut)

    def cached(x, part, flip=False):
        return finetune.cached_activations(
            parts.frozen, x, files.activation_cache(work, cut, part), verbose, flip
        )

    arrays = {"train": cached(splits.x_train, "train")}
    if len(splits.y_val):
        arrays["val"] = cached(splits.x_val, "val")
    if phase.config.augment.flip:
        arrays["train_flipped"] = cached(splits.x_train, "train-flipped", flip=True)
    return _Cache(arrays, cut, parts.split_layer, time.perf_counter() - start)


def fit(
    config: TrainConfig,
    splits: Splits,
    strategy,
    work: Path,
    num_classes: int,
    verbose: int,
    callbacks: list | None = None,
    writer: progress.ProgressWriter | None = None,
) -> tuple[keras.Model, list[PhaseRecord]]:
    """Fit every phase not yet finished in ``work``; returns the model with its final
    weights and a record per phase. Callers go through ``resumable_fit``, which sets up the rest."""
    model = build_model(config, strategy, splits.x_train)
    missing = sorted(set(config.freeze_after) - {layer.name for layer in model.layers})
    if missing:
        raise ConfigError(
            f"freeze_after names layers that {config.model} does not have: {', '.join(missing)}"
        )
    cache: _Cache | None = None
    records: list[PhaseRecord] = []
    start_epoch = 0
    phases = plan(config, finetune.backbone_layers(model))
    if writer is not None:
        writer.epochs = sum(phase.epochs for phase in phases)
    setup = PhaseSetup(splits, strategy, work, num_classes, verbose, callbacks or [], writer, len(phases))
    for phase in phases:
        marker = files.phase_marker(work, phase.number)
        if marker.exists():  # finished before a restart
            record = PhaseRecord.from_dict(json.loads(marker.read_text()))
            model.load_weights(files.phase_weights(work, phase.number))
        else:
            if phase.cache_cut is None:
                cache = None  # pixels: free the activations
            elif cache is None or cache.cut != phase.cache_cut:
                cache = _build_cache(model, phase, splits, work, verbose)
            record = _fit_phase(model, phase, start_epoch, cache, setup)
            if cache is not None:
                cache.time_s = 0.0  # counted once
            model.save_weights(files.phase_weights(work, phase.number))
            write_json(marker, record.to_dict())
        records.append(record)
        start_epoch = record.end_epoch
    return model, records


@dataclass
class PhaseSetup:
    """What every phase of one fit shares."""

    splits: Splits
    strategy: Any
    work: Path  # the locked work folder
    num_classes: int
    verbose: int
    callbacks: list  # the caller's, added to each phase's own
    writer: progress.ProgressWriter | None  # the progress file, if any
    phases: int  # how many phases the plan has


def _fit_phase(model, phase: Phase, start_epoch: int, cache: _Cache | None, setup: PhaseSetup) -> PhaseRecord:
    """Train one phase from ``start_epoch``; its record (time, trainable params, epochs).
    Raises StopRequested when a stop request ended it after an epoch."""
    trainable = finetune.apply_phase(model, phase.unfrozen)
    # A fresh graph per phase (sharing the model's layers): Keras keeps resume state on it.
    target = finetune.split(model, cache.cut).trained if cache is not None else model
    train_ds, val_ds, steps = _datasets(
        phase.config, setup.splits, setup.num_classes, cache.arrays if cache else None
    )
    compile_for(target, phase, setup.strategy, steps)
    writer, work = setup.writer, setup.work
    if writer is not None:
        writer.begin_phase(
            phase.number, setup.phases, steps, phase.config.batch_size, files.read_history(work)
        )
    target.fit(
        train_ds,
        validation_data=val_ds,
        initial_epoch=start_epoch,
        epochs=start_epoch + phase.epochs,
        steps_per_epoch=steps,
        callbacks=phase_callbacks(phase, work, setup.verbose, steps * phase.epochs, setup.callbacks, writer),
        verbose=setup.verbose,
        shuffle=False,
    )
    if writer is not None and writer.stop_seen:
        raise StopRequested(work, writer.epoch, writer.command if writer.resumable else None)
    best = files.best_weights(work, phase.number)
    if phase.config.restore_best and best.exists():
        target.load_weights(best)
    history = files.read_history(work)
    this = history[history["phase"] == phase.number]
    return PhaseRecord(
        phase=phase.number,
        start_epoch=start_epoch,
        end_epoch=start_epoch + len(this),
        learning_rate=phase.learning_rate,
        batch_size=phase.config.batch_size,
        augment=dataclasses.asdict(phase.config.augment),
        trainable_layers=trainable,
        trainable_params=count_trainable(model),
        time_s=float(this["epoch_time_s"].sum()),
        cached_activations=cache is not None,
        split_after_layer=cache.split_layer if cache else "",
        cache_time_s=cache.time_s if cache else 0.0,
    )
