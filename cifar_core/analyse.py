"""The analysis a run gets after training: its map of the test set and its data facts.

    analyse(root, run_id, model, data, splits)       # at the end of training (train.py)
    analyse_existing(root, run_id, data_dir)         # later: python -m cifar_core embed RUN

Both need the test images (and the train split for the facts), so they run where the data
is; the dashboard only reads what they stored (artifacts.read_embedding, read_data_facts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cifar_core import artifacts, datafacts, embeddings
from cifar_core.errors import DataError


def analyse(
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


def analyse_existing(
    root: Path, run_id: str, data_dir=None, say: Callable = print, facts_only: bool = False
) -> dict:
    """``analyse`` for a finished run: its data (``data_dir``, else the folder it was trained
    on if it is here) must be the run's own, checked by checksum."""
    from cifar_core.data import load_cifar10, run_splits
    from cifar_core.fitting import Splits
    from cifar_core.inference import load_model

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
    model = None if facts_only else load_model(run.model_path)
    return analyse(root, run.run_id, model, data, Splits(*splits), config["seed"], say, facts_only)


def add_arguments(parser) -> None:
    """``python -m cifar_core embed``'s own options."""
    parser.add_argument("runs", nargs="*", help="run ids (default with --all: every run without a map)")
    parser.add_argument("--all", action="store_true", help="every run that has no map yet")
    parser.add_argument(
        "--facts-only", action="store_true", help="only the data facts (no features, no t-SNE)"
    )


def main(args) -> int:
    """``python -m cifar_core embed RUN... | --all [--facts-only] [--data-dir DIR]``."""
    from cifar_core.errors import ConfigError

    root = artifacts.artifacts_root(args.artifacts_dir)
    if not args.runs and not args.all:
        raise ConfigError("name the runs to map, or pass --all")
    ids = args.runs or (artifacts.list_runs(root) if args.facts_only else artifacts.runs_without_map(root))
    for run_id in ids:
        took = analyse_existing(root, run_id, args.data_dir, facts_only=args.facts_only)
        made = f"map of the test set from {took['dims']}-D features" if took["dims"] else "data facts"
        print(f"{run_id}: {made} in {took['facts_s'] + took['embedding_s']:.0f} s")
    return 0
