"""Metrics from predictions: pure functions over arrays, no I/O, no TensorFlow.

    metrics = classification_metrics(y_true, probs, class_names)
    report = per_class_report(y_true, probs.argmax(1), class_names)

Timing helpers (latency, throughput) take a callable so they stay testable without a model.
scikit-learn is imported by the functions that use it: importing it takes ~1.5 s here, and
the dashboard's Compare page (McNemar, reliability) needs none of it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np


def accuracy(y_true: np.ndarray, probs: np.ndarray) -> float:
    return float(np.mean(probs.argmax(axis=1) == y_true))


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int = 3) -> float:
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean((top == y_true[:, None]).any(axis=1)))


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    ece = 0.0
    for mask, confidence, correct in _confidence_bins(y_true, probs, bins):
        if mask.any():
            ece += mask.mean() * abs(correct.mean() - confidence.mean())
    return float(ece)


def reliability_curve(y_true: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict[str, list]:
    """Per confidence bin: mean confidence, accuracy and count (for a reliability diagram)."""
    out = {"confidence": [], "accuracy": [], "count": []}
    for mask, confidence, correct in _confidence_bins(y_true, probs, bins):
        out["count"].append(int(mask.sum()))
        out["confidence"].append(float(confidence.mean()) if mask.any() else None)
        out["accuracy"].append(float(correct.mean()) if mask.any() else None)
    return out


def _confidence_bins(y_true: np.ndarray, probs: np.ndarray, bins: int):
    """Per equal-width bin of top-class confidence: (mask, its confidences, whether right)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    for b in range(bins):
        mask = which == b
        yield mask, confidence[mask], correct[mask]


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]
) -> dict[str, float]:
    """Accuracy, top-3, macro/weighted precision-recall-F1, log loss and ECE."""
    from sklearn import metrics as skm

    labels = list(range(len(class_names)))
    y_pred = probs.argmax(axis=1)
    out = {"accuracy": accuracy(y_true, probs), "top3_accuracy": top_k_accuracy(y_true, probs, 3)}
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        out.update(
            {f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)}
        )
    clipped = np.clip(probs.astype(np.float64), 1e-7, 1.0)
    out["log_loss"] = float(skm.log_loss(y_true, clipped / clipped.sum(1, keepdims=True), labels=labels))
    out["ece"] = expected_calibration_error(y_true, probs)
    return out


def per_class_report(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> list[dict[str, float | str | int]]:
    """One row per class: precision, recall, f1, support (scikit-learn's report)."""
    from sklearn import metrics as skm

    report = skm.classification_report(
        y_true,
        y_pred,
        labels=list(range(len(class_names))),
        target_names=list(class_names),
        output_dict=True,
        zero_division=0,
    )
    return [
        {
            "class": name,
            "precision": report[name]["precision"],
            "recall": report[name]["recall"],
            "f1": report[name]["f1-score"],
            "support": int(report[name]["support"]),
        }
        for name in class_names
    ]


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts: rows are true classes, columns predicted classes (labels 0..num_classes-1)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def confusion_change(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``after`` minus ``before`` (confusion matrices, rows true, columns predicted), and
    per cell whether that change is better: more on the diagonal, fewer off it
    (returns (change, improvement) with improvement = change on the diagonal, -change off it)."""
    change = np.asarray(after, dtype=np.int64) - np.asarray(before, dtype=np.int64)
    return change, np.where(np.eye(len(change), dtype=bool), change, -change)


def mistakes_first(
    y_true: np.ndarray, y_pred: np.ndarray, class_names, pair: tuple[str, str] = ("cat", "dog")
) -> np.ndarray:
    """Indices of the wrong predictions, the confusions within ``pair`` (both ways) first,
    each group in test-set order: the mistakes a run keeps pictures of, most telling first."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_pred != y_true)
    names = list(class_names)
    if not set(pair) <= set(names):
        return wrong
    codes = [names.index(c) for c in pair]
    within = np.isin(y_true[wrong], codes) & np.isin(y_pred[wrong], codes)
    return np.concatenate([wrong[within], wrong[~within]])


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float | int]:
    """Exact (binomial) McNemar test on paired right/wrong outcomes of two models."""
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    both = int(np.sum(correct_a & correct_b))
    neither = int(np.sum(~correct_a & ~correct_b))
    n = only_a + only_b
    p = _two_sided_binomial_half(min(only_a, only_b), n)
    return {
        "both_right": both,
        "only_a_right": only_a,
        "only_b_right": only_b,
        "both_wrong": neither,
        "p_value": p,
    }


def _two_sided_binomial_half(k: int, n: int) -> float:
    """P-value of the exact two-sided binomial test of k (the smaller count) successes in n
    trials at p = 1/2: twice the lower tail, capped at 1 (the distribution is symmetric).
    Exact integer arithmetic; Python's int / int rounds correctly even for n in the
    thousands, where 2**n overflows a float."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def latency_ms_per_image(
    predict: Callable[[np.ndarray], object], image: np.ndarray, repeats: int = 30
) -> float:
    """Median wall time of ``predict`` on a batch of one, in milliseconds."""
    batch = image[None] if image.ndim == 3 else image[:1]
    predict(batch)  # warm-up: tracing and allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def throughput_images_per_s(
    predict: Callable[[np.ndarray], object], images: np.ndarray, batch_size: int = 256, repeats: int = 3
) -> float:
    """Best-of-``repeats`` images per second of ``predict`` on one batch of ``batch_size``."""
    batch = np.resize(images, (batch_size, *images.shape[1:])).astype(images.dtype)
    predict(batch)
    best = min(_timed(predict, batch) for _ in range(repeats))
    return float(batch_size / best)


def _timed(fn: Callable[[np.ndarray], object], batch: np.ndarray) -> float:
    start = time.perf_counter()
    fn(batch)
    return time.perf_counter() - start
