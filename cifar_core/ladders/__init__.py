"""Ladders: a write-up's step-by-step improvement study, one run per rung.

    python -m cifar_core ladder list
    python -m cifar_core ladder run seed000 --data-dir ../shared/data/cifar10-jpeg [--dry-run]
    python -m cifar_core ladder table seed004     # this machine's rungs beside the write-up's
(the command is ``cifar_core/commands/ladder.py``).

Every rung trains as an ordinary run (resumable; a finished rung is kept) on the same split
as the zoo, its manifest naming the ladder, the rung and its change. The Ladder page reads
them back through ``ladder_table``.
"""

from __future__ import annotations

from cifar_core.errors import ConfigError
from cifar_core.ladders.declared import LADDERS
from cifar_core.ladders.model import Ladder, Rung, parse_rungs
from cifar_core.ladders.results import (
    correct_on_test,
    idle_reason,
    ladder_table,
    mcnemar,
    rung_members,
    rung_runs,
)

__all__ = [
    "LADDERS",
    "Ladder",
    "Rung",
    "correct_on_test",
    "get_ladder",
    "idle_reason",
    "keep_finished_rung",
    "ladder_table",
    "mcnemar",
    "parse_rungs",
    "rung_members",
    "rung_runs",
    "train_rung",
    "trim_thumbnails",
]


def get_ladder(name: str) -> Ladder:
    try:
        return LADDERS[name]
    except KeyError:
        raise ConfigError(f"unknown ladder {name!r}; ladders: {', '.join(LADDERS)}") from None


def trim_thumbnails(root, run_id: str, most: int) -> int:
    """Keep the first ``most`` mistakes' thumbnails of a finished rung (what a rung trained
    now stores); returns how many were dropped."""
    from cifar_core import artifacts, evaluate

    run = artifacts.read_run(root, run_id)
    wrong = evaluate.mistakes_first(run.predictions["y_true"], run.predictions["y_pred"], run.class_names)
    return artifacts.keep_thumbnails(run.path / artifacts.THUMBNAILS, wrong[:most])


def keep_finished_rung(root, ladder: Ladder, index: int, config, seed: int = 0) -> str | None:
    """None when the rung has no finished run; else a note on the run kept ("" or what was
    said of it), after trimming it to what a rung trained now stores (its first mistakes'
    thumbnails, no model file)."""
    from cifar_core import artifacts
    from cifar_core.config import same_config
    from cifar_core.training.record import LEAN_THUMBNAILS

    run_id = ladder.run_id(index, seed)
    if not artifacts.run_exists(root, run_id):
        return None
    same = same_config(artifacts.read_manifest(root, run_id)["config"], config)
    note = "" if same else " (trained with another config: delete its folder to retrain it)"
    dropped = trim_thumbnails(root, run_id, LEAN_THUMBNAILS)
    note += f" ({dropped} thumbnails dropped: a rung keeps {LEAN_THUMBNAILS})" if dropped else ""
    freed = artifacts.drop_model(root, run_id)
    return note + (f" (model file dropped, {freed / 1e6:.1f} MB: a rung keeps none)" if freed else "")


def rung_job(ladder: Ladder, index: int, config, seed: int = 0):
    """One rung as a job (``ladder run --queue``): stored lean, its manifest naming the
    ladder (and, for ``ladder run --seeds``, its seed: ``config`` carries it, the run id ends
    ``-s<seed>``)."""
    from cifar_core.training.jobs import Job

    origin = {"ladder": ladder.record(index)}
    return Job(config, lean=True, run_id=ladder.run_id(index, seed), origin=origin)


def train_rung(ladder: Ladder, index: int, config, data, root, seed: int = 0):
    """Train one rung as an ordinary run (``rung_job``)."""
    from cifar_core.training.trainer import train_model

    job = rung_job(ladder, index, config, seed)
    return train_model(job.config, data, root, run_id=job.run_id, origin=job.origin, lean=job.lean)
