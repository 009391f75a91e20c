"""Run and read a hyper-parameter study with Optuna.

Optuna, not KerasTuner: a trial here is an ordinary ``TrainConfig`` (the model's preset
plus ``--set`` values) trained through the engine's own fit set-up, ``fitting.resumable_fit`` (its
data pipeline, schedules, checkpoints and resume), and Optuna's define-by-run trials ask
for values without owning the model or the training loop. KerasTuner wants a ``HyperModel``
that builds and compiles the model itself and runs its own ``fit``, a second way to train.

- Sampler: TPE (seeded); pruner: median, on the validation accuracy reported after every
  epoch (a trial below the median of earlier trials at the same epoch stops there).
- Every trial trains on the same split as every run (validation carved from train by the
  config's seed) and is scored on validation accuracy only; the test split is never read.
- Storage (``tuning.storage``): Optuna's journal file in ``artifacts/studies/<name>/`` on one
  machine, PostgreSQL (``RDBStorage`` with heartbeats) on several. A trial killed mid-way is
  failed (at the next open, or when its heartbeat stops) and queued again with its values;
  its checkpoints (keyed by the config) let it resume from its last finished epoch.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cifar_core.artifacts import studies
from cifar_core.config import TrainConfig
from cifar_core.errors import ConfigError
from cifar_core.tuning.space import clamp, config_values, outside, settings, suggest, trial_params
from cifar_core.tuning.storage import PRUNER, open_study, stored_url


def trial_config(info: dict, values: dict) -> TrainConfig:
    """The config a trial trains: the model's preset, the study's fixed settings, then the
    trial's values; the study's epochs, train subset and validation size."""
    return TrainConfig.from_preset(
        info["model"],
        [*info.get("settings", []), *settings(values)],
        epochs=info["epochs"],
        train_limit=info.get("train_limit"),
        val_size=info.get("val_size"),
    )


def _alive(attrs: dict) -> bool:
    if attrs.get("host") != socket.gethostname() or not attrs.get("pid"):
        return False
    try:
        os.kill(int(attrs["pid"]), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    return True


def recover_interrupted(study) -> list[int]:
    """Fail the trials left running by a process that is gone, and queue their values again
    (the retry resumes from the trial's checkpoints). Returns the trial numbers failed."""
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _alive(trial.user_attrs):
            continue  # another process (tune --jobs) is training it
        study.tell(trial.number, state=TrialState.FAIL)
        failed.append(trial.number)
        if trial.params:
            kept = {k: v for k, v in trial.user_attrs.items() if k == "baseline"}
            study.enqueue_trial(trial.params, user_attrs={"resumes": trial.number, **kept})
    return failed


def report_callback(trial, work: Path):
    """A Keras callback that reports each epoch's validation accuracy to ``trial`` (first the
    epochs a resumed trial already has) and stops training when the pruner says so. Keras
    is imported here, not with the module: the CLI builds its parser from this package."""
    import keras

    from cifar_core.artifacts.work import read_history

    class Report(keras.callbacks.Callback):
        pruned = False

        def on_train_begin(self, logs=None):
            done = read_history(work)
            for step, value in enumerate(done.get("val_accuracy", pd.Series(dtype=float))):
                trial.report(float(value), step)

        def on_epoch_end(self, epoch, logs=None):
            trial.report(float(logs["val_accuracy"]), epoch)
            if trial.should_prune():
                self.pruned = True
                self.model.stop_training = True

    return Report()


def objective_for(root: Path, name: str, info: dict, space: dict, data, verbose: int = 2):
    """The function Optuna calls per trial: train, report, return the best val accuracy."""
    import keras
    import optuna

    from cifar_core.artifacts import work as files
    from cifar_core.data import run_splits
    from cifar_core.errors import StopRequested
    from cifar_core.training import progress
    from cifar_core.training.fitting import resumable_fit

    first = trial_config(info, {})
    splits = run_splits(data, first.val_size, first.seed, first.train_limit)

    def objective(trial) -> float:
        values = suggest(trial, space)
        config = trial_config(info, values)
        trial.set_user_attr("settings", settings(values))
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("began_at", time.time())  # after the claim: what coordination costs
        print(f"trial {trial.number}: {' '.join(settings(values))}", flush=True)
        folder = studies.trial_work_dir(root, name, config.fingerprint())
        report = report_callback(trial, folder)
        start = time.perf_counter()
        progress.batch_at(finished_count(trial.study) + 1)
        try:
            with resumable_fit(
                folder,
                config,
                data,
                splits,
                verbose=verbose,
                callbacks=[report],
                kind="trial",
                run=f"{name} trial {trial.number}",
            ) as result:
                history = files.read_history(result.work)
        except StopRequested:
            trial.set_user_attr("stopped", True)  # failed by Optuna; run_trials queues it again
            raise
        shutil.rmtree(folder, ignore_errors=True)
        trial.set_user_attr("val_curve", [float(v) for v in history["val_accuracy"]])
        trial.set_user_attr("train_curve", [float(v) for v in history["accuracy"]])
        trial.set_user_attr("time_s", float(history["epoch_time_s"].sum()))
        trial.set_user_attr("wall_s", time.perf_counter() - start)
        keras.backend.clear_session()
        trial.set_user_attr("ended_at", time.time())
        if report.pruned:
            raise optuna.TrialPruned()
        return float(history["val_accuracy"].max())

    return objective


def describe(model: str, space: dict, epochs: int, data, root: Path, **options) -> dict:
    """What a study searches and on what: the study.json a new study writes."""
    from cifar_core import runtime

    return {
        "model": model,
        "space": space,
        "epochs": epochs,
        "train_limit": options.get("train_limit"),
        "val_size": options.get("val_size"),
        "settings": list(options.get("settings") or []),
        "seed": options.get("seed", 0),
        "storage": options.get("storage"),  # the PostgreSQL server, without its password
        "sampler": "TPE",
        "pruner": PRUNER,
        "objective": "best validation accuracy over the trial's epochs (the test split is not read)",
        "data": {"source": data.source, "checksum": data.checksum, "kind": data.kind},
        "environment": runtime.environment(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": runtime.command_line(),
    }


SAME_KEYS = ("model", "space", "epochs", "train_limit", "val_size", "settings", "seed", "storage")


def prepare(root: Path, name: str, info: dict) -> dict:
    """Write ``info`` for a new study; for an existing one, check it searches the same
    thing (ConfigError otherwise) and return the stored description."""
    if not (studies.study_dir(root, name) / studies.STUDY_INFO).exists():
        studies.write_study_info(root, name, info)
        return info
    stored = studies.read_study_info(root, name)  # ArtifactError if it is corrupt
    different = [k for k in SAME_KEYS if stored.get(k) != info.get(k)]
    if different or stored["data"]["checksum"] != info["data"]["checksum"]:
        what = ", ".join(different) or "data"
        hint = "resume it as it was, or use another --study"
        raise ConfigError(f"study {name!r} searched another {what}: {hint}")
    return stored


def finished_count(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_trials(
    root: Path, name: str, info: dict, data, trials: int, verbose: int = 2, worker: int = 0, **where
) -> None:
    """Train trials in this process until the study has exactly ``trials`` finished ones
    (other processes, here or on other machines, may be adding to it at the same time: a
    process starts no trial that would overshoot, and waits while others finish theirs, since
    a dead one's trial comes back). The sampler's seed is the study's seed (in study.json)
    plus the worker's index, so one process draws the trials the recorded seed says and two
    do not draw the same ones. ``where``: ``url`` and ``heartbeat`` of a study on PostgreSQL."""
    from cifar_core.errors import StopRequested
    from cifar_core.training import progress

    study = open_study(root, name, seed=info.get("seed", 0) + worker, **where)
    on_server = bool(where.get("url") or stored_url(root, name))
    objective = objective_for(root, name, info, info["space"], data, verbose)
    try:
        with progress.batch("study", name, trials):
            while True:
                finished, running, waiting = _counts(study, on_server)
                if finished >= trials:
                    return
                if waiting or finished + running < trials:
                    study.optimize(objective, n_trials=1, gc_after_trial=True)
                else:  # the rest are being trained elsewhere: wait for them (or their retry)
                    time.sleep(where.get("heartbeat", 5) / 2 if on_server else 2)
    except StopRequested:
        requeue_stopped(study)
        raise
    except Exception as error:  # the study's server lost for longer than a missed beat
        _raise_if_server_lost(error)
        raise


def _counts(study, on_server: bool) -> tuple[int, int, int]:
    """Finished, running and waiting trials, after failing (and queuing again) the trials of
    processes that died: by heartbeat on a server, by pid with a journal file."""
    import optuna
    from optuna.trial import TrialState

    if on_server:
        optuna.storages.fail_stale_trials(study)
    else:
        recover_interrupted(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    return finished, states.count(TrialState.RUNNING), states.count(TrialState.WAITING)


def _raise_if_server_lost(error: Exception) -> None:
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    from cifar_core.database import DatabaseError, reason

    if isinstance(error, (StorageInternalError, SQLAlchemyError)):
        said = reason(error.__cause__ or error)
        raise DatabaseError(
            f"lost the study's server ({said}): start the same command again to carry on"
        ) from None


def requeue_stopped(study) -> list[int]:
    """Queue again, with their values, the trials a stop request ended (Optuna failed
    them): the retry resumes from the trial's checkpoints, as after a kill."""
    from optuna.trial import TrialState

    queued = {t.user_attrs.get("resumes") for t in study.get_trials(deepcopy=False)}
    again = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if trial.user_attrs.get("stopped") and trial.number not in queued and trial.params:
            kept = {k: v for k, v in trial.user_attrs.items() if k == "baseline"}
            study.enqueue_trial(trial.params, user_attrs={"resumes": trial.number, **kept})
            again.append(trial.number)
    return again


def trials_frame(study) -> pd.DataFrame:
    """One row per trial: number, state, value, every parameter, epochs, seconds, curve."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        curve = t.user_attrs.get("val_curve") or []
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "val_accuracy": t.value if t.value is not None else (max(curve) if curve else np.nan),
                **{f"param:{k}": v for k, v in t.params.items()},
                "epochs": len(curve),
                "time_s": t.user_attrs.get("time_s", np.nan),
                "val_curve": curve,
                "resumes": t.user_attrs.get("resumes", t.system_attrs.get("failed_trial")),
                "worker": f"{t.user_attrs['host']}:{t.user_attrs['pid']}" if "host" in t.user_attrs else None,
                "baseline": t.user_attrs.get("baseline") == "preset",  # the preset's own values
            }
        )
    return pd.DataFrame(rows)


def importances(study) -> dict[str, float]:
    """fANOVA importance of each parameter for validation accuracy (Optuna's evaluator,
    over the complete trials), largest first; empty with fewer than two complete trials or
    when they all scored the same (nothing to explain)."""
    import optuna
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except RuntimeError:  # "zero total variance": every complete trial scored the same
        return {}
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def enqueue_baseline(root: Path, name: str, info: dict) -> list[str]:
    """Queue the preset's own values (with the study's fixed settings) as the next trial of
    a study that has none yet, marked ``baseline`` in the trial table; the sampler does the
    rest. A value outside the space is moved to its nearest end. Returns what was done."""
    study = open_study(root, name)
    if study.get_trials(deepcopy=False):
        return [f"study {name} has trials already: --baseline only queues a new study's first trial"]
    preset = config_values(trial_config(info, {}), info["space"])
    values = clamp(preset, info["space"])
    said = [
        f"baseline: the preset's {key}={preset[key]} lies outside the space "
        f"{info['space'][key]}: the baseline trial uses {values[key]}"
        for key in outside(preset, info["space"])
    ]
    study.enqueue_trial(trial_params(values), user_attrs={"baseline": "preset"})
    return [*said, f"baseline: trial 0 trains the preset's values: {' '.join(settings(values))}"]
