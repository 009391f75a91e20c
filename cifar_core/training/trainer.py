"""Train one model from a TrainConfig and record everything as a run folder.

    from cifar_core.config import TrainConfig
    from cifar_core.data import load_cifar10
    from cifar_core.training.trainer import train_model
    run_path = train_model(TrainConfig.from_preset("cnn_bn"), load_cifar10("data/"))

The path of a run: ``train_model`` -> ``fitting.resumable_fit`` (lock, config check, seed,
precision) -> ``fitting.fit`` (the phases of ``phases.plan``) -> ``record.record_run`` ->
``record.finish_run`` (the one look at the test split, the run folder written by
``artifacts.write_run``, its map, its ONNX export). A killed run started again
with the same config resumes from its last finished epoch (``artifacts/work/<run_id>/``);
the run folder appears only when complete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import sys
from pathlib import Path

from cifar_core import artifacts, runtime
from cifar_core.artifacts import work as files
from cifar_core.config import TrainConfig, same_config
from cifar_core.data import Cifar10Data, run_splits
from cifar_core.errors import ArtifactError
from cifar_core.models import builderfile, is_builder_ref, run_name
from cifar_core.training.fitting import resumable_fit
from cifar_core.training.record import record_run


def default_run_id(config: TrainConfig, data: Cifar10Data) -> str:
    """``<model>-<hash of config and data>``: the same command always names the same run
    (a builder file's run: ``<function>-<hash>``, the file's content hashed too)."""
    identity = {"config": config.non_default(), "data": data.checksum}
    if is_builder_ref(config.model):
        identity["source_sha256"] = builderfile.read(config.model).sha256
    blob = json.dumps(identity, sort_keys=True)
    return f"{run_name(config.model)}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def find_finished_run(root: Path, config: TrainConfig, data: Cifar10Data) -> str | None:
    """A complete run in ``root`` made with ``config`` on the same data, whatever its id.

    Run ids hash the config, and a config written by an older version of the code lacks
    the fields added since; comparing configs keeps those runs when ``run --all`` resumes.
    A config that leaves its precision to ``auto`` is finished by a run of the same recipe
    in any precision (precision changes a run's speed, not what it trains).
    """
    root = artifacts.artifacts_root(root)
    exact = default_run_id(config, data)
    if artifacts.run_exists(root, exact):
        return exact
    if is_builder_ref(config.model):
        return None  # a builder file's runs are found by their id, which hashes the file
    for run_id in artifacts.list_runs(root):
        if not run_id.startswith(f"{config.model}-"):
            continue
        try:
            manifest = artifacts.read_manifest(root, run_id)
        except ArtifactError:
            continue
        wanted = config
        if config.precision == "auto" and manifest["config"].get("precision"):
            wanted = dataclasses.replace(config, precision=manifest["config"]["precision"])
        if (
            manifest["model"] == config.model
            and manifest["data"]["checksum"] == data.checksum
            and same_config(manifest["config"], wanted)
        ):
            return run_id
    return None


def train_model(
    config: TrainConfig,
    data: Cifar10Data,
    root: Path | None = None,
    run_id: str | None = None,
    strategy_name: str = "default",
    verbose: int | None = None,
    origin: dict | None = None,
    lean: bool = False,
    export: bool = True,
) -> Path:
    """Train ``config`` on ``data``, write ``root/runs/<run_id>/`` and return its path.

    ``origin`` (into the manifest as it is): ``{"ladder": {ladder, index, rung, change}}``
    for a ladder's rung, ``{"study": {study, trial, val_accuracy, settings}}`` for a study's
    retrained best; none for a run of the zoo. ``lean`` stores the run small:
    mistakes-only thumbnails, no model file and no map of the test set. ``export``: the ONNX
    export after the run is written (a lean run has no model to export).

    Raises:
        artifacts.RunExistsError: the run is already complete.
        artifacts.RunLockedError: another process is training the same run id.
    """
    root = artifacts.artifacts_root(root)
    # A builder file is read once, now: the run records the file it started from.
    own = builderfile.read(config.model) if is_builder_ref(config.model) else None
    run_id = artifacts.check_run_id(run_id or default_run_id(config, data))
    if artifacts.run_exists(root, run_id):
        raise artifacts.RunExistsError(
            f"run {run_id!r} is already complete in {root}: pass --run-id to train another"
        )
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    env = runtime.environment()  # at the start: the git commit of the code that trains
    strategy = runtime.make_strategy(strategy_name)
    how_trained = {
        "strategy": strategy_name,
        "num_replicas": strategy.num_replicas_in_sync,
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": env,
        "hardware": runtime.hardware_label(env),
        **({"source": own.record} if own else {}),
        **_recipe_of(config),
        **(origin or {}),
    }
    # Non-chief multi-workers keep their own checkpoints and write no run.
    chief = runtime.is_chief(strategy)
    lock_id = run_id if chief else f"{run_id}.worker{runtime.task_index(strategy)}"
    # Bad splits fail here, before anything is written.
    splits = run_splits(data, config.val_size, config.seed, config.train_limit)
    work = artifacts.work_dir(root, lock_id)
    kind = "rung" if artifacts.run_kind(origin or {}) == "ladder" else "train"
    with resumable_fit(work, config, data, splits, strategy, verbose, kind=kind, run=run_id) as result:
        result.writer.write("recording", force=True)  # scoring the test split, writing the run
        how_trained.update(precision=result.precision, xla=result.xla, resumed=result.resumed)
        if chief:
            sources = {own.path.name: own.source} if own else {}
            record_run(root, run_id, config, data, splits, result, how_trained, lean, sources, export)
        files.clear(work)
    shutil.rmtree(work, ignore_errors=True)
    return artifacts.run_dir(root, run_id)


def _recipe_of(config: TrainConfig) -> dict:
    """The manifest's ``recipe``: the named recipe ``config`` is and what it changes (a
    builder file's model has none)."""
    from cifar_core import recipes

    found = recipes.identify(config)
    return {"recipe": found.to_dict()} if found else {}
