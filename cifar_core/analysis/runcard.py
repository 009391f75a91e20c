"""One run's card: what the Run page and ``show`` print, computed from its folder.

header(run)                      # test / val accuracy, macro F1, time, epochs, hardware, data
reproduce(run)                   # command, commit, versions, seed, the user's source
classification_report(run)       # scikit-learn's report on the stored test predictions
training_notes(run)              # phases, best epoch, LR cuts, early stopping, and why not
top_confusions(run), run_files(run), model_for(run)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from cifar_core.artifacts import Run
from cifar_core.errors import ModelLoadError

REPORT_ROWS = ("accuracy", "macro avg", "weighted avg")


def classification_report(run: Run) -> pd.DataFrame:
    """The table the write-ups print: precision, recall, f1-score and support per class,
    then accuracy, macro avg and weighted avg (scikit-learn's ``classification_report`` on
    the run's stored test predictions)."""
    from sklearn.metrics import classification_report as sk_report

    report = sk_report(
        run.predictions["y_true"],
        run.predictions["y_pred"],
        labels=list(range(len(run.class_names))),
        target_names=run.class_names,
        output_dict=True,
        zero_division=0,
    )
    frame = pd.DataFrame(report).T[["precision", "recall", "f1-score", "support"]]
    n = len(run.predictions["y_true"])
    frame.loc["accuracy"] = [np.nan, np.nan, report["accuracy"], n]  # as the text report shows it
    frame["support"] = frame["support"].astype(int)
    return frame.loc[[*run.class_names, *REPORT_ROWS]]


def classification_report_text(run: Run) -> str:
    """The same report as scikit-learn prints it (the write-ups' layout)."""
    from sklearn.metrics import classification_report as sk_report

    return sk_report(
        run.predictions["y_true"],
        run.predictions["y_pred"],
        labels=list(range(len(run.class_names))),
        target_names=run.class_names,
        digits=4,
        zero_division=0,
    )


def header(run: Run) -> dict:
    """The facts at the top of a run's card."""
    m, metrics = run.manifest, run.metrics
    data = m.get("data") or {}
    return {
        "test accuracy": metrics["test"]["accuracy"],
        "macro F1": metrics["test"].get("macro_f1"),
        "validation accuracy": (metrics.get("val") or {}).get("accuracy"),
        "train minutes": (metrics.get("train_time_s") or 0.0) / 60,
        "epochs": metrics.get("epochs_run"),
        "best epoch": metrics.get("best_epoch"),
        "precision": m.get("precision"),
        "hardware": m.get("hardware"),
        "data": data.get("source"),
        "data checksum": data.get("checksum"),
        "date": (m.get("finished_at") or m.get("started_at") or "")[:16].replace("T", " "),
    }


def train_again(run: Run, data_dir: str | None = None) -> str:
    """The command that trains ``run`` again, from the repository root: its recipe, what it
    changed, its seed and precision (a run without a recipe, your file's or your own fit's:
    the command it recorded, without a machine's --artifacts-dir). ``data_dir``: where the
    data is (default: the folder the run recorded, else DIR)."""
    import shlex

    from cifar_core.recipes import Recipe, train_command

    recorded = run.manifest.get("recipe")
    if recorded:
        data = data_dir or (run.manifest.get("data") or {}).get("root") or "DIR"
        return train_command(
            Recipe(recorded["name"], recorded.get("changes") or {}), run.manifest["config"], data
        )
    kept, skip = [], False
    for word in shlex.split(run.manifest.get("command") or ""):
        if skip:
            skip = False
        elif word == "--artifacts-dir":
            skip = True
        elif not word.startswith("--artifacts-dir="):
            kept.append(word)
    return shlex.join(kept)


def reproduce(run: Run) -> dict:
    """How to make this run again: the command, the code's commit, the library versions,
    the seed and, for your own model, its source file and hash."""
    m = run.manifest
    env = m.get("environment") or {}
    source = m.get("source") or {}
    out = {
        "command": train_again(run) or None,
        "git commit": env.get("git_commit")
        and env["git_commit"] + (" (uncommitted changes)" if env.get("git_dirty") else ""),
        "versions": ", ".join(
            f"{k} {env[k]}" for k in ("python", "tensorflow", "keras", "numpy") if env.get(k)
        ),
        "seed": m.get("seed"),
    }
    if source.get("kind") == "builder_file":
        out["source"] = (
            f"{source.get('file')}:{source.get('function')} (sha256 {source.get('sha256', '')[:12]})"
        )
    elif source.get("kind") == "recorded":
        out["source"] = f"recorded from {source.get('script') or 'an interactive session'}"
        if source.get("script_sha256"):
            out["source"] += f" (sha256 {source['script_sha256'][:12]})"
    return out


def lr_cuts(history: pd.DataFrame) -> list[int]:
    """Epochs (1-based) after which the learning rate fell by a fifth or more."""
    if "learning_rate" not in history or len(history) < 2:
        return []
    lr = history["learning_rate"].to_numpy(dtype=float)
    return [int(history["epoch"].iloc[i]) for i in range(1, len(lr)) if lr[i] < 0.8 * lr[i - 1]]


def training_notes(run: Run) -> list[str]:
    """What the callbacks did, phase by phase, and why one did not act when it did not."""
    config, history, metrics = run.manifest.get("config") or {}, run.history, run.metrics
    if config.get("lr_schedule") == "recorded":
        return ["Recorded from your own fit: the callbacks it used are not known here."]
    notes = []
    phases = run.manifest.get("phases") or []
    planned = _planned_epochs(config)
    for record in phases:
        this = history[history["phase"] == record["phase"]] if "phase" in history else history
        notes += _phase_notes(record, this, config, len(phases), planned.get(record["phase"]))
    best = metrics.get("best_epoch")
    if best and config.get("restore_best", True):
        notes.append(f"The stored weights are those of epoch {best}, the best validation accuracy.")
    elif best:
        notes.append(
            f"The stored weights are the last epoch's (restore_best off; the best was epoch {best})."
        )
    else:
        notes.append("No validation split: the stored weights are the last epoch's.")
    return notes


def _planned_epochs(config: dict) -> dict[int, int]:
    """Epochs the phase plan gave each phase (what early stopping may have cut short)."""
    from cifar_core.config import TrainConfig
    from cifar_core.errors import CifarError
    from cifar_core.phases import plan

    try:
        return {phase.number: phase.epochs for phase in plan(TrainConfig.from_dict(config))}
    except (CifarError, TypeError):
        return {}


def _phase_notes(
    record: dict, history: pd.DataFrame, config: dict, phases: int, planned: int | None
) -> list[str]:
    name = f"Phase {record['phase']}: " if phases > 1 else ""
    start, end = int(record.get("start_epoch", 0)), int(record.get("end_epoch", len(history)))
    planned = planned or end - start
    notes = [f"{name}epochs {start + 1}-{end}, {record.get('trainable_params', 0):,} trainable parameters."]
    schedule = config.get("lr_schedule")
    if schedule == "plateau":
        cuts = lr_cuts(history)
        patience = config.get("plateau_patience")
        notes.append(
            f"{name}ReduceLROnPlateau cut the learning rate after epoch(s) {', '.join(map(str, cuts))}."
            if cuts
            else f"{name}ReduceLROnPlateau never fired: validation loss improved or stayed within "
            f"patience ({patience} epochs) to the end."
        )
    else:
        notes.append(
            f"{name}The learning rate follows the {schedule} schedule (peak {record.get('learning_rate')})."
        )
    patience = int(config.get("early_stopping_patience") or 0)
    ran = end - start
    if patience <= 0:
        notes.append(f"{name}No early stopping (patience 0): all {ran} epochs ran.")
    elif ran < planned:
        notes.append(
            f"{name}Early stopping ended training after epoch {end} of {start + planned}: validation "
            f"accuracy had not improved for {patience} epochs."
        )
    else:
        notes.append(
            f"{name}Early stopping never fired: validation accuracy improved within every "
            f"{patience}-epoch window, so all {ran} planned epochs ran."
        )
    return notes


def top_confusions(run: Run, k: int = 5) -> pd.DataFrame:
    """The ``k`` most frequent (true, predicted) mistakes: counts and share of the class."""
    counts = np.asarray(run.confusion, dtype=np.int64)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:k]
    rows = []
    for flat in order:
        t, p = divmod(int(flat), off.shape[1])
        if off[t, p] == 0:
            break
        rows.append(
            {
                "true": run.class_names[t],
                "predicted": run.class_names[p],
                "images": int(off[t, p]),
                "share of class": off[t, p] / max(counts[t].sum(), 1),
            }
        )
    return pd.DataFrame(rows, columns=["true", "predicted", "images", "share of class"])


def run_files(run: Run) -> pd.DataFrame:
    """Every file of the run folder with its size, largest first."""
    rows = [
        {"file": p.relative_to(run.path).as_posix(), "bytes": p.stat().st_size}
        for p in sorted(run.path.rglob("*"))
        if p.is_file()
    ]
    return pd.DataFrame(rows, columns=["file", "bytes"]).sort_values(
        "bytes", ascending=False, ignore_index=True
    )


def model_for(run: Run, code: tuple[Path, ...] = ()):
    """The run's model: its stored file, or, for a lean run (a ladder's rung stores none),
    the same architecture built again from its config (fresh weights: for the architecture
    and cost, not for predictions). Raises ModelLoadError when neither can be had."""
    if run.has_model:
        from cifar_core.serving.inference import load_model

        return load_model(run.model_path, code)
    from cifar_core.config import TrainConfig
    from cifar_core.errors import CifarError
    from cifar_core.models import create_model, is_builder_ref

    try:
        config = TrainConfig.from_dict(run.manifest["config"])
        if is_builder_ref(config.model):
            raise ModelLoadError(
                f"run {run.run_id} stores no model and is built by your own file: not rebuilt"
            )
        kwargs = config.model_kwargs(load_weights=False)
        return create_model(config.model, **kwargs)
    except CifarError as error:
        raise ModelLoadError(f"run {run.run_id} stores no model and cannot be rebuilt: {error}") from None


def architecture_of(run: Run, code: tuple[Path, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """(layer table, totals) of the run's model: as stored with the run (``architecture.json``,
    written when it trained or by ``migrate``), else computed from its model (TensorFlow)."""
    from cifar_core import artifacts
    from cifar_core.analysis import architecture

    record = artifacts.read_architecture(run)
    table = (
        architecture.layer_table(model_for(run, code)) if record is None else architecture.from_record(record)
    )
    return table, architecture.totals(table)


def record_architecture(root: Path, run_id: str, model=None) -> Path:
    """Store the layer table of ``model`` (default: the run's own, loaded or rebuilt) in the
    run folder, so pages read it instead of loading TensorFlow."""
    from cifar_core import artifacts
    from cifar_core.analysis import architecture

    if model is None:
        model = model_for(artifacts.read_run(root, run_id))
    return artifacts.write_architecture(root, run_id, architecture.to_record(architecture.layer_table(model)))


def age(run: Run) -> str:
    """'3 days ago' for the card's date."""
    stamp = run.manifest.get("finished_at") or run.manifest.get("started_at")
    if not stamp:
        return ""
    days = (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(stamp)).days
    return "today" if days <= 0 else f"{days} day{'s' * (days != 1)} ago"


def pair_images(run: Run, true_class: int, predicted: int, most_confident: bool = True) -> np.ndarray:
    """Test indices of images of ``true_class`` predicted as ``predicted``, ordered by the
    predicted class's probability (surest first, or least sure first)."""
    probs, y = run.predictions["probs"], run.predictions["y_true"]
    hits = np.flatnonzero((y == true_class) & (run.predictions["y_pred"] == predicted))
    order = -probs[hits, predicted] if most_confident else probs[hits, predicted]
    return hits[np.argsort(order, kind="stable")]
