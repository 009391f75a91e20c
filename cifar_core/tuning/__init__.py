"""Hyper-parameter search: a study per model, run by Optuna, kept in ``artifacts/studies/``.

    python -m cifar_core tune --model cnn_bn --trials 24 --epochs 6 --data-dir DIR [--jobs 2]
    python -m cifar_core tune --show cnn_bn-tune          # trials, importances, best values
    python -m cifar_core tune --retrain cnn_bn-tune --data-dir DIR   # the best, as a run

Trials optimise validation accuracy only; the test split is scored once, by the best
trial's retrained run (an ordinary run whose manifest names its study). Starting the same
command again resumes the study. ``--jobs 2`` trains trials in two processes (one thread
each) that share the study's journal file; on several machines the same study would share
a database server instead (``optuna.storages.RDBStorage`` with a PostgreSQL or MySQL URL:
every machine runs ``tune`` against it), which is not built here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from argparse import SUPPRESS

from cifar_core.errors import ConfigError
from cifar_core.tuning.space import (
    clamp,
    config_values,
    default_space,
    load_space,
    outside,
    settings,
    space_for,
    suggest,
    trial_params,
)
from cifar_core.tuning.study import (
    finished_count,
    importances,
    load_study,
    open_study,
    recover_interrupted,
    trial_config,
    trials_frame,
)

__all__ = [
    "default_space",
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
    from cifar_core.train import train_model

    found = read_study(root, name)
    if found["best"] is None:
        raise ConfigError(f"study {name!r} has no complete trial yet: nothing to retrain")
    info, best = found["info"], found["best"]
    chosen = [*info.get("settings", []), *settings(best["params"])]
    config = TrainConfig.from_preset(info["model"], chosen, epochs=epochs, val_size=info.get("val_size"))
    mark = {"study": name, "trial": best["trial"], "val_accuracy": best["val_accuracy"], "settings": chosen}
    return train_model(config, data, root, run_id=run_id, study=mark)


def add_arguments(p, add_set, add_common) -> None:
    p.add_argument("--model", help="model to tune (see list-models); required for a new study")
    p.add_argument("--study", help="study name (default: <model>-tune)")
    p.add_argument("--trials", type=int, default=24, help="finished trials the study should reach")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs per trial (default 6; retrain: the preset's)"
    )
    p.add_argument("--train-limit", type=int, default=None, help="trials train on at most this many images")
    p.add_argument("--val-size", type=int, default=None, help="validation images (default: as every run)")
    p.add_argument("--space", default=None, help="JSON file changing the model's search space")
    p.add_argument("--jobs", type=int, default=1, help="trial processes on this machine (one thread each)")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="a new study's first trial trains the preset's own values, as a yardstick",
    )
    p.add_argument("--show", metavar="STUDY", help="print a study's trials, importances and best values")
    p.add_argument("--retrain", metavar="STUDY", help="train a study's best values as an ordinary run")
    p.add_argument("--run-id", default=None, help="retrain: the run id (default: from the config)")
    p.add_argument("--worker", type=int, default=None, help=SUPPRESS)  # its index
    add_set(p, "fixed config overrides for every trial (as train --set), repeatable")
    add_common(p)


def _show(root, name: str) -> int:
    found = read_study(root, name)
    frame = found["trials"]
    print(f"study {name}: {found['info']['model']}, {len(frame)} trials")
    if len(frame):
        print(frame.drop(columns=["val_curve"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for key, value in found["importances"].items():
        print(f"importance {key}: {value:.3f}")
    if found["best"]:
        print(f"best: trial {found['best']['trial']}, val accuracy {found['best']['val_accuracy']:.2%}")
    return 0


def main(args) -> int:
    from optuna.trial import TrialState

    from cifar_core import artifacts
    from cifar_core.artifacts import studies
    from cifar_core.data import load_cifar10
    from cifar_core.tuning import study as runner

    root = artifacts.artifacts_root(args.artifacts_dir)
    if args.show:
        return _show(root, args.show)
    if args.retrain:
        path = retrain_best(root, args.retrain, load_cifar10(args.data_dir), args.epochs, args.run_id)
        print(f"retrained the best trial of {args.retrain} as {path.name}")
        return 0
    name = args.study or (f"{args.model}-tune" if args.model else None)
    if name is None:
        raise ConfigError("tune needs --model (a new study), --show STUDY or --retrain STUDY")
    if args.model is None:
        args.model = studies.read_study_info(root, name)["model"]
    space = load_space(args.model, args.space)
    args.epochs = TRIAL_EPOCHS if args.epochs is None else args.epochs
    options = {"train_limit": args.train_limit, "val_size": args.val_size}
    options.update(settings=args.settings, seed=args.seed)
    data = load_cifar10(args.data_dir)
    info = runner.describe(args.model, space, args.epochs, data, root, **options)
    trial_config(info, {})  # a bad --set or model fails here, before anything is written
    info = runner.prepare(root, name, info)
    if args.baseline and args.worker is None:
        _enqueue_baseline(root, name, info)
    if args.jobs > 1 and args.worker is None:
        code = _spawn(args, name, root)  # each worker stops when the study has enough trials
        if code:
            return code
    else:
        runner.run_trials(root, name, info, data, args.trials, worker=args.worker or 0)
    study = open_study(root, name)
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    studies.write_importances(root, name, complete, importances(study))
    print(f"study {name}: {finished_count(study)} finished trials; see `tune --show {name}`")
    return 0


def _enqueue_baseline(root, name: str, info: dict) -> None:
    """Queue the preset's own values (with the study's fixed settings) as the next trial of
    a study that has none yet, marked ``baseline`` in the trial table; the sampler does the
    rest. A value outside the space is moved to its nearest end, and said."""
    study = open_study(root, name)
    if study.get_trials(deepcopy=False):
        print(f"study {name} has trials already: --baseline only queues a new study's first trial")
        return
    preset = config_values(trial_config(info, {}), info["space"])
    values = clamp(preset, info["space"])
    for key in outside(preset, info["space"]):
        print(
            f"baseline: the preset's {key}={preset[key]} lies outside the space "
            f"{info['space'][key]}: the baseline trial uses {values[key]}"
        )
    study.enqueue_trial(trial_params(values), user_attrs={"baseline": "preset"})
    print(f"baseline: trial 0 trains the preset's values: {' '.join(settings(values))}")


def _spawn(args, name: str, root) -> int:
    """``--jobs N``: N worker processes of this command, one TensorFlow thread each."""
    argv = ["tune", "--model", args.model, "--study", name, "--trials", str(args.trials)]
    argv += ["--epochs", str(args.epochs), "--seed", str(args.seed), "--artifacts-dir", str(root)]
    for flag, value in (("--data-dir", args.data_dir), ("--train-limit", args.train_limit)):
        argv += [flag, str(value)] if value is not None else []
    for flag, value in (("--val-size", args.val_size), ("--space", args.space)):
        argv += [flag, str(value)] if value is not None else []
    for setting in args.settings:
        argv += ["--set", setting]
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    workers = [
        subprocess.Popen([sys.executable, "-m", "cifar_core", *argv, "--worker", str(k)], env=env)
        for k in range(args.jobs)
    ]
    codes = [w.wait() for w in workers]
    return max(codes)
