"""The text of ``show RUN``: a run's card as the Run page shows it, for a terminal."""

from __future__ import annotations

import pandas as pd

from cifar_core.artifacts import Run


def _pct(value) -> str:
    return "—" if value is None else f"{value:.2%}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


def facts_line(run: Run) -> str:
    from cifar_core.analysis import runcard

    h = runcard.header(run)
    epochs = f"{h['epochs']} epochs" + (f" (best {h['best epoch']})" if h["best epoch"] else "")
    checksum = (h["data checksum"] or "")[:12]
    return (
        f"test accuracy {_pct(h['test accuracy'])} · macro F1 {h['macro F1']:.3f} · validation "
        f"{_pct(h['validation accuracy'])} · {h['train minutes']:.1f} train min · {epochs} · "
        f"{h['precision']} · {h['hardware']} · {h['data']} ({checksum}…) · {h['date']}"
    )


def architecture_lines(run: Run, trust_code: bool) -> list[str]:
    from cifar_core.analysis import runcard
    from cifar_core.errors import CifarError

    try:
        table, total = runcard.architecture_of(run, run.code_files if trust_code else ())
    except CifarError as error:
        return [f"  not available: {error}"]
    shown = table.drop(columns=["children"])
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        lines = ["  " + line for line in shown.to_string(index=False).splitlines()]
    size = (
        f"; model file {_size(run.model_path.stat().st_size)}"
        if run.has_model
        else " (rebuilt: no model file)"
    )
    flops, macs = total["flops"] / 1e6, total["multiply_adds"] / 1e6
    lines.append(
        f"  total: {total['params']:,} parameters ({total['trainable']:,} trainable), "
        f"{flops:.1f} M FLOPs per image ({macs:.1f} M multiply-adds){size}"
    )
    return lines


def render(run: Run, architecture: bool = True, trust_code: bool = False) -> str:
    from cifar_core.analysis import runcard

    lines = [f"{run.label} [{run.run_id}] · {run.model} · {run.manifest.get('family')}", facts_line(run), ""]
    lines.append("Reproduce")
    lines += [f"  {key}: {value}" for key, value in runcard.reproduce(run).items() if value is not None]
    if architecture:
        lines += ["", "Architecture"] + architecture_lines(run, trust_code)
    if run.has_model:
        from cifar_core.serving import exports

        report = (run.manifest.get("exports") or {}).get("onnx")
        done = f"  {report['file']}: {exports.summary(report)}" if report else None
        lines += ["", "ONNX export", done or f"  none recorded: python -m cifar_core export {run.run_id}"]
    n = len(run.predictions["y_true"])
    lines += ["", f"Classification report (test split, {n:,} images)"]
    lines += ["  " + line for line in runcard.classification_report_text(run).rstrip().splitlines()]
    lines += ["", "Where it fails (most frequent confusions)"]
    for row in runcard.top_confusions(run).to_dict("records"):
        share = row["share of class"]
        lines.append(
            f"  {row['true']} -> {row['predicted']}: {row['images']} images ({share:.1%} of {row['true']})"
        )
    lines += ["", "Training"] + [f"  - {note}" for note in runcard.training_notes(run)]
    if run.evaluations:
        lines += ["", "Evaluations on other image sets"]
        for name, result in run.evaluations.items():
            lines.append(
                f"  {name}: accuracy {_pct(result.get('accuracy'))} on {result.get('n_images', '?')} images"
            )
    lines += _robustness_lines(run)
    files = runcard.run_files(run)
    lines += ["", f"Files ({_size(int(files['bytes'].sum()))})"]
    lines += [f"  {row.file:<32} {_size(row.bytes):>9}" for row in files.itertuples()]
    return "\n".join(lines)


def _robustness_lines(run) -> list[str]:
    from cifar_core.analysis import robustness

    row = robustness.summary(run)
    if row is None:
        return ["", f"Robustness: not measured (python -m cifar_core robustness {run.run_id})"]
    mce = row["relative mCE"]
    lines = [
        "",
        f"Robustness ({robustness.LABEL}, {row['images']:,} test images, one view)",
        f"  clean {_pct(row['clean'])}, mean corruption accuracy {_pct(row['mean corruption accuracy'])} "
        f"(drop {row['drop'] * 100:.1f} pts)"
        + ("" if mce != mce else f", relative mCE {mce:.2f} against {robustness.REFERENCE_MODEL}"),
        f"  worst: {row['worst']}, {_pct(row['worst at severity 5'])} at severity 5",
    ]
    return lines
