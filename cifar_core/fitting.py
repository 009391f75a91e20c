"""Fitting one model, in one or two phases, resumably. train.py orchestrates; this fits.

Scratch models have one phase. Transfer models have phase 1 (head on the frozen backbone)
and, when ``fine_tune_epochs`` > 0, phase 2 (top backbone layers unfrozen at a lower
learning rate), recorded in one history with a ``phase`` column. Everything that lets a
killed run resume lives in the run's work folder:

    backup_dir(work, phase)       BackupAndRestore checkpoints (last finished epoch)
    best_weights(work, phase)     best validation epoch of the phase
    phase_marker / phase_weights  a finished phase
    activation_cache(...)         cached frozen-front activations (transfer, see finetune.py)
    history_file(work)            every epoch, every phase
(the names are in ``artifacts/work.py``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from cifar_core import finetune, runtime
from cifar_core.artifacts import work as files
from cifar_core.config import TrainConfig
from cifar_core.errors import ConfigError
from cifar_core.fileio import write_json
from cifar_core.models import create_model, get_spec
from cifar_core.pipeline import make_array_dataset, make_dataset
from cifar_core.schedules import FreezeAfter, Lookahead, make_optimizer, steps_per_epoch


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass
class FitResult:
    model: keras.Model
    fit_time_s: float  # training epochs plus, for cached transfer runs, the caching pass
    phases: list[dict]  # per phase: epochs, learning rate, trainable layers, time


class EpochInfo(keras.callbacks.Callback):
    """Adds the phase, learning rate and epoch wall time to the logs (before CSVLogger)."""

    def __init__(self, phase: int):
        super().__init__()
        self.phase = phase

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["phase"] = self.phase
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            logs["epoch_time_s"] = time.perf_counter() - self._start


def read_history(path: Path) -> pd.DataFrame:
    """The per-epoch history so far (a resumed epoch counts once)."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    frame = pd.read_csv(path)
    return frame.drop_duplicates("epoch", keep="last").reset_index(drop=True)


def _callbacks(
    config: TrainConfig,
    work: Path,
    phase: int,
    learning_rate: float,
    verbose: int,
    total_steps: int = 0,
    extra: list | None = None,
):
    history = read_history(files.history_file(work))
    if len(history):
        history = history[history["phase"] == phase]
    best = float(history["val_accuracy"].max()) if len(history) and "val_accuracy" in history else None
    callbacks = [
        # Lookahead first: its last sync happens before the epoch's validation and checkpoint.
        *([Lookahead(total_steps)] if config.lookahead and total_steps else []),
        *([FreezeAfter(config.freeze_after)] if config.freeze_after else []),
        EpochInfo(phase),
        keras.callbacks.CSVLogger(str(files.history_file(work)), append=True),
    ]
    if config.validates:  # no validation split (val_size 0): nothing to pick the best epoch by
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                str(files.best_weights(work, phase)),
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best,
            )
        )
    if config.early_stopping_patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=config.early_stopping_patience,
                verbose=verbose,
            )
        )  # best weights come from the checkpoint, which survives a restart
    if config.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=config.plateau_factor,
                patience=config.plateau_patience,
                min_lr=learning_rate / 1000,
                verbose=verbose,
            )
        )
    callbacks += list(extra or [])  # e.g. a tuning trial's pruning report, after the history row
    # Last, so an epoch's history row and best weights are on disk before its checkpoint
    # says it is done: a kill in between repeats the epoch (its row is deduplicated) instead
    # of losing it.
    callbacks.append(
        keras.callbacks.BackupAndRestore(
            str(files.backup_dir(work, phase)), delete_checkpoint=False, double_checkpoint=True
        )
    )
    return callbacks


def build_model(config: TrainConfig, strategy, x_init: np.ndarray, load_weights: bool = True) -> keras.Model:
    """The model of ``config`` in the strategy's scope, data-initialised where it asks for it."""
    with strategy.scope():
        model = create_model(config.model, **config.model_kwargs(load_weights))
        spec = get_spec(config.model)
        if spec.data_init is not None:
            spec.data_init(model, x_init)
    return model


def compile_for(model: keras.Model, config: TrainConfig, strategy, steps: int, epochs: int, lr: float):
    """Compile with a fresh optimizer whose schedule spans ``epochs`` at peak ``lr``."""
    phase_config = dataclasses.replace(config, learning_rate=lr, epochs=epochs)
    with strategy.scope():
        model.compile(
            optimizer=make_optimizer(phase_config, steps),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        runtime.patch_multiworker_build(model)


def build_compiled(config: TrainConfig, strategy, steps: int, x_init: np.ndarray) -> keras.Model:
    """A model ready for ``fit`` with the config's optimizer (used by the benchmark)."""
    model = build_model(config, strategy, x_init)
    compile_for(model, config, strategy, steps, config.epochs, config.learning_rate)
    return model


def plan_phases(config: TrainConfig, transfer: bool) -> list[tuple[int, int, float]]:
    """(phase, epochs, learning rate) for each phase to run."""
    phases = [(1, config.epochs, config.learning_rate)]
    if transfer and config.fine_tune_epochs > 0:
        phases.append((2, config.fine_tune_epochs, config.learning_rate * config.fine_tune_lr_factor))
    return phases


def _datasets(config, splits, num_classes, cache):
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


def cache_cuts(config: TrainConfig, transfer: bool, backbone_layers: int = 0) -> dict[int, int | None]:
    """Per phase, where its cached activations are cut (a ``fine_tune_layers`` value), or
    None when the phase trains on pixels.

    A phase can train on a cache when its augmentation is at most a flip. When phase 2 can
    too, both share one cache cut below phase 2's unfrozen layers; when phase 2 augments
    more (translations: it trains on pixels), or unfreezes the whole backbone (nothing
    left to cache), phase 1 caches the whole frozen backbone.
    """
    phases = [p for p, _, _ in plan_phases(config, transfer)]
    ok = {p: transfer and finetune.can_cache(config.phase(p)) for p in phases}
    if not ok.get(1):
        return {p: None for p in phases}
    shared = 2 in phases and ok[2] and config.fine_tune_layers < backbone_layers
    cut = config.fine_tune_layers if shared else 0
    return {p: (cut if p == 1 or shared else None) for p in phases}


def _build_cache(model, config, splits, work: Path, cut: int, verbose: int) -> tuple[dict, float, str]:
    """Run the frozen front once over train (and its mirror) and val; reuse across restarts."""
    start = time.perf_counter()
    parts = finetune.split(model, cut)
    cache = {
        "train": finetune.cached_activations(
            parts.frozen, splits.x_train, files.activation_cache(work, cut, "train"), verbose
        ),
    }
    if len(splits.y_val):
        cache["val"] = finetune.cached_activations(
            parts.frozen, splits.x_val, files.activation_cache(work, cut, "val"), verbose
        )
    if config.augment.flip:
        cache["train_flipped"] = finetune.cached_activations(
            parts.frozen,
            splits.x_train,
            files.activation_cache(work, cut, "train-flipped"),
            verbose,
            flip=True,
        )
    return cache, time.perf_counter() - start, parts.split_layer


def fit(
    config: TrainConfig,
    splits: Splits,
    strategy,
    work: Path,
    num_classes: int,
    verbose: int,
    callbacks: list | None = None,
) -> FitResult:
    """Fit every phase not yet finished in ``work`` and return the model with its final
    weights; ``callbacks`` are added to every phase's own."""
    model = build_model(config, strategy, splits.x_train)
    missing = sorted(set(config.freeze_after) - {layer.name for layer in model.layers})
    if missing:
        raise ConfigError(
            f"freeze_after names layers that {config.model} does not have: {', '.join(missing)}"
        )
    transfer = finetune.is_transfer(model)
    cuts = cache_cuts(config, transfer, len(model.get_layer(finetune.BACKBONE).layers) if transfer else 0)
    cache, cache_cut, cache_time, split_layer = None, None, 0.0, ""
    phases_done: list[dict] = []
    start_epoch = 0
    for phase, epochs, lr in plan_phases(config, transfer):
        marker = files.phase_marker(work, phase)
        if marker.exists():  # finished before a restart
            info = json.loads(marker.read_text())
            model.load_weights(files.phase_weights(work, phase))
            phases_done.append(info)
            start_epoch = info["end_epoch"]
            continue
        pconfig = config.phase(phase)
        trainable = (
            finetune.set_phase(model, phase, config.fine_tune_layers)
            if transfer
            else [layer.name for layer in model.layers if layer.trainable_weights]
        )
        cut = cuts[phase]
        if cut is None:
            cache, cache_cut, split_layer = None, None, ""  # pixels: free the activations
        elif cache is None or cache_cut != cut:
            cache, cache_time, split_layer = _build_cache(model, pconfig, splits, work, cut, verbose)
            cache_cut = cut
        # A fresh graph per phase (sharing the model's layers): Keras keeps resume state on it.
        target = finetune.split(model, cut).trained if cache is not None else model
        train_ds, val_ds, steps = _datasets(pconfig, splits, num_classes, cache)
        compile_for(target, pconfig, strategy, steps, epochs, lr)
        target.fit(
            train_ds,
            validation_data=val_ds,
            initial_epoch=start_epoch,
            epochs=start_epoch + epochs,
            steps_per_epoch=steps,
            callbacks=_callbacks(pconfig, work, phase, lr, verbose, steps * epochs, callbacks),
            verbose=verbose,
            shuffle=False,
        )
        best = files.best_weights(work, phase)
        if config.restore_best and best.exists():
            target.load_weights(best)
        history = read_history(files.history_file(work))
        this = history[history["phase"] == phase]
        info = {
            "phase": phase,
            "start_epoch": start_epoch,
            "end_epoch": start_epoch + len(this),
            "learning_rate": lr,
            "batch_size": pconfig.batch_size,
            "augment": dataclasses.asdict(pconfig.augment),
            "trainable_layers": trainable,
            "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "time_s": float(this["epoch_time_s"].sum()),
            "cached_activations": cache is not None,
            "split_after_layer": split_layer,
            "cache_time_s": cache_time,  # the caching pass, counted once (in the phase that ran it)
        }
        cache_time = 0.0
        model.save_weights(files.phase_weights(work, phase))
        write_json(marker, info)
        phases_done.append(info)
        start_epoch = info["end_epoch"]
    fit_time = sum((p.get("time_s") or 0) + p.get("cache_time_s", 0) for p in phases_done)
    return FitResult(model, float(fit_time), phases_done)
