"""A run's map of the test set (features, PCA, t-SNE) and its data facts, made after training.

    map_run(root, run_id, model, data, splits)        # at the end of training (record.py)
    map_existing_run(root, run_id, data_dir)          # later: python -m cifar_core embed RUN

Both need the test images (and the train split for the facts), so they run where the data
is; the dashboard only reads what they stored (artifacts.read_embedding, read_data_facts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cifar_core import artifacts
from cifar_core.analysis import embeddings
from cifar_core.data import datafacts
from cifar_core.errors import DataError


def map_run(
    root: Path,
    run_id: str,
    model,
    data,
    splits,
    seed: int = 0,
    say: Callable = print,
    facts_only: bool = False,
) -> dict:
    """Compute and store the run's data facts and (unless ``facts_only``) its map; returns
    what took how long (s)."""
    start = time.perf_counter()
    artifacts.write_data_facts(root, run_id, datafacts.describe(data, splits))
    facts_s = time.perf_counter() - start
    if facts_only:
        return {"facts_s": facts_s, "embedding_s": 0.0, "dims": None}
    say(f"{run_id}: features of {len(data.x_test)} test images, PCA and t-SNE…")
    feats = embeddings.features(embeddings.feature_model(model), data.x_test)
    arrays = embeddings.reduce(feats, seed=seed)
    artifacts.write_embedding(root, run_id, arrays)
    return {"facts_s": facts_s, "embedding_s": time.perf_counter() - start - facts_s, "dims": feats.shape[1]}


def map_existing_run(
    root: Path,
    run_id: str,
    data_dir=None,
    say: Callable = print,
    facts_only: bool = False,
    trust_code: bool = False,
) -> dict:
    """``map_run`` for a finished run: its data (``data_dir``, else the folder it was trained
    on if it is here) must be the run's own, checked by checksum; ``trust_code`` imports
    the run's stored code to load a model with custom layers."""
    from cifar_core.data import load_cifar10, run_splits
    from cifar_core.serving.inference import load_model

    run = artifacts.read_run(root, run_id)
    source = data_dir or artifacts.data_folder(run)
    if source is None:
        raise DataError(f"{run_id}: its data folder is not on this machine: pass --data-dir")
    data = load_cifar10(source)
    expected = run.manifest["data"]["checksum"]
    if data.checksum != expected:
        raise DataError(
            f"{source}: checksum {data.checksum[:12]}…, but {run_id} was trained on {expected[:12]}…: "
            "not the run's data"
        )
    config = run.manifest["config"]
    splits = run_splits(data, config["val_size"], config["seed"], config["train_limit"])
    model = None if facts_only else load_model(run.model_path, run.code_files if trust_code else ())
    return map_run(root, run.run_id, model, data, splits, config["seed"], say, facts_only)
