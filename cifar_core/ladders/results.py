"""A ladder's runs read back as one study: per rung its figures, the gain over the rung
before with McNemar's test on the same test images, and the write-up's figures beside them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cifar_core.evaluate import mcnemar_test
from cifar_core.ladders.model import Ladder


def rung_members(ladder: Ladder, runs) -> dict[int, list]:
    """Rung index -> its runs, one per seed (``ladder run --seeds``; the newest when a rung
    was trained more than once with a seed), sorted by seed."""
    from cifar_core.analysis.seeds import seed_of

    found: dict[int, dict[int, object]] = {}
    for run in runs:
        mark = run.manifest.get("ladder") or {}
        if mark.get("ladder") != ladder.name or not 0 <= mark.get("index", -1) < len(ladder.rungs):
            continue
        by_seed = found.setdefault(mark["index"], {})
        seed = seed_of(run)
        if seed not in by_seed or run.manifest.get("finished_at", "") > by_seed[seed].manifest.get(
            "finished_at", ""
        ):
            by_seed[seed] = run
    return {index: [by_seed[s] for s in sorted(by_seed)] for index, by_seed in found.items()}


def rung_runs(ladder: Ladder, runs) -> dict[int, object]:
    """Rung index -> its run: the first seed's (the ladder's own seed, 0, when trained)."""
    return {index: members[0] for index, members in rung_members(ladder, runs).items()}


def correct_on_test(run) -> pd.Series:
    """Per test image id: whether the run got it right."""
    p = run.predictions
    return pd.Series(p["y_pred"] == p["y_true"], index=p["test_ids"])


def mcnemar(before: pd.Series, after: pd.Series) -> tuple[int, int, float]:
    """(images only ``after`` gets right, images only ``before`` gets right, exact two-sided
    McNemar p-value, evaluate.mcnemar_test) on the test images both runs scored."""
    both = before.index.intersection(after.index)
    if len(both) == 0:
        raise ValueError("the two runs share no test image: not the same test split")
    test = mcnemar_test(before.loc[both].to_numpy(), after.loc[both].to_numpy())
    return test["only_b_right"], test["only_a_right"], test["p_value"]


# A change to these fields acts through a callback, which may never act in a short run.
CALLBACK_FIELDS = frozenset(
    {"early_stopping_patience", "restore_best", "lr_schedule", "plateau_patience", "plateau_factor"}
)


def idle_reason(run, previous) -> str | None:
    """Why a rung predicted every test image exactly as the rung before it, when its change is
    a callback that never acted in this run (early stopping ran every epoch, the best epoch
    was the last, the plateau never came); None when the rungs differ or no such reason."""
    changes = (run.manifest.get("ladder") or {}).get("changes") or {}
    if not changes or not set(changes) <= CALLBACK_FIELDS:
        return None
    if not np.array_equal(run.predictions["y_pred"], previous.predictions["y_pred"]):
        return None
    config, m = run.manifest["config"], run.metrics
    reasons = []
    if changes.get("early_stopping_patience") and m["epochs_run"] >= config["epochs"]:
        reasons.append(f"early stopping never stopped it: all {config['epochs']} epochs ran")
    if changes.get("restore_best") and m.get("best_epoch") == m["epochs_run"]:
        reasons.append(
            "its best validation epoch was the last, so restoring the best weights changed nothing"
        )
    if changes.get("lr_schedule") == "plateau" and run.history["learning_rate"].nunique() == 1:
        reasons.append(
            f"validation loss never stalled for {config['plateau_patience']} epochs, "
            "so the learning rate was never cut"
        )
    return "; ".join(reasons) or None


def ladder_table(ladder: Ladder, runs) -> pd.DataFrame:
    """One row per rung: the change, this run's train / validation / test accuracy, the
    train-test gap, the test gain over the previous trained rung and McNemar's p for it
    (the first seeds' runs). With several seeds (``ladder run --seeds``) ``test`` and
    ``gain`` are means over the rung's seeds, ``n`` and ``test_sd`` say how many and how
    far apart, and ``gain_low`` / ``gain_high`` bound the gain (95%, a bootstrap over test
    images and seeds: ``seeds.bootstrap_difference``);
    why a callback rung scored exactly as the one before (``idle``, idle_reason),
    epochs and minutes, and the write-up's figures (``reported_*``)."""
    from cifar_core.analysis import seeds

    members = rung_members(ladder, runs)
    rows, previous, previous_group = [], None, None
    for index, rung in enumerate(ladder.rungs):
        group = members.get(index)
        run = group[0] if group else None
        reported = dict(zip(("reported_train", "reported_val", "reported_test"), rung.reported))
        row = {"rung": index + 1, "slug": rung.slug, "change": rung.change, "run_id": None, **reported}
        if run is not None:
            m = run.metrics
            tests = np.array([r.metrics["test"]["accuracy"] for r in group])
            row.update(
                run_id=run.run_id,
                n=len(group),
                train=m["train"]["accuracy"],
                val=m["val"]["accuracy"],
                test=float(tests.mean()),
                test_sd=float(tests.std(ddof=1)) if len(group) > 1 else None,
                macro_f1=m["test"]["macro_f1"],
                epochs=m["epochs_run"],
                minutes=m["train_time_s"] / 60,
                params=m["params"],
            )
            row["gap"] = row["train"] - m["test"]["accuracy"]
            if previous is not None:
                gained, lost, p = mcnemar(correct_on_test(previous), correct_on_test(run))
                row.update(
                    gain=row["test"]
                    - float(np.mean([r.metrics["test"]["accuracy"] for r in previous_group])),
                    gained=gained,
                    lost=lost,
                    p_value=p,
                    idle=idle_reason(run, previous),
                )
                if len(group) > 1 or len(previous_group) > 1:  # the step's gain over seeds and images
                    before, after = seeds.Group("", previous_group), seeds.Group("", group)
                    if before.correct().shape[1] == after.correct().shape[1]:
                        interval = seeds.bootstrap_difference(before.correct(), after.correct())
                        row.update(gain_low=interval["low"], gain_high=interval["high"])
            previous, previous_group = run, group
        rows.append(row)
    columns = ["rung", "slug", "change", "run_id", "n", "train", "val", "test", "test_sd", "gap", "gain"]
    columns += ["gain_low", "gain_high", "p_value"]
    columns += ["gained", "lost", "idle", "macro_f1", "epochs", "minutes", "params"]
    columns += ["reported_train", "reported_val", "reported_test"]
    return pd.DataFrame(rows).reindex(columns=columns)
