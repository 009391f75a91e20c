"""The files ``cifar_core.analysis.runmap`` makes for a run: made after the run (at the end of
training, or later by ``python -m cifar_core embed RUN``), optional, each written atomically
and validated on reading. A run without them is complete; a corrupt one raises ArtifactError naming it.

    embedding.npz    the map of the test set (embeddings.reduce): xy (N, 2) float16,
                     pca (N, P) float16 (divided by scale), scale, mean (D,), components (P, D),
                     explained, perplexity, seed
    data_facts.json  what the run's data looked like (datafacts.describe): class counts per
                     split as the run used them, channel statistics, file formats and sizes
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cifar_core.artifacts.reading import Run, list_runs, read_manifest, run_dir
from cifar_core.artifacts.schema import read_json, read_npz, require, validate_schema
from cifar_core.errors import ArtifactError
from cifar_core.fileio import atomic_write, npz_bytes, write_json

EMBEDDING = "embedding.npz"
DATA_FACTS = "data_facts.json"
EMBEDDING_ARRAYS = ("xy", "pca", "scale", "mean", "components", "explained", "perplexity", "seed")
ARCHITECTURE = "architecture.json"  # the layer table and FLOPs, so no page loads TensorFlow for them
ARCHITECTURE_SCHEMA = {"layers": list, "total_flops": int}
DATA_FACTS_SCHEMA = {
    "source": str,
    "checksum": str,
    "class_names": list,
    "class_counts": {"train": list, "val": list, "test": list},
    "channel_mean": list,
    "channel_std": list,
    "image_shape": list,
    "files": (dict, type(None)),
}


def validate_embedding(path: Path, arrays: dict[str, np.ndarray], n_test: int | None = None) -> None:
    for key in EMBEDDING_ARRAYS:
        require(key in arrays, path, f"missing array {key!r}")
    xy, pca, mean, components = (arrays[k] for k in ("xy", "pca", "mean", "components"))
    require(xy.ndim == 2 and xy.shape[1] == 2, path, f"xy must be (N, 2), got {xy.shape}")
    require(pca.ndim == 2 and len(pca) == len(xy), path, "pca must have one row per point of xy")
    require(
        components.ndim == 2 and components.shape == (pca.shape[1], mean.shape[0]),
        path,
        f"components must be ({pca.shape[1]}, {mean.shape[0]}), got {components.shape}",
    )
    require(bool(np.isfinite(xy).all() and np.isfinite(pca).all()), path, "non-finite coordinates")
    require(bool(np.isfinite(arrays["scale"]) and arrays["scale"] > 0), path, "scale must be positive")
    if n_test is not None:
        require(len(xy) == n_test, path, f"{len(xy)} points but the run has {n_test} test predictions")


def embedding_path(run: Run) -> Path:
    return run.path / EMBEDDING


def runs_without_map(root: Path) -> list[str]:
    """Zoo runs without a map (a ladder's rungs are stored without one on purpose)."""
    out = []
    for run_id in list_runs(root):
        if (run_dir(root, run_id) / EMBEDDING).exists():
            continue
        try:
            if read_manifest(root, run_id).get("ladder"):
                continue
        except ArtifactError:
            pass  # unreadable: `embed` says why when it reads the run
        out.append(run_id)
    return out


def write_embedding(root: Path, run_id: str, arrays: dict[str, np.ndarray]) -> Path:
    path = run_dir(root, run_id) / EMBEDDING
    validate_embedding(path, arrays)
    return atomic_write(path, npz_bytes(compressed=True, **arrays))


def read_embedding(run: Run) -> dict[str, np.ndarray] | None:
    """The run's map, or None if it has none yet; ArtifactError if the file is bad."""
    path = embedding_path(run)
    if not path.exists():
        return None
    arrays = read_npz(path)
    validate_embedding(path, arrays, len(run.predictions["y_true"]))
    return arrays


def write_data_facts(root: Path, run_id: str, facts: dict[str, Any]) -> Path:
    path = run_dir(root, run_id) / DATA_FACTS
    validate_schema(path, facts, DATA_FACTS_SCHEMA)
    return write_json(path, facts)


def read_data_facts(run: Run) -> dict[str, Any] | None:
    """The facts stored with the run, or None if it has none; ArtifactError if bad."""
    path = run.path / DATA_FACTS
    if not path.exists():
        return None
    facts = read_json(path)
    validate_schema(path, facts, DATA_FACTS_SCHEMA)
    k = len(run.class_names)
    for split, counts in facts["class_counts"].items():
        require(len(counts) == k, path, f"class_counts.{split} must have {k} entries")
    return facts


def write_architecture(root: Path, run_id: str, record: dict[str, Any]) -> Path:
    path = run_dir(root, run_id) / ARCHITECTURE
    validate_schema(path, record, ARCHITECTURE_SCHEMA)
    return write_json(path, record)


def read_architecture(run: Run) -> dict[str, Any] | None:
    """The layer table stored with the run (``analysis.architecture.to_record``), or None if
    it has none; ArtifactError if bad."""
    path = run.path / ARCHITECTURE
    if not path.exists():
        return None
    record = read_json(path)
    validate_schema(path, record, ARCHITECTURE_SCHEMA)
    keys = {"layer", "type", "params", "trainable", "flops"}
    rows_ok = all(isinstance(row, dict) and keys <= set(row) for row in record["layers"])
    require(rows_ok, path, f"every layer needs {sorted(keys)}")
    return record
