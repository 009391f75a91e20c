"""Results table of the runs in an artifacts folder (``python -m cifar_core report``; the
README's generated blocks are ``cifar_core.analysis.readme``).

The figures come only from run manifests and metrics; the "write-ups" column quotes what
the seed reports (../shared/seeds/) said for the same model, on GPUs and the official
arrays, for comparison.
"""

from __future__ import annotations

from pathlib import Path

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
    "efficientnet_lite0": "ResNet50 94.7% (003), EfficientNetV2 94.0% (000), MobileNetV2 90.4% (001)",
    "efficientnet_lite0_frozen": "frozen: EfficientNetB0 83.1%, MobileNetV2 86.1% (001), DenseNet121 89%",
}


# Column labels for people, shared by the README table and the dashboard's Leaderboard.
LABELS = {
    "run": "Run",
    "model": "Model",
    "label": "Model",
    "family": "Family",
    "params": "Params",
    "flops": "FLOPs per image",
    "test_acc": "Test acc",
    "macro_f1": "Macro F1",
    "precision": "Precision",
    "recall": "Recall",
    "top3_acc": "Top-3 acc",
    "log_loss": "Log loss",
    "ece": "ECE",
    "cat_f1": "Cat F1",
    "dog_f1": "Dog F1",
    "train_acc": "Train acc",
    "val_acc": "Val acc",
    "gap": "Train-test gap",
    "train_min": "Train min",
    "epochs": "Epochs",
    "ms_per_image": "ms/image",
    "precision_policy": "Precision policy",
    "hardware": "Hardware",
    "data": "Data",
    "write_ups": "Write-ups report",
    "made_by": "Made by",
    "n": "Seeds (n)",
    "seeds": "Seed values",
    "spread": "± (SD, or SE of one run)",
    "spread_kind": "± is",
    "test_acc_min": "Min acc",
    "test_acc_max": "Max acc",
    "test_acc_sd": "SD acc",
    "precisions": "Precision",
    "train_images": "Train images",
    "corruption_acc": "Corruption acc",
}
GROUP_PERCENT = ("test_acc_sd", "test_acc_min", "test_acc_max", "spread")  # groups_table's
PERCENT_COLUMNS = ("test_acc", "top3_acc", "train_acc", "val_acc", "gap", *GROUP_PERCENT)
README_COLUMNS = (
    "model",
    "family",
    "params",
    "test_acc",
    "corruption_acc",
    "macro_f1",
    "cat_f1",
    "dog_f1",
    "train_min",
    "epochs",
    "precisions",
    "train_images",
    "hardware",
)


def evaluation_columns(name: str) -> tuple[str, str]:
    """The runs-table columns of evaluation set ``name``: (accuracy, macro F1)."""
    return f"eval:{name}:acc", f"eval:{name}:f1"


def label(column: str) -> str:
    """A column's label for people (evaluation sets: '<name> acc', '<name> macro F1')."""
    if column.startswith("eval:"):
        _, name, what = column.split(":")
        return f"{name} {'acc' if what == 'acc' else 'macro F1'}"
    return LABELS.get(column, column)


def evaluation_sets(runs: list[artifacts.Run]) -> dict[str, dict]:
    """Every evaluation set any run was scored on: name -> {runs, images, data} for display."""
    sets: dict[str, dict] = {}
    for run in runs:
        for name, result in run.evaluations.items():
            entry = sets.setdefault(
                name, {"runs": [], "n_images": result["n_images"], "data": result["data_dir"]}
            )
            entry["runs"].append(run.run_id)
    return dict(sorted(sets.items()))


def runs_table(runs: list[artifacts.Run]) -> pd.DataFrame:
    """One row per run, best test accuracy first: the README's table and the Leaderboard's.

    Accuracies and F1 are fractions; each evaluation set adds an (accuracy, macro F1)
    column pair (``evaluation_columns``), empty for runs not scored on it."""
    names = list(evaluation_sets(runs))
    rows = []
    for run in runs:
        m, test, data = run.metrics, run.metrics["test"], run.manifest["data"]
        per_class = run.per_class.set_index("class")["f1"]
        row = {
            "run": run.run_id,
            "model": run.model,
            "label": run.label,
            "family": run.manifest["family"],
            "study": run.study,  # retrained best of a study
            "params": m["params"],
            "test_acc": test["accuracy"],
            "macro_f1": test["macro_f1"],
            "precision": test["macro_precision"],
            "recall": test["macro_recall"],
            "top3_acc": test["top3_accuracy"],
            "log_loss": test["log_loss"],
            "ece": test["ece"],
            "cat_f1": per_class.get("cat"),
            "dog_f1": per_class.get("dog"),
            "train_acc": m["train"]["accuracy"],
            "val_acc": m["val"]["accuracy"],
            "gap": m["overfitting_gap"],
            "train_min": m["train_time_s"] / 60,
            "epochs": m["epochs_run"],
            "ms_per_image": m["inference"]["latency_ms_batch1"],
            "precision_policy": run.manifest["precision"],
            "hardware": run.manifest["hardware"],
            "train_images": data.get("n_train"),
            "data": f"{data['source']} (sha256 {data['checksum'][:8]})",
            "write_ups": WRITEUP_FIGURES.get(run.model, ""),
            "made_by": made_by(run),
        }
        for name in names:
            acc, f1 = evaluation_columns(name)
            result = run.evaluations.get(name)
            row[acc] = result["accuracy"] if result else None
            row[f1] = result["macro_f1"] if result else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values("test_acc", ascending=False).reset_index(drop=True) if rows else frame


def groups_table(runs: list[artifacts.Run]) -> pd.DataFrame:
    """One row per recipe (``seeds.group_runs``: runs that differ only in their seed or
    precision), best mean test accuracy first: the row of its best run (the one whose model
    the pages use) with the group's means (test accuracy, macro, cat and dog F1), ``n``,
    ``seeds``, the SD and min-max, ``spread`` (SD over seeds; one run: binomial SE;
    ``spread_kind`` says), the precisions it ran in, and the training time of the best
    run's precision and CPU."""
    from cifar_core.analysis import robustness, seeds

    if not runs:
        return pd.DataFrame()
    frame = runs_table(runs).set_index("run")
    rows = []
    for group in seeds.group_runs(runs):
        acc, f1 = seeds.summary(group), seeds.summary(group, "macro_f1")
        best = group.best
        row = frame.loc[best.run_id].to_dict()
        members = frame.loc[[r.run_id for r in group.members]]
        row.update({column: members[column].mean() for column in ("cat_f1", "dog_f1")})
        same_speed = members["precision_policy"] == row["precision_policy"]
        alike = members[same_speed & (members["hardware"] == row["hardware"])]
        row.update(
            {
                "run": best.run_id,
                "label": group.label,
                "members": [r.run_id for r in group.members],
                "n": group.n,
                "seeds": ", ".join(str(s) for s in group.seeds),
                "test_acc": acc["mean"],
                "test_acc_sd": acc["sd"],
                "test_acc_min": acc["min"],
                "test_acc_max": acc["max"],
                "spread": acc["sd"] if group.n > 1 else acc["se"],
                "spread_kind": f"SD over {group.n} seeds" if group.n > 1 else "binomial SE (one run)",
                "macro_f1": f1["mean"],
                "train_min": float(alike["train_min"].mean()),
                "precisions": precisions_text(members["precision_policy"]),
                "corruption_acc": _corruption_accuracy(robustness.summary(best)),
            }
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values("test_acc", ascending=False).reset_index(drop=True) if rows else out


def precisions_text(policies: pd.Series) -> str:
    """ "bfloat16 ×3, float32 ×2": the precisions a recipe's runs trained in (the most runs first)."""
    names = policies.map(lambda p: str(p).removeprefix("mixed_"))
    counts = names.value_counts()
    return ", ".join(f"{name} ×{n}" if len(counts) > 1 or n > 1 else name for name, n in counts.items())


def made_by(run: artifacts.Run) -> str:
    """How the run was made, as the Leaderboard says it: a named recipe and what the run
    changed (a study's retrained best names its study), your builder file (and its hash), or
    a recorded ``fit`` (and what it ran in)."""
    source = run.manifest.get("source") or {}
    kind = artifacts.run_kind(run.manifest)
    if kind == "builder_file":
        return f"your file {source['file']}:{source['function']} (sha256 {source['sha256'][:12]})"
    if kind == "recorded":
        fit = (source.get("fits") or [{}])[0]
        where = Path(source["script"]).name if source.get("script") else "a notebook or console"
        batch = run.manifest["config"].get("batch_size")
        settings = ", ".join(v for v in (fit.get("optimizer"), f"batch {batch}" if batch else None) if v)
        return f"recorded fit in {where}" + (f" ({settings})" if settings else "")
    if kind == "ladder":
        return "ladder rung"
    recipe = f"recipe {run.recipe_label}" if run.recipe_label else "a zoo preset (recipe not recorded)"
    return f"{recipe}, from study {run.study}" if kind == "study" else recipe


def _corruption_accuracy(row: dict | None) -> float:
    """Mean accuracy under the regenerated CIFAR-10-C corruptions (NaN: not measured)."""
    return row["mean corruption accuracy"] if row else float("nan")


def results_frame(root=None) -> pd.DataFrame:
    """``groups_table`` of every readable zoo run under ``root`` (ladder rungs have their
    page): one row per seed group, a single run being a group of one."""
    runs, _ = artifacts.load_runs(artifacts.artifacts_root(root))
    return groups_table([run for run in runs if not artifacts.is_ladder_run(run)])  # the zoo


def accuracy_text(row) -> str:
    """A group's test accuracy for the README: "90.12% ± 0.21 (n = 3, 89.9-90.3%)", one run's alone."""
    if row["n"] <= 1:
        return f"{row['test_acc']:.2%}"
    low, high = row["test_acc_min"] * 100, row["test_acc_max"] * 100
    return f"{row['test_acc']:.2%} ± {row['test_acc_sd'] * 100:.2f} (n = {row['n']}, {low:.1f}-{high:.1f}%)"


def render(root=None, markdown: bool = False) -> str:
    frame = results_frame(root)
    if frame.empty:
        return "no runs yet: python -m cifar_core train --model fast --data-dir DIR"
    shown = frame[list(README_COLUMNS)].assign(
        model=frame["label"],
        params=frame["params"].map("{:,}".format),
        test_acc=frame.apply(accuracy_text, axis=1),
        macro_f1=frame["macro_f1"].map("{:.3f}".format),
        cat_f1=frame["cat_f1"].map(lambda v: f"{v:.3f}" if pd.notna(v) else ""),
        dog_f1=frame["dog_f1"].map(lambda v: f"{v:.3f}" if pd.notna(v) else ""),
        train_min=frame["train_min"].map("{:.1f}".format),
        train_images=frame["train_images"].map(lambda v: f"{int(v):,}" if pd.notna(v) else ""),
        corruption_acc=frame["corruption_acc"].map(lambda v: f"{v:.2%}" if pd.notna(v) else ""),
    )
    shown.columns = [label(c) for c in shown.columns]
    return markdown_table(shown) if markdown else shown.to_string(index=False)


def markdown_table(frame: pd.DataFrame) -> str:
    """A frame as a Markdown table, values as they are (format them first)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *lines])
