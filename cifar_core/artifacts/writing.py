"""Writing run folders: a complete run appears in one rename, or not at all.

write_run(root, run_id, RunContents(manifest=..., ..., save_model=...))   # atomically, validated first
with building(parent, name) as tmp: ...                       # a folder removed on failure
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cifar_core.artifacts.codecs import thumbnail_bytes
from cifar_core.artifacts.reading import (
    CONFUSION,
    EVALUATIONS,
    HISTORY,
    MANIFEST,
    METRICS,
    MODEL,
    PER_CLASS,
    PREDICTIONS,
    SOURCE,
    TEMP_PREFIX,
    THUMBNAILS,
    run_dir,
)
from cifar_core.artifacts.schema import (
    EVALUATION_SCHEMA,
    ROBUSTNESS_SCHEMA,
    SCHEMA_VERSION,
    read_json,
    validate_manifest,
    validate_schema,
)
from cifar_core.errors import ArtifactError, RunExistsError
from cifar_core.fileio import atomic_write, npz_bytes, write_json


@dataclass
class RunContents:
    """Everything a run folder holds, in memory, before ``write_run`` stores it.

    ``predictions`` holds float32 ``probs``, ``y_true`` and ``test_ids``; ``y_pred`` is
    their argmax, stored beside the float16-rounded probabilities (which can tie).
    ``save_model`` None stores the run without a model file (a lean run: the manifest says
    ``model_file: false``; pages that need a model leave it out).
    ``sources`` (file name -> bytes) are the user's own code the run was made from, kept
    in ``source/`` as text: nothing in the workbench imports them unless told to.
    """

    manifest: dict[str, Any]
    history: pd.DataFrame
    metrics: dict[str, Any]
    per_class: list[dict]
    confusion: np.ndarray
    predictions: dict[str, np.ndarray]
    thumbnails: dict[str, np.ndarray]
    save_model: Callable[[Path], None] | None = None
    sources: dict[str, bytes] | None = None


def write_run(root: Path, run_id: str, contents: RunContents) -> Path:
    """Write a complete run folder atomically and return its path.

    Everything goes to ``runs/.incomplete-<id>-<random>/`` first, which is then renamed to
    ``runs/<id>``. If a run with that id appeared meanwhile, RunExistsError and nothing changes.
    """
    c = contents
    manifest, history, save_model = c.manifest, c.history, c.save_model
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
        write_json(tmp / METRICS, c.metrics)
        atomic_write(tmp / PER_CLASS, pd.DataFrame(c.per_class).to_csv(index=False).encode())
        names = manifest["class_names"]
        frame = pd.DataFrame(np.asarray(c.confusion, dtype=np.int64), index=names, columns=names)
        atomic_write(tmp / CONFUSION, frame.to_csv(index_label="true\\predicted").encode())
        atomic_write(tmp / PREDICTIONS, predictions_bytes(c.predictions))
        atomic_write(tmp / THUMBNAILS, thumbnail_bytes(c.thumbnails["index"], c.thumbnails["images"]))
        if save_model is not None:
            save_model(tmp / MODEL)
        for name, content in (c.sources or {}).items():  # the user's code, kept as text
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


def record_export(root: Path, run_id: str, fmt: str, report: dict[str, Any]) -> None:
    """Store an export's parity report in the run's manifest (``exports.<fmt>``), atomically.
    The file is named without its folder: the cache folder is this machine's."""
    path = run_dir(root, run_id)
    manifest = read_json(path / MANIFEST)
    exports = {**(manifest.get("exports") or {}), fmt: {**report, "file": Path(report["file"]).name}}
    write_json(path / MANIFEST, {**manifest, "exports": exports})


ROBUSTNESS = "robustness"  # robustness/n<N>.json: CIFAR-10-C accuracy on N test images


def robustness_path(root: Path, run_id: str, images: int) -> Path:
    return run_dir(root, run_id) / ROBUSTNESS / f"n{int(images)}.json"


def write_robustness(root: Path, run_id: str, result: dict[str, Any], **arrays: np.ndarray) -> Path:
    """Store a run's accuracy under the corruptions, one pair of files per number of images:
    ``n<N>.json`` (the figures) and ``n<N>.npz`` (``arrays``: the test indices, labels and
    every prediction, corruption x severity x image), the arrays first."""
    path = robustness_path(root, run_id, result["images"])
    validate_schema(path, result, ROBUSTNESS_SCHEMA)
    path.parent.mkdir(exist_ok=True)
    if arrays:
        atomic_write(path.with_suffix(".npz"), npz_bytes(**arrays))
    return write_json(path, result)


def read_robustness_arrays(root: Path, run_id: str, images: int) -> dict[str, np.ndarray] | None:
    """The predictions behind ``n<N>.json`` (None if absent or unreadable)."""
    path = robustness_path(root, run_id, images).with_suffix(".npz")
    try:
        with np.load(path, allow_pickle=False) as found:
            return {k: found[k] for k in found.files}
    except (OSError, ValueError):
        return None


def read_robustness(root: Path, run_id: str) -> dict[int, dict]:
    """The run's stored robustness results by number of images (unreadable files skipped)."""
    folder = run_dir(root, run_id) / ROBUSTNESS
    found = {}
    for file in sorted(folder.glob("n*.json")) if folder.is_dir() else []:
        try:
            record = read_json(file)
            validate_schema(file, record, ROBUSTNESS_SCHEMA)
        except ArtifactError:  # a corrupt file: as if not measured (robustness measures anew)
            continue
        found[record["images"]] = record
    return found
