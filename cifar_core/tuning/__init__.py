"""Hyper-parameter search: a study per model, run by Optuna, kept in ``artifacts/studies/``.

    python -m cifar_core tune --model cnn_bn --trials 24 --epochs 6 --data-dir DIR [--jobs 2]
    python -m cifar_core tune --show cnn_bn-tune          # trials, importances, best values
    python -m cifar_core tune --retrain cnn_bn-tune --data-dir DIR   # the best, as a run

Trials optimise validation accuracy only; the test split is scored once, by the best
trial's retrained run (an ordinary run whose manifest names its study). Starting the same
command again resumes the study. ``--jobs 2`` trains trials in two processes (one thread
each) that share the study's journal file; on several machines ``--storage URL`` (or
``$CIFAR_DB``) keeps the study on PostgreSQL and every machine runs ``tune`` against it
(``tuning.storage``). The command is ``cifar_core/commands/tune.py``.
"""

from __future__ import annotations

from cifar_core.errors import ConfigError
from cifar_core.tuning.space import default_space, load_space, settings, space_for, suggest
from cifar_core.tuning.storage import load_study, open_study
from cifar_core.tuning.study import (
    enqueue_baseline,
    finished_count,
    importances,
    recover_interrupted,
    trial_config,
    trials_frame,
)

__all__ = [
    "TRIAL_EPOCHS",
    "default_space",
    "enqueue_baseline",
    "finished_count",
    "importances",
    "load_space",
    "load_study",
    "open_study",
    "read_study",
    "recover_interrupted",
    "retrain_best",
    "settings",
    "space_for",
    "suggest",
    "trial_config",
    "trials_frame",
]


def read_study(root, name: str) -> dict:
    """A stored study for the dashboard and ``--show``: its description, one row per trial,
    the parameters' importances and the best trial (None before one completes)."""
    from cifar_core.artifacts import studies

    info = studies.read_study_info(root, name)
    study = load_study(root, name)  # reading appends nothing to the journal
    frame = trials_frame(study)
    complete = int((frame["state"] == "complete").sum()) if len(frame) else 0
    best = None
    if complete:
        trial = study.best_trial  # the best complete trial
        best = {"trial": trial.number, "val_accuracy": float(trial.value), "params": dict(trial.params)}
    found = studies.read_importances(root, name, complete)  # as `tune` left them, if current
    found = importances(study) if found is None else found
    return {"name": name, "info": info, "trials": frame, "importances": found, "best": best}


TRIAL_EPOCHS = 6  # `tune` without --epochs: a short trial, enough to rank settings


def retrain_best(root, name: str, data, epochs: int | None = None, run_id: str | None = None):
    """Train the study's best values as an ordinary run on all of train (the preset's epochs
    unless ``epochs``): the one look at the test split. Its manifest names the study."""
    from cifar_core.config import TrainConfig
    from cifar_core.training.trainer import train_model

    found = read_study(root, name)
    if found["best"] is None:
        raise ConfigError(f"study {name!r} has no complete trial yet: nothing to retrain")
    info, best = found["info"], found["best"]
    chosen = [*info.get("settings", []), *settings(best["params"])]
    config = TrainConfig.from_preset(info["model"], chosen, epochs=epochs, val_size=info.get("val_size"))
    mark = {"study": name, "trial": best["trial"], "val_accuracy": best["val_accuracy"], "settings": chosen}
    return train_model(config, data, root, run_id=run_id, origin={"study": mark})
