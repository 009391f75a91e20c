"""Run folders and their schema (version 2): the only place that knows a run's file names.

A run is written into a hidden temporary folder and renamed into ``runs/`` in one step
when complete, so readers never see half a run. ``read_run`` validates every file against
the schema below and raises ArtifactError naming the first bad one; there is no reader for
older formats: ``python -m cifar_core migrate`` converts them once (migrate.py).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cifar_core.artifacts.codecs import decode_thumbnails
from cifar_core.artifacts.schema import (
    EVALUATION_SCHEMA,
    HISTORY_COLUMNS,
    METRICS_SCHEMA,
    read_csv,
    read_json,
    read_npz,
    require,
    validate_manifest,
    validate_predictions,
    validate_schema,
)
from cifar_core.errors import ArtifactError

RUNS = "runs"
MANIFEST = "manifest.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
PER_CLASS = "per_class.csv"
CONFUSION = "confusion_matrix.csv"
PREDICTIONS = "predictions.npz"
THUMBNAILS = "thumbnails.npz"
MODEL = "model.keras"
EVALUATIONS = "evaluations"
SOURCE = "source"  # a copy of the user's builder file (never imported unless trusted)
FILES = (MANIFEST, HISTORY, METRICS, PER_CLASS, CONFUSION, PREDICTIONS, THUMBNAILS, MODEL)
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TEMP_PREFIX = ".incomplete-"


@dataclass
class Run:
    """A complete, validated run. ``model_path`` is not loaded here (see inference.py)."""

    run_id: str
    path: Path
    manifest: dict[str, Any]
    history: pd.DataFrame
    metrics: dict[str, Any]
    per_class: pd.DataFrame
    confusion: np.ndarray
    # probs (N, K) float32 (stored as float16), y_pred (N,) the argmax of the float32
    # probabilities, y_true (N,), test_ids (N,)
    predictions: dict[str, np.ndarray]
    # index (M,), images (M, 32, 32, 3) uint8 (stored as JPEGs)
    thumbnails: dict[str, np.ndarray]
    # name -> the result of ``evaluate --name NAME`` on other data (evaluations/NAME.json)
    evaluations: dict[str, dict] = field(default_factory=dict)
    # set by load_runs when another run of the same kind (zoo or ladder) has the same label
    label_shared: bool = False

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def study(self) -> str | None:
        """The hyper-parameter study whose best trial this run retrains, if any."""
        return (self.manifest.get("study") or {}).get("study")

    @property
    def has_model(self) -> bool:
        """Whether the run stored its model (a lean run, a ladder's rung, does not)."""
        return bool(self.manifest.get("model_file", True))

    @property
    def code_files(self) -> tuple[Path, ...]:
        """The user's own code stored with the run (``source/*.py``): imported only when
        the person trusts it (``--trust-code``, the dashboard's switch)."""
        folder = self.path / SOURCE
        return tuple(sorted(folder.glob("*.py"))) if folder.is_dir() else ()

    @property
    def recipe_label(self) -> str | None:
        """The recipe the run recorded and what it changed ("fast:muon8 + epochs=12"); None
        for a run that records none (your file's or your own fit's, or an older run before
        ``python -m cifar_core migrate``)."""
        from cifar_core.recipes import Recipe

        recorded = self.manifest.get("recipe")
        return Recipe(recorded["name"], recorded.get("changes") or {}).label if recorded else None

    @property
    def label(self) -> str:
        """How tables, charts and pages name the run: its recipe (``fast``, ``cnn_bn:tuned``;
        what the run changed is in ``recipe_label`` and the Leaderboard's "Made by"; a
        study's retrained best that is no named recipe: "cnn_bn (tuned)"), a builder file's
        function, or its model (a ladder's rung, a run without a recorded recipe), followed
        by its run id when ``load_runs`` found another run with the same name (pages key
        tables, legends and heatmaps by it)."""
        source = self.manifest.get("source") or {}
        recipe = self.manifest.get("recipe")
        if source.get("kind") == "builder_file":
            label = f"{source['function']} ({source['file']})"
        elif recipe and not self.manifest.get("ladder") and not (self.study and recipe.get("changes")):
            label = recipe["name"]
        else:
            label = f"{self.model} (tuned)" if self.study else self.model
        return f"{label} [{self.run_id}]" if self.label_shared else label

    @property
    def base_label(self) -> str:
        """The label without the run id that tells apart runs sharing it (a seed group's name)."""
        label = self.label
        suffix = f" [{self.run_id}]"
        return label[: -len(suffix)] if label.endswith(suffix) else label


def artifacts_root(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit``, else ``$CIFAR_ARTIFACTS``, else ``artifacts/`` in the project."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get("CIFAR_ARTIFACTS"):
        return Path(os.environ["CIFAR_ARTIFACTS"]).expanduser().resolve()
    return (Path(__file__).resolve().parents[2] / "artifacts").resolve()


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe folder name; ArtifactError otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        raise ArtifactError(
            f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' (no path parts)"
        )
    return run_id


def run_dir(root: Path, run_id: str) -> Path:
    runs = (Path(root) / RUNS).resolve()
    path = (runs / check_run_id(run_id)).resolve()
    if path.parent != runs:  # belt and braces against symlink tricks
        raise ArtifactError(f"run id {run_id!r} points outside {runs}")
    return path


def run_exists(root: Path, run_id: str) -> bool:
    return (run_dir(root, run_id) / MANIFEST).exists()


def list_runs(root: Path) -> list[str]:
    """Ids of the run folders in ``root/runs`` (complete ones: temporary folders are hidden)."""
    runs = Path(root) / RUNS
    if not runs.is_dir():
        return []
    return sorted(
        p.name
        for p in runs.iterdir()
        if p.is_dir() and not p.name.startswith(".") and RUN_ID_PATTERN.match(p.name)
    )


def runs_signature(root: Path) -> tuple:
    """(run id, (mtime, size) of each file) for every run: changes when any run changes."""
    rows = []
    for run_id in list_runs(root):
        folder = Path(root) / RUNS / run_id
        files = [folder / name for name in FILES]
        if (folder / EVALUATIONS).is_dir():
            files += sorted((folder / EVALUATIONS).glob("*.json"))
        stats = []
        for file in files:
            try:
                stat = file.stat()
                stats.append((file.name, stat.st_mtime_ns, stat.st_size))
            except OSError:
                stats.append((file.name, None))
        rows.append((run_id, tuple(stats)))
    return tuple(rows)


def load_runs(root: Path) -> tuple[list[Run], dict[str, str]]:
    """Every readable run, and for each unreadable one the reason."""
    good, bad = [], {}
    for run_id in list_runs(root):
        try:
            good.append(read_run(root, run_id))
        except ArtifactError as error:
            bad[run_id] = str(error)
    names = Counter((is_ladder_run(run), run.label) for run in good)
    for run in good:
        run.label_shared = names[(is_ladder_run(run), run.label)] > 1
    return good, bad


def run_kind(manifest: dict) -> str:
    """What kind of run a manifest (or a training's origin) describes, decided here only:
    ``builder_file`` (your file's function), ``recorded`` (your own ``fit``), ``ladder`` (a
    ladder's rung), ``study`` (a study's retrained best) or ``zoo`` (a model of the zoo)."""
    source = manifest.get("source") or {}
    if source.get("kind") in ("builder_file", "recorded"):
        return source["kind"]
    if manifest.get("ladder"):
        return "ladder"
    return "study" if manifest.get("study") else "zoo"


def is_ladder_run(run: Run) -> bool:
    """A rung of a ladder (cifar_core.ladders): shown on the Ladder page, not in the zoo."""
    return run_kind(run.manifest) == "ladder"


def read_manifest(root: Path, run_id: str) -> dict[str, Any]:
    """A run's manifest alone (validated), without reading its other files."""
    path = run_dir(root, run_id) / MANIFEST
    manifest = read_json(path)
    validate_manifest(path, manifest)
    return manifest


# --- reading -------------------------------------------------------------------------------


def read_run(root: Path, run_id: str) -> Run:
    """Load and validate run ``run_id``; ArtifactError names the first bad file."""
    path = run_dir(root, run_id)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such run")
    return read_run_folder(path, run_id)


def read_run_folder(path: Path, run_id: str) -> Run:
    """Load and validate the run folder at ``path`` (``read_run`` finds it by id)."""
    manifest = read_json(path / MANIFEST)
    validate_manifest(path / MANIFEST, manifest)
    k = len(manifest["class_names"])

    history = read_csv(path / HISTORY)
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    require(not missing and len(history) > 0, path / HISTORY, f"needs at least one row and columns {missing}")
    metrics = read_json(path / METRICS)
    validate_schema(path / METRICS, metrics, METRICS_SCHEMA)
    require(0 <= metrics["test"]["accuracy"] <= 1, path / METRICS, "test.accuracy must be in [0, 1]")
    per_class = read_csv(path / PER_CLASS)
    require(
        {"class", "precision", "recall", "f1", "support"} <= set(per_class.columns) and len(per_class) == k,
        path / PER_CLASS,
        f"needs {k} rows of class/precision/recall/f1/support",
    )
    confusion = read_csv(path / CONFUSION, index_col=0).to_numpy()
    require(
        confusion.shape == (k, k) and np.issubdtype(confusion.dtype, np.integer),
        path / CONFUSION,
        f"needs a {k}x{k} integer matrix, got {confusion.shape}",
    )
    predictions = read_npz(path / PREDICTIONS)
    validate_predictions(path / PREDICTIONS, predictions, k, confusion)
    raw = read_npz(path / THUMBNAILS)
    thumbnails = {"index": raw.get("index", np.empty(0)), "images": decode_thumbnails(path / THUMBNAILS, raw)}
    n = len(predictions["y_true"])
    index = thumbnails["index"]
    require(
        index.ndim == 1
        and len(index) == len(thumbnails["images"])
        and (index.size == 0 or (index.min() >= 0 and index.max() < n)),
        path / THUMBNAILS,
        "needs index (M,) into the test set and one image per index",
    )
    model = path / MODEL
    if manifest.get("model_file", True):  # a lean run (a ladder's rung) is stored without one
        require(model.is_file(), model, "missing")
        require(zipfile.is_zipfile(model), model, "not a .keras (zip) file")
    evaluations = {}
    if (path / EVALUATIONS).is_dir():
        for file in sorted((path / EVALUATIONS).glob("*.json")):
            record = read_json(file)
            validate_schema(file, record, EVALUATION_SCHEMA)
            evaluations[file.stem] = record
    return Run(
        run_id, path, manifest, history, metrics, per_class, confusion, predictions, thumbnails, evaluations
    )
