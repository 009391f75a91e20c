"""``tune``: a hyper-parameter study per model (cifar_core.tuning), shown, resumed or retrained.

python -m cifar_core tune --model cnn_bn --trials 24 --epochs 6 --data-dir DIR [--jobs 2]
python -m cifar_core tune --show cnn_bn-tune
python -m cifar_core tune --retrain cnn_bn-tune --data-dir DIR
python -m cifar_core tune --model cnn_bn --storage postgresql://USER:PW@HOST/DB ...  # on each machine
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from argparse import SUPPRESS

from cifar_core.commands.options import add_common, add_set


def register(sub) -> None:
    p = sub.add_parser("tune", help="hyper-parameter search with Optuna: a study per model")
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
        "--storage",
        metavar="URL",
        help="keep the study on PostgreSQL (postgresql://USER:PASSWORD@HOST:5432/DB; default "
        "$CIFAR_DB, else the journal file): tune processes on several machines join it",
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=60,
        metavar="S",
        help="with --storage: seconds between a trial's heartbeats; a trial silent for two is "
        "presumed dead and trained again by another worker (default: %(default)s)",
    )
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
    p.set_defaults(handler=main)


def show(root, name: str) -> int:
    from cifar_core import tuning

    found = tuning.read_study(root, name)
    frame = found["trials"]
    print(f"study {name}: {found['info']['model']}, {len(frame)} trials")
    if len(frame):
        print(frame.drop(columns=["val_curve"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for key, value in found["importances"].items():
        print(f"importance {key}: {value:.3f}")
    if found["best"]:
        print(f"best: trial {found['best']['trial']}, val accuracy {found['best']['val_accuracy']:.2%}")
    return 0


def main(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    from cifar_core import artifacts, database, tuning
    from cifar_core.artifacts import studies
    from cifar_core.data import load_cifar10
    from cifar_core.errors import ConfigError
    from cifar_core.models import run_name
    from cifar_core.tuning import storage
    from cifar_core.tuning import study as runner

    root = artifacts.artifacts_root(args.artifacts_dir)
    if args.show:
        return show(root, args.show)
    if args.retrain:
        path = tuning.retrain_best(root, args.retrain, load_cifar10(args.data_dir), args.epochs, args.run_id)
        print(f"retrained the best trial of {args.retrain} as {path.name}")
        return 0
    name = args.study or (f"{run_name(args.model)}-tune" if args.model else None)
    if name is None:
        raise ConfigError("tune needs --model (a new study), --show STUDY or --retrain STUDY")
    if args.model is None:
        args.model = studies.read_study_info(root, name)["model"]
    space = tuning.load_space(args.model, args.space)
    args.epochs = tuning.TRIAL_EPOCHS if args.epochs is None else args.epochs
    url = database.url_from(args.storage) or storage.stored_url(root, name)
    if url:
        database.check(url)  # a wrong URL, password or database: one line, nothing written
    options = {"train_limit": args.train_limit, "val_size": args.val_size}
    options.update(settings=args.settings, seed=args.seed, storage=url and storage.without_password(url))
    data = load_cifar10(args.data_dir)
    info = runner.describe(args.model, space, args.epochs, data, root, **options)
    tuning.trial_config(info, {})  # a bad --set or model fails here, before anything is written
    info = runner.prepare(root, name, info)
    if args.baseline and args.worker is None:
        print("\n".join(tuning.enqueue_baseline(root, name, info)))
    if url and args.worker is None:
        tuning.open_study(root, name, url=url)  # the tables and the study, once, before workers race to
    if args.jobs > 1 and args.worker is None:
        code = _spawn(args, name, root)  # each worker stops when the study has enough trials
        if code:
            return code
    else:
        # On a server, processes on other machines share the study: a worker index of their own.
        worker = args.worker if args.worker is not None else (os.getpid() if url else 0)
        where = {"url": url, "heartbeat": args.heartbeat} if url else {}
        runner.run_trials(root, name, info, data, args.trials, worker=worker, **where)
    study = tuning.open_study(root, name, url=url)
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    studies.write_importances(root, name, complete, tuning.importances(study))
    print(f"study {name}: {tuning.finished_count(study)} finished trials; see `tune --show {name}`")
    return 0


def _spawn(args: argparse.Namespace, name: str, root) -> int:
    """``--jobs N``: N worker processes of this command, one TensorFlow thread each."""
    argv = ["tune", "--model", args.model, "--study", name, "--trials", str(args.trials)]
    argv += ["--epochs", str(args.epochs), "--seed", str(args.seed), "--artifacts-dir", str(root)]
    for flag, value in (("--data-dir", args.data_dir), ("--train-limit", args.train_limit)):
        argv += [flag, str(value)] if value is not None else []
    for flag, value in (("--val-size", args.val_size), ("--space", args.space)):
        argv += [flag, str(value)] if value is not None else []
    if args.storage:
        argv += ["--storage", args.storage, "--heartbeat", str(args.heartbeat)]
    for setting in args.settings:
        argv += ["--set", setting]
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    workers = [
        subprocess.Popen([sys.executable, "-m", "cifar_core", *argv, "--worker", str(k)], env=env)
        for k in range(args.jobs)
    ]
    return max(w.wait() for w in workers)
