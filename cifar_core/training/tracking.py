"""Record your own training loop as a run: for a notebook or script that calls ``model.fit``.

    from cifar_core import tracking
    data = tracking.load_data("../shared/data/cifar10-jpeg")   # the zoo's split, same checksum
    with tracking.Run("my-cnn", data) as run:
        model.fit(data.x_train, data.y_train, validation_data=data.validation,
                  epochs=20, callbacks=[run.callback])
        run.finish(model)                                       # the test split, scored once

``data.x_train`` holds raw uint8 pixels and ``data.y_train`` class indices (compile with
``sparse_categorical_crossentropy``). The callback appends every epoch to the run's work
folder (``artifacts/work/<name>/history.csv``), so a training in progress can be watched.
``finish`` scores the test split once through the engine's ``Predictor``, stores the model
(behind a uint8 input, like every stored model), makes the run's map and writes an ordinary
run folder whose manifest says how it was made (``source``: recorded, with the optimizer,
batch size, epochs, the model's layers and the script or notebook it can find). A run left without
``finish`` (an exception, a restarted kernel) writes no run folder.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifar_core import artifacts, runtime
from cifar_core.artifacts import work as files
from cifar_core.data import Cifar10Data, Splits, load_cifar10, run_splits
from cifar_core.errors import ConfigError
from cifar_core.training.progress import ProgressWriter

FAMILY = "recorded"
TRAIN_SAMPLE = 5000  # train images scored for the train accuracy, as a zoo run


@dataclass
class RecordedData(Splits):
    """The zoo's split of a data set, for your own ``fit``: ``x_train``, ``y_train``,
    ``x_val``, ``y_val`` (a ``Splits``); the test split stays in ``data`` for ``Run.finish``,
    which scores it once."""

    data: Cifar10Data = None  # type: ignore[assignment]
    val_size: int | None = None
    seed: int = 0
    train_limit: int | None = None

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        """``validation_data`` for ``model.fit``."""
        return self.x_val, self.y_val

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data.class_names

    @property
    def checksum(self) -> str:
        return self.data.checksum


def load_data(
    source=None, val_size: int | None = None, seed: int = 0, train_limit: int | None = None
) -> RecordedData:
    """CIFAR-10 from ``source`` (as ``--data-dir``; None downloads it) split as every zoo run
    with these settings is: a stratified validation split carved from train by ``seed``,
    then at most ``train_limit`` train images."""
    data = load_cifar10(source)
    splits = run_splits(data, val_size, seed, train_limit)
    return RecordedData(**vars(splits), data=data, val_size=val_size, seed=seed, train_limit=train_limit)


def _metric(logs: dict, name: str) -> float:
    """``accuracy`` or ``val_accuracy`` whatever Keras called the metric (acc,
    sparse_categorical_accuracy, ...); NaN when the fit logged none."""
    prefix = "val_" if name.startswith("val_") else ""
    if name in logs:
        return float(logs[name])
    for key, value in logs.items():
        bare = key.removeprefix("val_")
        if key.startswith(prefix) and (prefix or not key.startswith("val_")) and "acc" in bare:
            return float(value)
    return float("nan")


def _callback_class():
    import keras

    class Record(keras.callbacks.Callback):
        """Appends every epoch to the run's history.csv (epochs count on across ``fit`` calls)."""

        def __init__(self, run: Run):
            super().__init__()
            self.run = run

        def on_train_begin(self, logs=None):
            self.run._seen_fit(self.model, self.params)
            writer = self.run.writer
            writer.epochs = self.run.epochs + int(self.params.get("epochs") or 0)
            writer.begin_phase(1, 1, int(self.params.get("steps") or 0), self.run._batch_size() or 0)

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()
            self.run.writer.begin_epoch(self.run.epochs)

        def on_train_batch_end(self, batch, logs=None):
            self.run.writer.step(batch + 1)

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            lr = getattr(self.model.optimizer, "learning_rate", None)
            row = {
                "epoch": self.run.epochs,
                "phase": 1,
                "loss": float(logs.get("loss", np.nan)),
                "accuracy": _metric(logs, "accuracy"),
                "val_loss": float(logs.get("val_loss", np.nan)),
                "val_accuracy": _metric(logs, "val_accuracy"),
                "learning_rate": float(keras.ops.convert_to_numpy(lr)) if lr is not None else np.nan,
                "epoch_time_s": time.perf_counter() - self._start,
            }
            self.run._append(row)
            # A stop request (status --stop, the dashboard): this fit ends after the epoch.
            if self.run.writer.end_epoch(self.run.epochs - 1, row["epoch_time_s"]):
                self.model.stop_training = True

    return Record


class Run:
    """One recorded run: ``with Run(name, data) as run: ... fit(callbacks=[run.callback]);
    run.finish(model)``. ``name`` becomes the run id (letters, digits, ``._-``)."""

    def __init__(self, name: str, data: RecordedData, root=None, notes: str | None = None):
        self.root = artifacts.artifacts_root(root)
        self.run_id = artifacts.check_run_id(name)
        self.data = data
        self.notes = notes
        self.epochs = 0
        self.fits: list[dict[str, Any]] = []
        self.path: Path | None = None
        self._lock = None
        self.work: Path | None = None
        self.callback = _callback_class()(self)

    def __enter__(self) -> Run:
        if artifacts.run_exists(self.root, self.run_id):
            raise artifacts.RunExistsError(
                f"run {self.run_id!r} is already complete in {self.root}: record under another name"
            )
        self._lock = files.lock_folder(artifacts.work_dir(self.root, self.run_id))
        self.work = self._lock.__enter__()
        files.clear(self.work)  # an earlier attempt that never finished: start again
        self._started = time.perf_counter()
        # A notebook cannot be resumed from the outside: stopped, it is re-run by its owner.
        self.writer = ProgressWriter(
            self.work, self.run_id, "recorded", self.run_id, 0, command="", resumable=False
        )
        return self

    def __exit__(self, kind, error, trace) -> None:
        work, lock = self.work, self._lock
        self._lock = None
        lock.__exit__(kind, error, trace)
        import shutil

        shutil.rmtree(work, ignore_errors=True)  # finished or failed: the run folder is all that stays

    def _append(self, row: dict) -> None:
        import pandas as pd

        path = files.history_file(self._work())
        pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)
        self.epochs += 1

    def _seen_fit(self, model, params: dict) -> None:
        """What a ``fit`` call shows its callbacks: optimizer and settings, steps, epochs."""
        optimizer = getattr(model, "optimizer", None)
        config = {}
        if optimizer is not None:
            config = {k: _plain(v) for k, v in optimizer.get_config().items() if _plain(v) is not None}
        self.fits.append(
            {
                "optimizer": type(optimizer).__name__ if optimizer is not None else None,
                "optimizer_config": config,
                "epochs": params.get("epochs"),
                "steps_per_epoch": params.get("steps"),
                "loss": _plain(getattr(model, "loss", None)),
            }
        )

    def _work(self) -> Path:
        if self.work is None:
            raise ConfigError("use the run as a context manager: `with tracking.Run(name, data) as run:`")
        return self.work

    def finish(
        self,
        model,
        scale: float | None = None,
        code: str | os.PathLike | None = None,
        export: bool = True,
    ) -> Path:
        """Score ``model`` on the test split (once), store it, write the run folder and
        export it to ONNX (``export=False``: later, with ``python -m cifar_core export RUN``),
        as every training of the engine ends.

        ``scale``: what your model expects the uint8 pixels multiplied by, if you scaled
        them yourself before ``fit`` (``1/255``); without it the stored model gets the
        pixels as ``fit`` got ``data.x_train``. ``code``: the file of your custom layers,
        kept with the run (imported only by someone who trusts it, see ``--trust-code``).
        Returns the run folder.
        """
        from cifar_core.models.builderfile import as_pixel_model
        from cifar_core.training.record import FinishedFit, finish_run

        work = self._work()
        self.writer.write("recording", force=True)
        if self.epochs == 0:
            raise ConfigError("no epoch recorded: pass callbacks=[run.callback] to model.fit")
        # What fit saw: data.x_train's uint8 values (as floats, unless the model takes uint8),
        # times ``scale`` if you scaled them yourself.
        stored = as_pixel_model(
            model, len(self.data.class_names), f"run {self.run_id}", scale=1.0 if scale is None else scale
        )
        env = runtime.environment()
        manifest = {
            "model": self.run_id,
            "description": self.notes or f"recorded from {_script() or 'an interactive session'}",
            "family": FAMILY,
            "input_size": 32,
            "config": self._config(),
            "source": self._source(model, code),
            "precision": _policy(),
            "environment": env,
            "hardware": runtime.hardware_label(env),
            "command": None,
        }
        phases = [self._phase(model, work)]
        splits = self.data  # the zoo's split of your data; your model had no TTA
        sources = {Path(code).name: Path(code).read_bytes()} if code is not None else {}
        fitted = FinishedFit(
            stored, splits.data, splits, work, phases, manifest,
            train_sample=TRAIN_SAMPLE, seed=splits.seed, sources=sources,
        )  # fmt: skip
        self.path = finish_run(self.root, self.run_id, fitted, export=export)
        return self.path

    def _phase(self, model, work: Path):
        """The one phase a recorded fit has, as the engine's runs record theirs."""
        from cifar_core.phases import PhaseRecord

        history = files.read_history(work)
        return PhaseRecord(
            phase=1,
            end_epoch=self.epochs,
            learning_rate=(self.fits[0]["optimizer_config"].get("learning_rate") if self.fits else None),
            batch_size=self._batch_size(),
            trainable_params=_trainable(model),
            time_s=float(history["epoch_time_s"].sum()),
        )

    def _batch_size(self) -> int | None:
        steps = self.fits[0].get("steps_per_epoch") if self.fits else None
        return int(np.ceil(len(self.data.y_train) / steps)) if steps else None

    def _config(self) -> dict:
        """The manifest's config: what the recorder saw (not a TrainConfig: your loop)."""
        first = self.fits[0] if self.fits else {}
        return {
            "model": self.run_id,
            "epochs": self.epochs,
            "batch_size": self._batch_size(),
            "optimizer": first.get("optimizer"),
            "learning_rate": first.get("optimizer_config", {}).get("learning_rate"),
            "lr_schedule": "recorded",
            "tta": "none",
            "seed": self.data.seed,
            "val_size": self.data.val_size,
            "train_limit": self.data.train_limit,
        }

    def _source(self, model, code) -> dict:
        script = _script()
        custom = sorted({type(layer).__name__ for layer in _layers(model) if not _builtin(layer)})
        return {
            "kind": "recorded",
            "script": script,
            "script_sha256": _sha256(script),
            "fits": self.fits,
            "wall_s": time.perf_counter() - self._started,
            "params": int(model.count_params()),
            "layers": [f"{layer.name} ({type(layer).__name__})" for layer in model.layers],
            "custom_layers": custom,
            "file": Path(code).name if code is not None else None,
        }


def _layers(model):
    from cifar_core.models.registry import flat_layers

    return list(flat_layers(model))


def _builtin(layer) -> bool:
    module = type(layer).__module__
    return module.startswith(("keras", "tf_keras", "tensorflow", "cifar_core"))


def _trainable(model) -> int:
    from cifar_core.models import count_trainable

    return count_trainable(model)


def _policy() -> str:
    import keras

    return keras.config.dtype_policy().name


def _plain(value):
    """A JSON-friendly version of an optimizer setting (None when it has none)."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return type(value).__name__ if not isinstance(value, dict) else None


def _script() -> str | None:
    """The script or notebook this process runs, if it can be found."""
    notebook = os.environ.get("JPY_SESSION_NAME")  # set by Jupyter for a notebook's kernel
    if notebook and Path(notebook).is_file():
        return str(Path(notebook).resolve())
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return str(Path(path).resolve()) if path and Path(path).is_file() else None


def _sha256(path: str | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
