"""Convert runs written by older versions to the current format, once, in place:
``python -m cifar_core migrate`` (every run in the artifacts folder that needs it).

Version 1 -> 2, what changes (the figures do not: metrics, confusion matrix, per-class
table, probabilities and history are copied as they are):
- predictions.npz gains ``y_pred``: version 1 stored only float16 probabilities, whose
  rounding can tie two classes. The argmax is taken with ties broken towards the
  confusion matrix computed from the unrounded scores, so ``y_pred`` reproduces it exactly.
- thumbnails stored as raw pixels become JPEGs (codecs.thumbnail_bytes).
- the manifest's data source, a display string with the training machine's absolute
  path, becomes structured: ``kind``, ``root`` (relative to the project where it can be)
  and a short ``source``; a ``val_size`` equal to what the automatic split chooses for
  the run's data is recorded as automatic (None), which selects the same images; the
  command is stored as typed (``python -m cifar_core ...``).
- metrics.json ``trainable_params`` is the most any phase trained (from the manifest's
  phases; version 1 counted the exported model's phase-1 flags).
A run is converted in a copy that must read back as version 2 before it replaces the old
folder, so a failure leaves the old run untouched.

A version-2 run of the zoo written before runs recorded their recipe gets it: which named
recipe its config is and what it changed (``cifar_core.recipes.identify``), in its manifest.
"""

from __future__ import annotations

import os
import shlex
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from cifar_core.artifacts import codecs, reading, schema, testdata, writing
from cifar_core.errors import ArtifactError
from cifar_core.evaluate import confusion as confusion_counts
from cifar_core.fileio import atomic_write, write_json

IMAGE_FOLDER_PREFIX = "image folder "


def migrate_all(root: Path) -> list[tuple[str, str]]:
    """Migrate every run under ``root`` that needs it: [(run id, what happened)]."""
    out = []
    for run_id in reading.list_runs(root):
        path = reading.run_dir(root, run_id)
        try:
            version = schema.read_json(path / reading.MANIFEST).get("schema_version")
        except (ArtifactError, AttributeError) as error:
            out.append((run_id, f"skipped: {error}"))
            continue
        if version == schema.SCHEMA_VERSION:
            recipe = add_recipe(path)
            out.append((run_id, f"recipe recorded: {recipe}" if recipe else f"already version {version}"))
        elif version == 1:
            migrate_run(root, run_id)
            out.append((run_id, f"migrated 1 -> {schema.SCHEMA_VERSION}"))
        else:
            out.append((run_id, f"skipped: unknown schema_version {version!r}"))
    return out


def add_recipe(path: Path) -> str | None:
    """Record the recipe of the zoo run at ``path`` in its manifest if it has none; returns
    its label, or None when there was nothing to record (recorded already, not a zoo run)."""
    from cifar_core.recipes import identify_saved

    manifest = schema.read_json(path / reading.MANIFEST)
    if "recipe" in manifest or reading.run_kind(manifest) not in ("zoo", "study"):
        return None
    found = identify_saved(manifest["config"])
    if found is None:
        return None
    manifest["recipe"] = found.to_dict()
    schema.validate_manifest(path / reading.MANIFEST, manifest)
    write_json(path / reading.MANIFEST, manifest)
    return found.label


def migrate_run(root: Path, run_id: str) -> Path:
    """Convert one version-1 run to version 2 (see the module doc); returns its path."""
    final = reading.run_dir(root, run_id)
    with writing.building(final.parent, f"migrate-{run_id}", copy_of=final) as tmp:
        _convert(tmp, root)
        reading.read_run_folder(tmp, run_id)  # must read back as the current version
        old = final.parent / f"{reading.TEMP_PREFIX}old-{run_id}-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    return final


def _convert(path: Path, root: Path) -> None:
    manifest = schema.read_json(path / reading.MANIFEST)
    metrics = schema.read_json(path / reading.METRICS)
    if "stored_model" not in metrics:
        raise ArtifactError(
            f"{path.name}: its model was never compacted (no stored_model in metrics.json); "
            "this version cannot migrate it: retrain the run"
        )
    confusion = schema.read_csv(path / reading.CONFUSION, index_col=0).to_numpy()
    predictions = reading.read_npz(path / reading.PREDICTIONS)
    if "y_pred" not in predictions:
        predictions["y_pred"] = argmax_matching_confusion(
            predictions["probs"].astype(np.float32), predictions["y_true"].astype(np.int64), confusion
        )
    atomic_write(path / reading.PREDICTIONS, writing.predictions_bytes(predictions))
    thumbs = reading.read_npz(path / reading.THUMBNAILS) if (path / reading.THUMBNAILS).exists() else {}
    if "images" in thumbs or not thumbs:
        images = thumbs.get("images", np.zeros((0, 32, 32, 3), np.uint8))
        index = thumbs.get("index", np.zeros(0, np.int32))
        atomic_write(path / reading.THUMBNAILS, codecs.thumbnail_bytes(index, images))

    data = manifest["data"]
    data.update(_structured_source(data.get("source", ""), root))
    config = manifest["config"]
    n_all = data["n_train"] + data["n_val"] if config.get("train_limit") is None else None
    from cifar_core.data import auto_val_size

    if n_all is not None and config.get("val_size") == auto_val_size(n_all) == data["n_val"]:
        config["val_size"] = None
    if manifest.get("command"):
        from cifar_core.runtime import command_line

        manifest["command"] = command_line(shlex.split(manifest["command"]))
    from cifar_core.phases import PhaseRecord

    phases = [PhaseRecord.from_dict(p) for p in manifest["phases"]]
    metrics["trainable_params"] = max(
        [int(metrics.get("trainable_params", 0)), *(p.trainable_params for p in phases)]
    )
    manifest["schema_version"] = schema.SCHEMA_VERSION
    history = pd.read_csv(path / reading.HISTORY)
    atomic_write(path / reading.HISTORY, history.to_csv(index=False).encode())
    write_json(path / reading.METRICS, metrics)
    write_json(path / reading.MANIFEST, manifest)


def _structured_source(source: str, root: Path) -> dict:
    """kind / root / source of a version-1 display string."""
    if source.startswith(IMAGE_FOLDER_PREFIX):
        folder = Path(source[len(IMAGE_FOLDER_PREFIX) :])
        return {
            "kind": "image_folder",
            "root": testdata.relative_path(folder, root),
            "source": f"{IMAGE_FOLDER_PREFIX}{folder.name}",
        }
    if source == "keras.datasets.cifar10":
        return {"kind": "keras", "root": None, "source": source}
    if source.startswith("cifar-10-python (") and source.endswith(")"):
        where = Path(source[len("cifar-10-python (") : -1])
        kind = "tarball" if where.suffix == ".gz" else "batches"
        return {
            "kind": kind,
            "root": testdata.relative_path(where, root),
            "source": f"cifar-10-python ({where.name})",
        }
    return {"kind": "arrays", "root": None, "source": source or "unknown"}


def argmax_matching_confusion(probs: np.ndarray, y_true: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """The argmax of stored (float16-rounded) probabilities, with ties broken towards the
    confusion matrix computed from the unrounded scores.

    Rounding to float16 can make two classes' probabilities equal where float32 had a
    winner; plain argmax then picks the lower class index. A tied image whose argmax lands
    in a cell the confusion matrix has too many of moves to a tied class whose cell has too few.
    """
    y_pred = probs.argmax(1)
    top = probs.max(1, keepdims=True)
    tied = np.flatnonzero((probs == top).sum(1) > 1)
    if tied.size == 0:
        return y_pred
    excess = confusion_counts(y_true, y_pred, probs.shape[1]) - confusion
    for i in tied:
        t, p = y_true[i], y_pred[i]
        if excess[t, p] <= 0:
            continue
        for c in np.flatnonzero(probs[i] == top[i, 0]):
            if excess[t, c] < 0:
                y_pred[i] = c
                excess[t, p] -= 1
                excess[t, c] += 1
                break
    return y_pred
