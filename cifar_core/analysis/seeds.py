"""Seed groups: runs that differ only in their seed, and whether a difference is real.

    groups = group_runs(runs)                    # [Group]: members sorted by seed
    summary(group)                               # mean, SD, n, min-max (one run: binomial SE)
    compare(group_a, group_b)                    # difference of means, 95% CI, McNemar per seed pair

A group is the runs of one recipe: the same model (or builder file and its hash), data
checksum and config apart from ``seed``, ``precision`` and ``xla``, which change a run's
speed (configs compared as ``TrainConfig.non_default()``, so a run written before a later
option existed still groups), of the same kind (``artifacts.run_kind``: zoo run, a ladder's
rung, a study's retrained best...). ``train --seeds`` / ``run --seeds`` write such runs;
any runs that only differ in their seed or precision group, however they were made.

The interval of a difference: a bootstrap over test images and seeds (two levels: the test
images resampled once per draw, the same for both groups, since both were scored on the
same images; then each group's seeds resampled). It covers both sources of variation a
reader cares about: another draw of test images, another seed. With one seed per group it
is the paired bootstrap over images; a paired t-test over seeds would ignore the test
images and needs seed pairs, and with n = 3 has 2 degrees of freedom.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

N_BOOT = 4000
Z95 = 1.959963984540054


def group_key(run) -> str:
    """What a run has in common with its other seeds (a JSON string): the one definition of
    a seed group."""
    from cifar_core import artifacts
    from cifar_core.config import TrainConfig
    from cifar_core.errors import CifarError

    manifest = run.manifest
    try:
        config = TrainConfig.from_dict(manifest["config"]).non_default()
    except (CifarError, TypeError):
        config = dict(manifest.get("config") or {})
    for how_it_ran in ("seed", "precision", "xla"):  # a recipe's runs differ in these only
        config.pop(how_it_ran, None)
    kind = artifacts.run_kind(manifest)
    if kind == "ladder":  # a rung's seeds: the same ladder and index
        kind = f"ladder:{manifest['ladder'].get('ladder')}:{manifest['ladder'].get('index')}"
    return json.dumps(
        {
            "kind": kind,
            "model": manifest.get("model"),
            "source": (manifest.get("source") or {}).get("sha256"),
            "data": (manifest.get("data") or {}).get("checksum"),
            "n_test": len(run.predictions["y_true"]),
            "config": config,
        },
        sort_keys=True,
        default=str,
    )


def seed_of(run) -> int:
    return int(run.manifest.get("seed", run.manifest.get("config", {}).get("seed", 0)) or 0)


@dataclass
class Group:
    key: str
    members: list  # runs, sorted by seed

    @property
    def best(self):
        """The run the pages use: the most accurate member that keeps its model file (the
        most accurate member when none does)."""
        with_model = [r for r in self.members if r.has_model] or self.members
        return max(with_model, key=lambda r: r.metrics["test"]["accuracy"])

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def seeds(self) -> list[int]:
        return [seed_of(r) for r in self.members]

    @property
    def label(self) -> str:
        """The group's name: its runs' label, without a run id (one run: the run's label)."""
        return self.best.base_label if self.n > 1 else self.best.label

    def accuracies(self, split: str = "test") -> np.ndarray:
        return np.array([r.metrics[split]["accuracy"] for r in self.members], dtype=float)

    def correct(self) -> np.ndarray:
        """(seeds, test images) booleans: which member gets which image right."""
        from cifar_core.analysis.crossrun import correct_matrix

        return correct_matrix(self.members)


def group_runs(runs) -> list[Group]:
    """The runs grouped by recipe (everything but the seed, precision and XLA), in the order
    of each group's first run."""
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    out = [Group(key, sorted(members, key=seed_of)) for key, members in groups.items()]
    order = {id(run): i for i, run in enumerate(runs)}
    return sorted(out, key=lambda g: min(order[id(r)] for r in g.members))


def summary(group: Group, metric: str = "accuracy") -> dict:
    """Mean, SD (n - 1), n, min and max of the members' test ``metric``; for one run, the
    binomial standard error of its accuracy on its test images (``se``, labelled so)."""
    values = np.array([r.metrics["test"][metric] for r in group.members], dtype=float)
    out = {
        "n": group.n,
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if group.n > 1 else None,
        "min": float(values.min()),
        "max": float(values.max()),
        "se": None,
        "se_kind": None,
    }
    if group.n == 1 and metric == "accuracy":
        n_images = len(group.best.predictions["y_true"])
        out["se"] = math.sqrt(out["mean"] * (1 - out["mean"]) / n_images)
        out["se_kind"] = f"binomial, {n_images:,} test images"
    elif group.n > 1:
        out["se"] = out["sd"] / math.sqrt(group.n)
        out["se_kind"] = f"SD / sqrt({group.n}) over seeds"
    return out


def bootstrap_difference(
    a: np.ndarray, b: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> dict:
    """Mean accuracy of ``b`` minus ``a`` (both (seeds, images) booleans on the same
    images) with a percentile bootstrap interval over images and seeds (see the module)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape[1] != b.shape[1]:
        raise ValueError("the two groups were scored on different test sets")
    rng = np.random.default_rng(seed)
    n_images = a.shape[1]
    draws = np.empty(n_boot)
    for i in range(n_boot):
        images = rng.integers(0, n_images, n_images)
        counts = np.bincount(images, minlength=n_images)  # weights: same images for both groups
        pick_a = a[rng.integers(0, len(a), len(a))] if len(a) > 1 else a
        pick_b = b[rng.integers(0, len(b), len(b))] if len(b) > 1 else b
        draws[i] = (pick_b @ counts).mean() / n_images - (pick_a @ counts).mean() / n_images
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {
        "difference": float(b.mean() - a.mean()),
        "low": float(low),
        "high": float(high),
        "level": level,
        "n_boot": n_boot,
        "method": "bootstrap over test images and seeds",
    }


def compare(a: Group, b: Group, n_boot: int = N_BOOT) -> dict:
    """``b``'s group against ``a``'s: the difference of mean test accuracy with its 95%
    interval, McNemar's exact test for each seed pair (members paired in seed order), and
    the sentence that says what it means."""
    from cifar_core.evaluate import mcnemar_test

    result = bootstrap_difference(a.correct(), b.correct(), n_boot=n_boot)
    pairs = []
    for run_a, run_b in zip(a.members, b.members):
        ca = run_a.predictions["y_pred"] == run_a.predictions["y_true"]
        cb = run_b.predictions["y_pred"] == run_b.predictions["y_true"]
        pairs.append({"a": run_a.run_id, "b": run_b.run_id, **mcnemar_test(ca, cb)})
    result.update(
        {"n_a": a.n, "n_b": b.n, "mcnemar": pairs, "sentence": sentence(a.label, b.label, result, a.n, b.n)}
    )
    return result


def sentence(a_label: str, b_label: str, result: dict, n_a: int, n_b: int) -> str:
    """E.g. "fast is 0.3 ± 0.5 points behind cnn_4block's group: not a real difference at n = 3"."""
    diff = result["difference"] * 100
    half = (result["high"] - result["low"]) * 100 / 2
    where = "ahead of" if diff > 0 else "behind" if diff < 0 else "level with"
    real = result["low"] > 0 or result["high"] < 0
    n = f"n = {n_a}" if n_a == n_b else f"n = {n_b} and {n_a} seeds"
    verdict = "a real difference" if real else "not a real difference"
    return (
        f"{b_label} is {abs(diff):.1f} ± {half:.1f} points {where} {a_label} "
        f"(95% interval {result['low'] * 100:+.1f} to {result['high'] * 100:+.1f}): {verdict} at {n}"
    )


def curve_band(group: Group, column: str):
    """Per epoch (1-based), the members' ``column`` (a history column, e.g. val_accuracy):
    mean, SD (n - 1; 0 for one value), min, max and how many seeds reached that epoch."""
    import pandas as pd

    frames = [r.history[["epoch", column]].assign(seed=seed_of(r)) for r in group.members]
    data = pd.concat(frames).dropna(subset=[column])
    out = data.groupby("epoch")[column].agg(["mean", "std", "min", "max", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["epoch"] = out["epoch"] + 1
    return out.rename(columns={"std": "sd", "count": "n"})
