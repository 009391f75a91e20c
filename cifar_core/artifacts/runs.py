"""Run folders and their schema (version 2): the only place that knows a run's file names.

A run is written into a hidden temporary folder and renamed into ``runs/`` in one step
when complete, so readers never see half a run. ``read_run`` validates every file against
the schema below and raises ArtifactError naming the first bad one; there is no reader for
older formats: ``python -m cifar_core migrate`` converts them once (migrate.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import re
import shutil
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cifar_core.artifacts.codecs import decode_thumbnails, thumbnail_bytes
from cifar_core.artifacts.schema import (
    EVALUATION_SCHEMA,
    HISTORY_COLUMNS,
    METRICS_SCHEMA,
    SCHEMA_VERSION,
    read_csv,
    read_json,
    read_npz,
    require,
    validate_manifest,
    validate_predictions,
    validate_schema,
)
from cifar_core.errors import ArtifactError, RunExistsError
from cifar_core.fileio import atomic_write, npz_bytes, write_json

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
    def label(self) -> str:
        """How tables, charts and pages name the run: its model, marked "(tuned)" when it is a
        study's retrained best (so it and the preset's run of that model stay apart), and
        followed by its run id when ``load_runs`` found another run with the same name (two
        runs of one model: pages key tables, legends and heatmaps by this label)."""
        source = self.manifest.get("source") or {}
        name = (
            f"{source['function']} ({source['file']})" if source.get("kind") == "builder_file" else self.model
        )
        label = f"{name} (tuned)" if self.study else name
        return f"{label} [{self.run_id}]" if self.label_shared else label


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


def is_ladder_run(run: Run) -> bool:
    """A rung of a ladder (cifar_core.ladders): shown on the Ladder page, not in the zoo."""
    return bool(run.manifest.get("ladder"))


def read_manifest(root: Path, run_id: str) -> dict[str, Any]:
    """A run's manifest alone (validated), without reading its other files."""
    path = run_dir(root, run_id) / MANIFEST
    manifest = read_json(path)
    validate_manifest(path, manifest)
    return manifest


# --- writing -------------------------------------------------------------------------------


def write_run(
    root: Path,
    run_id: str,
    *,
    manifest: dict[str, Any],
    history: pd.DataFrame,
    metrics: dict[str, Any],
    per_class: list[dict],
    confusion: np.ndarray,
    predictions: dict[str, np.ndarray],
    thumbnails: dict[str, np.ndarray],
    save_model: Callable[[Path], None] | None,
    sources: dict[str, bytes] | None = None,
) -> Path:
    """Write a complete run folder atomically and return its path.

    Everything goes to ``runs/.incomplete-<id>-<random>/`` first, which is then renamed to
    ``runs/<id>``. If a run with that id appeared meanwhile, RunExistsError and nothing changes.
    ``predictions`` holds float32 ``probs``, ``y_true`` and ``test_ids``; ``y_pred`` is
    their argmax, stored beside the float16-rounded probabilities (which can tie).
    ``save_model`` None stores the run without a model file (a lean run: the manifest says
    ``model_file: false``; pages that need a model leave it out).
    ``sources`` (file name -> bytes) are the user's own code the run was made from, kept
    in ``source/`` as text: nothing in the workbench imports them unless told to.
    """
    final = run_dir(root, run_id)
    if final.exists():
        raise RunExistsError(f"{final}: a run with this id already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    with building(final.parent, run_id) as tmp:
        manifest = {**manifest, "schema_version": SCHEMA_VERSION, "run_id": run_id}
        if save_model is None:
            manifest["model_file"] = False
        validate_manifest(tmp / MANIFEST, manifest)
        write_json(tmp / MANIFEST, manifest)
        atomic_write(tmp / HISTORY, history.to_csv(index=False).encode())
        write_json(tmp / METRICS, metrics)
        atomic_write(tmp / PER_CLASS, pd.DataFrame(per_class).to_csv(index=False).encode())
        names = manifest["class_names"]
        frame = pd.DataFrame(np.asarray(confusion, dtype=np.int64), index=names, columns=names)
        atomic_write(tmp / CONFUSION, frame.to_csv(index_label="true\\predicted").encode())
        atomic_write(tmp / PREDICTIONS, predictions_bytes(predictions))
        atomic_write(tmp / THUMBNAILS, thumbnail_bytes(thumbnails["index"], thumbnails["images"]))
        if save_model is not None:
            save_model(tmp / MODEL)
        for name, content in (sources or {}).items():  # the user's code, kept as text
            (tmp / SOURCE).mkdir(exist_ok=True)
            atomic_write(tmp / SOURCE / Path(name).name, content)
        try:
            os.rename(tmp, final)  # atomic; fails if another writer got there first
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise RunExistsError(f"{final}: another process finished this run first") from None
            raise
    return final


@contextlib.contextmanager
def building(parent: Path, name: str, copy_of: Path | None = None) -> Iterator[Path]:
    """A temporary folder ``<parent>/.incomplete-<name>-<random>`` (empty, or a copy of
    ``copy_of``) to build a run in; removed when the block fails."""
    tmp = parent / f"{TEMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
    if copy_of is None:
        tmp.mkdir()
    else:
        shutil.copytree(copy_of, tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def predictions_bytes(predictions: dict[str, np.ndarray]) -> bytes:
    probs = np.asarray(predictions["probs"])
    y_pred = predictions.get("y_pred")
    return npz_bytes(
        probs=probs.astype(np.float16),
        # the argmax before float16 rounding, which can tie two classes
        y_pred=np.asarray(probs.argmax(1) if y_pred is None else y_pred).astype(np.int16),
        y_true=np.asarray(predictions["y_true"], dtype=np.int16),
        test_ids=np.asarray(predictions["test_ids"]).astype(str),
    )


def write_evaluation(root: Path, run_id: str, name: str, result: dict[str, Any]) -> Path:
    """Store the result of evaluating a saved run on other data as evaluations/<name>.json."""
    folder = run_dir(root, run_id) / EVALUATIONS
    folder.mkdir(exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "evaluation"
    record = {
        **result,
        "name": safe,
        "evaluated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    validate_schema(folder / f"{safe}.json", record, EVALUATION_SCHEMA)
    return write_json(folder / f"{safe}.json", record)


def drop_model(root: Path, run_id: str) -> int:
    """Store a finished run without its model file (as a lean run is written); returns the
    bytes freed (0 when it had none). The manifest says so first, so a run never claims a
    file it lacks."""
    path = run_dir(root, run_id)
    manifest = read_json(path / MANIFEST)
    model = path / MODEL
    if not manifest.get("model_file", True) and not model.exists():
        return 0
    size = model.stat().st_size if model.exists() else 0
    write_json(path / MANIFEST, {**manifest, "model_file": False})
    model.unlink(missing_ok=True)
    return size


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
