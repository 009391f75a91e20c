"""Hyper-parameter studies on disk: ``studies/<name>/`` beside ``runs/``.

    studies/<name>/study.json    what was searched: model, space, epochs, data, seed, versions
    studies/<name>/journal.log   Optuna's journal: every trial, its params, per-epoch
                                 validation accuracy, state and times (append-only); a study
                                 on PostgreSQL has none: study.json's "storage" names it
    studies/<name>/importances.json  the parameters' fANOVA importances, as of N trials
    work/studies/<name>/<key>/   a trial in training (checkpoints; removed when it ends)

The journal is Optuna's own file storage (``JournalFileBackend``): several processes may
append to it at once, and a study reopened from it resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from cifar_core.artifacts.reading import check_run_id
from cifar_core.artifacts.work import WORK
from cifar_core.errors import ArtifactError
from cifar_core.fileio import write_json

STUDIES = "studies"
STUDY_INFO = "study.json"
JOURNAL = "journal.log"
IMPORTANCES = "importances.json"  # computed by ``tune`` at its end (fANOVA takes seconds)


def study_dir(root: Path, name: str) -> Path:
    studies = (Path(root) / STUDIES).resolve()
    path = (studies / check_run_id(name)).resolve()
    if path.parent != studies:
        raise ArtifactError(f"study name {name!r} points outside {studies}")
    return path


def journal_path(root: Path, name: str) -> Path:
    return study_dir(root, name) / JOURNAL


def trial_work_dir(root: Path, name: str, key: str) -> Path:
    return Path(root) / WORK / STUDIES / check_run_id(name) / check_run_id(key)


def list_studies(root: Path) -> list[str]:
    """Names of the studies in ``root`` that have both their files, sorted."""
    folder = Path(root) / STUDIES
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / STUDY_INFO).is_file() and _has_trials(p))


def _has_trials(folder: Path) -> bool:
    """A journal file, or a study.json that names the server holding its trials."""
    if (folder / JOURNAL).is_file():
        return True
    try:
        return bool(json.loads((folder / STUDY_INFO).read_text()).get("storage"))
    except (OSError, ValueError, AttributeError):
        return False


def write_study_info(root: Path, name: str, info: dict) -> Path:
    folder = study_dir(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    return write_json(folder / STUDY_INFO, info)


def read_study_info(root: Path, name: str) -> dict:
    path = study_dir(root, name) / STUDY_INFO
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such study") from None
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{path}: unreadable ({type(error).__name__})") from None
    if not isinstance(info, dict) or not {"model", "space", "epochs"} <= set(info):
        raise ArtifactError(f"{path}: not a study description (needs model, space, epochs)")
    return info


def write_importances(root: Path, name: str, complete_trials: int, importances: dict) -> Path:
    value = {"complete_trials": complete_trials, **importances}
    return write_json(study_dir(root, name) / IMPORTANCES, value)


def read_importances(root: Path, name: str, complete_trials: int) -> dict | None:
    """The stored importances, largest first, if they were computed from ``complete_trials``
    trials (None otherwise, or when the file is not a map of names to numbers)."""
    try:
        stored = json.loads((study_dir(root, name) / IMPORTANCES).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.pop("complete_trials", None) != complete_trials:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in stored.values()):
        return None
    return dict(sorted(stored.items(), key=lambda kv: -kv[1]))  # the file's keys are sorted by name
