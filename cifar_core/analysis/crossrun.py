"""What all the runs together say about the test set: the images each gets wrong, their
averaged probabilities and majority vote, and the test labels that look wrong to them.

    table = crossrun.wrong_per_class(runs)           # test images each model gets wrong, per class
    issues = crossrun.label_issues(runs)             # ranked suspects (confident learning)
    table = crossrun.accuracy_without(runs, marked)  # every model's accuracy without them
    runs = crossrun.same_test_set(runs)              # the runs comparable image by image
    correct = crossrun.correct_matrix(runs)          # (runs, images): which run gets which right

Label errors: the test predictions of every model are out-of-sample (no model trained on
the test split), so their average is the "pred_probs" confident learning needs (Northcutt,
Jiang and Chuang 2021; Northcutt, Athalye and Mueller 2021 found CIFAR-10's test-set label
errors this way). ``cleanlab.filter.find_label_issues`` flags the images, ranked by the
averaged probability of the given label (self-confidence), lowest first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def same_test_set(runs: list) -> list:
    """The runs scored on the largest group of identical test sets (comparable per image)."""
    groups: dict[tuple, list] = {}
    for run in runs:
        key = (run.manifest["data"]["checksum"], len(run.predictions["y_true"]))
        groups.setdefault(key, []).append(run)
    return max(groups.values(), key=len) if groups else []


def correct_matrix(runs: list) -> np.ndarray:
    """(runs, test images) booleans: which run gets which test image right."""
    return np.stack([r.predictions["y_pred"] == r.predictions["y_true"] for r in runs])


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

        # n_jobs=1: by default cleanlab forks a multiprocessing.Pool from the calling process;
        # in the dashboard that is a threaded server, where a fork can deadlock the children.
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


def majority_vote(runs) -> np.ndarray:
    """Per test image, the class most runs predict (ties: the lowest class index)."""
    k = len(runs[0].class_names)
    preds = np.stack([r.predictions["y_pred"] for r in runs])
    return np.stack([np.bincount(col, minlength=k) for col in preds.T]).argmax(1)
