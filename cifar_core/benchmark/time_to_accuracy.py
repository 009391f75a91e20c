"""How long ``fast`` runs took to reach a validation accuracy, from their histories."""

from __future__ import annotations

TARGETS = (0.88, 0.90)


def time_to_accuracy(root=None, thresholds=TARGETS) -> list[dict]:
    """For each readable `fast` run: cumulative training seconds until val accuracy >= t."""
    from cifar_core import artifacts

    runs, _ = artifacts.load_runs(artifacts.artifacts_root(root))
    out = []
    for run in runs:
        if run.model != "fast":
            continue
        elapsed = run.history["epoch_time_s"].cumsum()
        row = {"run": run.run_id}
        for t in thresholds:
            hit = run.history.index[run.history["val_accuracy"] >= t]
            row[f"s_to_{round(t * 100)}"] = float(elapsed[hit[0]]) if len(hit) else None
        out.append(row)
    return out
