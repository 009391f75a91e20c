"""Results table of the runs in an artifacts folder (``python -m cifar_core report``).

The figures come only from run manifests and metrics; the "write-ups" column quotes what
the seed reports (../shared/seeds/) said for the same model, on GPUs and the official
arrays, for comparison.
"""

from __future__ import annotations

import pandas as pd

from cifar_core import artifacts

# What the seed write-ups report for the model each zoo entry reproduces (test accuracy).
WRITEUP_FIGURES = {
    "baseline_cnn": "72% (004)",
    "cnn_bn": "80.6% (001)",
    "cnn_4block": "85.7% (001) - 90% (000)",
    "vgg10": "82.0% (000)",
    "deep_cnn": "85.0% (003)",
    "resnet20": "87.7% (000)",
    "fast": "best CNN in write-ups 90%; airbench 94.0% (A100)",
}


def results_frame(root=None) -> pd.DataFrame:
    """One row per readable run, sorted by test accuracy."""
    runs, _ = artifacts.load_runs(artifacts.artifacts_root(root))
    rows = []
    for run in runs:
        per_class = run.per_class.set_index("class")["f1"]
        test = run.metrics["test"]
        rows.append(
            {
                "run": run.run_id,
                "model": run.manifest["model"],
                "family": run.manifest.get("family", ""),
                "params": run.metrics.get("params"),
                "test_accuracy": test["accuracy"],
                "macro_f1": test["macro_f1"],
                "cat_f1": per_class.get("cat"),
                "dog_f1": per_class.get("dog"),
                "train_min": run.metrics.get("train_time_s", 0) / 60,
                "epochs": run.metrics.get("epochs_run"),
                "hardware": run.manifest.get("hardware", ""),
                "data": run.manifest["data"].get("source", ""),
                "write_ups": WRITEUP_FIGURES.get(run.manifest["model"], ""),
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("test_accuracy", ascending=False).reset_index(drop=True) if rows else frame


def render(root=None, markdown: bool = False) -> str:
    frame = results_frame(root)
    if frame.empty:
        return "no runs yet: python -m cifar_core train --model fast --data-dir DIR"
    shown = frame.assign(
        params=frame["params"].map(lambda v: f"{v:,}" if pd.notna(v) else ""),
        test_accuracy=frame["test_accuracy"].map("{:.2%}".format),
        macro_f1=frame["macro_f1"].map("{:.3f}".format),
        cat_f1=frame["cat_f1"].map(lambda v: f"{v:.3f}" if pd.notna(v) else ""),
        dog_f1=frame["dog_f1"].map(lambda v: f"{v:.3f}" if pd.notna(v) else ""),
        train_min=frame["train_min"].map("{:.1f}".format),
    ).drop(columns=["run"])
    shown.columns = [
        "model",
        "family",
        "params",
        "test acc",
        "macro F1",
        "cat F1",
        "dog F1",
        "train min",
        "epochs",
        "hardware",
        "data",
        "write-ups report",
    ]
    if not markdown:
        return shown.to_string(index=False)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *lines])
