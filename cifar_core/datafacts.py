"""What a run's data looked like, and which test labels look wrong to the models.

    facts = datafacts.describe(data, splits)          # stored as the run's data_facts.json
    table = datafacts.wrong_per_class(runs)           # test images each model gets wrong, per class
    issues = datafacts.label_issues(runs)             # ranked suspects (confident learning)
    table = datafacts.accuracy_without(runs, marked)  # every model's accuracy without them

Label errors: the test predictions of every model are out-of-sample (no model trained on
the test split), so their average is the "pred_probs" confident learning needs (Northcutt,
Jiang and Chuang 2021; Northcutt, Athalye and Mueller 2021 found CIFAR-10's test-set label
errors this way). ``cleanlab.filter.find_label_issues`` flags the images, ranked by the
averaged probability of the given label (self-confidence), lowest first.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SAMPLED_FILES = 400  # files per split whose header is read for the size and mode facts


def describe(data, splits) -> dict[str, Any]:
    """Class counts per split as training used them, per-channel mean and standard deviation
    of the train split (0-255), and the files' formats and sizes when read from a folder."""
    k = len(data.class_names)
    counts = {
        name: np.bincount(np.asarray(y, dtype=np.int64), minlength=k).tolist()
        for name, y in (("train", splits.y_train), ("val", splits.y_val), ("test", data.y_test))
    }
    # float64 accumulators: a float32 sum over 46 million pixels stops growing near 2**32
    # (numpy sums along a strided axis without pairwise summation), which made every mean 93.2.
    x = np.asarray(splits.x_train).reshape(-1, 3)
    mean = x.mean(0, dtype=np.float64)
    std = np.sqrt(
        sum(((x[i : i + 2**22] - mean) ** 2).sum(0) for i in range(0, len(x), 2**22)) / max(len(x), 1)
    )
    return {
        "source": data.source,
        "checksum": data.checksum,
        "class_names": list(data.class_names),
        "class_counts": counts,
        "channel_mean": [round(float(v), 3) for v in mean],
        "channel_std": [round(float(v), 3) for v in std],
        "image_shape": list(data.x_train.shape[1:]),
        "files": file_facts(Path(data.root)) if data.kind == "image_folder" and data.root else None,
    }


def file_facts(root: Path, sample: int = SAMPLED_FILES, seed: int = 0) -> dict[str, Any]:
    """Per split: how many files of each extension, and the sizes and colour modes found
    in the headers of a seeded sample of them (decoding makes every image 32x32 RGB)."""
    from PIL import Image

    out: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        files = sorted(p for p in (root / split).glob("*/*") if p.is_file())
        if not files:
            continue
        chosen = [files[i] for i in sorted(rng.choice(len(files), min(sample, len(files)), replace=False))]
        sizes, modes = Counter(), Counter()
        for path in chosen:
            try:
                with Image.open(path) as image:
                    sizes[f"{image.width}x{image.height}"] += 1
                    modes[f"{image.format} {image.mode}"] += 1
            except Exception:  # noqa: BLE001 - an unreadable file is a fact too
                modes["unreadable"] += 1
        out[split] = {
            "files": len(files),
            "extensions": dict(Counter(p.suffix.lower() or "(none)" for p in files).most_common()),
            "sampled": len(chosen),
            "sizes": dict(sizes.most_common()),
            "formats": dict(modes.most_common()),
        }
    return out


def samples_per_class(
    y: np.ndarray, available: np.ndarray, num_classes: int, per_class: int, seed: int = 0
) -> list[np.ndarray]:
    """For each class, up to ``per_class`` seeded picks among the ``available`` indices."""
    rng = np.random.default_rng(seed)
    y, available = np.asarray(y), np.asarray(available, dtype=int)
    out = []
    for c in range(num_classes):
        pool = available[y[available] == c]
        out.append(np.sort(rng.choice(pool, min(per_class, len(pool)), replace=False)) if len(pool) else pool)
    return out


def wrong_per_class(runs) -> pd.DataFrame:
    """(run, class) -> test images the run gets wrong; one row per run, one column per class."""
    rows = {}
    for run in runs:
        y, p = run.predictions["y_true"], run.predictions["y_pred"]
        wrong = np.bincount(y[p != y], minlength=len(run.class_names))
        rows[run.run_id] = dict(zip(run.class_names, wrong.tolist()))
    return pd.DataFrame.from_dict(rows, orient="index")


def ensemble_probs(runs) -> np.ndarray:
    """The runs' test probabilities averaged (the runs must share one test set)."""
    return np.mean([r.predictions["probs"] for r in runs], axis=0).astype(np.float32)


def label_issues(runs, method: str = "cleanlab") -> pd.DataFrame:
    """Test images whose label the models' averaged probabilities contradict, most suspect
    first: index, given label, the class the models prefer, the averaged probability of
    each, and how many runs predict another class than the label (all: ``every_model``).

    method "cleanlab": confident learning (cleanlab.filter.find_label_issues, ranked by
    self-confidence); "unanimous": every run predicts the same other class (no cleanlab)."""
    y = np.asarray(runs[0].predictions["y_true"], dtype=np.int64)
    names = runs[0].class_names
    probs = ensemble_probs(runs)
    disagree = np.sum([r.predictions["y_pred"] != y for r in runs], axis=0)
    if method == "cleanlab":
        from cleanlab.filter import find_label_issues

        # n_jobs=1: by default cleanlab forks a multiprocessing.Pool (one process per core)
        # from whatever process calls it. In the dashboard that is a threaded server with
        # TensorFlow loaded, and a fork there can deadlock the children and leave the page
        # waiting for ever (it did, twice, in CI). Ten classes take milliseconds in one process.
        flagged = find_label_issues(y, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    elif method == "unanimous":
        preds = np.stack([r.predictions["y_pred"] for r in runs])
        same = (preds == preds[0]).all(axis=0) & (preds[0] != y)
        flagged = np.flatnonzero(same)
        flagged = flagged[np.argsort(probs[flagged, y[flagged]], kind="stable")]
    else:
        raise ValueError(f"unknown method {method!r}: cleanlab or unanimous")
    flagged = np.asarray(flagged, dtype=np.int64)
    other = probs.copy()
    other[np.arange(len(y)), y] = -1
    suggested = other.argmax(1)
    return pd.DataFrame(
        {
            "index": flagged,
            "label": [names[c] for c in y[flagged]],
            "models_say": [names[c] for c in suggested[flagged]],
            "p_label": probs[flagged, y[flagged]],
            "p_models": probs[flagged, suggested[flagged]],
            "runs_disagreeing": disagree[flagged],
            "every_model": disagree[flagged] == len(runs),
        }
    )


def accuracy_without(runs, excluded) -> pd.DataFrame:
    """Each run's test accuracy on all images and without the ``excluded`` indices."""
    excluded = np.asarray(sorted(set(int(i) for i in excluded)), dtype=np.int64)
    rows = []
    for run in runs:
        right = run.predictions["y_pred"] == run.predictions["y_true"]
        keep = np.ones(len(right), bool)
        keep[excluded] = False
        rows.append(
            {
                "run": run.run_id,
                "model": run.model,
                "accuracy": float(right.mean()),
                "without_marked": float(right[keep].mean()) if keep.any() else float("nan"),
                "marked_wrong_by_model": int((~right[excluded]).sum()),
            }
        )
    return pd.DataFrame(rows)
