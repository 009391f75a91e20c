"""The callbacks of one phase's ``fit``: history row, progress file and stop requests, best
weights, early stopping, plateau cuts, the config's own (lookahead, frozen layers), then the
resume checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import keras

from cifar_core.artifacts import work as files
from cifar_core.phases import Phase
from cifar_core.training.progress import ProgressWriter
from cifar_core.training.schedules import FreezeAfter, Lookahead


class EpochInfo(keras.callbacks.Callback):
    """Adds the phase, learning rate, epoch wall time and, of that, the validation pass's
    seconds (``validation_s``) to the logs (before CSVLogger)."""

    def __init__(self, phase: int):
        super().__init__()
        self.phase = phase

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._val_s = 0.0

    def on_test_begin(self, logs=None):
        self._val_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._val_s += time.perf_counter() - self._val_start

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["phase"] = self.phase
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            logs["epoch_time_s"] = time.perf_counter() - self._start
            logs["validation_s"] = self._val_s


class HistoryLogger(keras.callbacks.CSVLogger):
    """Keras' CSVLogger that, appending to a history a resumed run began with other code,
    keeps that file's columns (a column added since is left out; a missing one reads NA)
    instead of writing rows that do not match the header."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        path = Path(self.filename)
        header = path.read_text().split("\n", 1)[0].strip() if path.exists() else ""
        if self.append and header:
            self.keys = header.split(self.sep)[1:]


class Progress(keras.callbacks.Callback):
    """Keeps the work folder's progress file current (``progress.ProgressWriter``) and stops
    training at the end of an epoch when a stop request is there (after the epoch's history
    row, best weights and checkpoint: the same command resumes it)."""

    def __init__(self, writer: ProgressWriter):
        super().__init__()
        self.writer = writer

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self.writer.begin_epoch(epoch)

    def on_train_batch_end(self, batch, logs=None):
        self.writer.step(batch + 1)

    def on_test_begin(self, logs=None):
        self.writer.validating()

    def on_epoch_end(self, epoch, logs=None):
        seconds = (logs or {}).get("epoch_time_s", time.perf_counter() - self._start)
        if self.writer.end_epoch(epoch, float(seconds)):
            self.model.stop_training = True


class EtaProgbar(keras.callbacks.ProgbarLogger):
    """Keras' own progress output, each epoch line followed by the run's ETA."""

    def __init__(self, writer: ProgressWriter):
        super().__init__()
        self.writer = writer

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.verbose:
            line = self.writer.eta_line()
            if line:
                print(f"  {line}", flush=True)


class Backup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, which falls back to its previous checkpoint when a kill
    during the checkpoint left the metadata file empty or half written: Keras falls back
    only on OSError, and an empty JSON file raises ValueError. With no previous checkpoint
    the phase starts again from its first epoch (its history rows are replaced)."""

    def on_train_begin(self, logs=None):
        import shutil

        try:
            super().on_train_begin(logs)
        except ValueError:
            previous = (self._prev_weights_path, self._prev_training_metadata_path)
            if all(Path(p).exists() for p in previous):
                shutil.copyfile(self._prev_weights_path, self._weights_path)
                shutil.copyfile(self._prev_training_metadata_path, self._training_metadata_path)
            else:
                shutil.rmtree(self.backup_dir, ignore_errors=True)
            super().on_train_begin(logs)


def phase_callbacks(
    phase: Phase,
    work: Path,
    verbose: int,
    total_steps: int = 0,
    extra: list | None = None,
    writer: ProgressWriter | None = None,
) -> list:
    """Every callback of one phase's ``fit``, in the order they must run."""
    config = phase.config
    history = files.read_history(work)
    if len(history):
        history = history[history["phase"] == phase.number]
    best = float(history["val_accuracy"].max()) if len(history) and "val_accuracy" in history else None
    callbacks = [
        # Lookahead first: its last sync happens before the epoch's validation and checkpoint.
        *([Lookahead(total_steps)] if config.lookahead and total_steps else []),
        *([FreezeAfter(config.freeze_after)] if config.freeze_after else []),
        EpochInfo(phase.number),
        HistoryLogger(str(files.history_file(work)), append=True),
        *([Progress(writer)] + ([EtaProgbar(writer)] if verbose else []) if writer else []),
    ]
    if config.validates:  # no validation split (val_size 0): nothing to pick the best epoch by
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                str(files.best_weights(work, phase.number)),
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best,
            )
        )
    if config.early_stopping_patience > 0:  # best weights come from the checkpoint, which survives a restart
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=config.early_stopping_patience, verbose=verbose
            )
        )
    if config.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=config.plateau_factor,
                patience=config.plateau_patience,
                min_lr=config.learning_rate / 1000,
                verbose=verbose,
            )
        )
    callbacks += list(extra or [])  # e.g. a tuning trial's pruning report, after the history row
    # Last, so an epoch's history row and best weights are on disk before its checkpoint
    # says it is done: a kill in between repeats the epoch (its row is deduplicated).
    callbacks.append(
        Backup(str(files.backup_dir(work, phase.number)), delete_checkpoint=False, double_checkpoint=True)
    )
    return callbacks
