"""Runs to train, one job per model and seed, and the one loop that trains them.

    jobs = plan(["baseline_cnn", "fast"], seeds=[0, 1, 2], settings=["epochs=12"])
    train_jobs(jobs, data, root)        # skips finished runs; --seeds' first seed in full

A job is a run: its id is its config's and data's hash (``trainer.default_run_id``), so a job
whose run is finished is kept, and one whose training was interrupted resumes from its
work folder's checkpoints. ``train`` and ``run`` (and the ladders, for their rungs) plan and
train their runs here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cifar_core.config import TrainConfig
from cifar_core.data import Cifar10Data
from cifar_core.errors import ConfigError


@dataclass(frozen=True)
class Job:
    config: TrainConfig
    lean: bool = False  # an extra seed of a group: no model file, no map
    run_id: str | None = None  # default: the config's and data's hash
    keep_finished: bool = True  # False: a finished run is an error (``train`` without --seeds)
    seeded: bool = False  # one of a --seeds group: its label names the seed
    origin: dict | None = None  # into the manifest: a ladder's rung (trainer.train_model)

    @property
    def label(self) -> str:
        if self.origin and "ladder" in self.origin:  # a rung: its run id names ladder, rung, seed
            return self.run_id or self.config.model
        return f"{self.config.model} seed {self.config.seed}" if self.seeded else self.config.model


def plan(
    models: list[str],
    settings: list[str] | None = None,
    overrides: dict | None = None,
    seeds: list[int] | None = None,
    run_id: str | None = None,
    keep_finished: bool = True,
) -> list[Job]:
    """One job per model (and per seed of ``seeds``: the first seed's run in full, the others
    lean). Without ``seeds`` a model trains once, with the preset's seed or ``overrides``';
    ``keep_finished=False`` makes a finished run an error rather than a job to skip, unless
    it is one of ``seeds``."""
    overrides = dict(overrides or {})
    if seeds and overrides.get("seed") is not None:
        raise ConfigError("--seed and --seeds: give one of them")
    if run_id and (len(models) > 1 or (seeds and len(seeds) > 1)):
        raise ConfigError("--run-id names one run: leave it out with --seeds or several models")
    jobs = []
    for name in models:
        for i, seed in enumerate(seeds or [None]):
            extra = {} if seed is None else {"seed": seed}
            config = TrainConfig.from_preset(name, settings, **{**overrides, **extra})
            keep = keep_finished or seed is not None
            jobs.append(Job(config, lean=i > 0, run_id=run_id, keep_finished=keep, seeded=seed is not None))
    return jobs


def finished_run(job: Job, data: Cifar10Data, root: Path) -> str | None:
    """The finished run of ``job`` in ``root``, if there is one."""
    from cifar_core import artifacts
    from cifar_core.training.trainer import find_finished_run

    if job.run_id:
        return job.run_id if artifacts.run_exists(root, job.run_id) else None
    return find_finished_run(root, job.config, data)


def train_jobs(
    jobs: list[Job],
    data: Cifar10Data,
    root: Path,
    *,
    strategy_name: str = "default",
    export: bool = True,
    dry_run: bool = False,
    batch_label: str | None = None,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """Train every job whose run is not finished (``dry_run``: only say which would train);
    returns the folders of the runs trained. With ``batch_label`` the trainings say in their
    progress files that they are item k of a batch (the Training now page shows it)."""
    from cifar_core.training import progress
    from cifar_core.training.trainer import default_run_id, train_model

    trained = []
    in_batch = progress.batch("zoo", batch_label, len(jobs)) if batch_label else contextlib.nullcontext()
    with in_batch as batch:
        for i, job in enumerate(jobs, 1):
            where = f"[{i}/{len(jobs)}] " if len(jobs) > 1 or batch_label else ""
            finished = finished_run(job, data, root) if job.keep_finished else None
            if finished:
                say(f"{where}{job.label}: finished run {finished} kept")
                continue
            run_id = job.run_id or default_run_id(job.config, data)
            if dry_run:
                say(f"{where}{job.label}: would train run {run_id}" + (" (lean)" if job.lean else ""))
                continue
            if where:
                say(f"{where}{job.label}: training run {run_id}")
            if batch is not None:
                batch.at(i, [{"label": j.label, "model": j.config.model} for j in jobs[i:]])
            path = train_model(
                job.config,
                data,
                root,
                run_id=run_id,
                strategy_name=strategy_name,
                lean=job.lean,
                export=export,
                origin=job.origin,
            )
            trained.append(path)
    return trained
