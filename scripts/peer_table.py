"""Epoch by epoch: a peer's printed table beside a workbench run's history, on one split.

    python scripts/peer_table.py PEER_LOG RUN_FOLDER_OR_WORK_FOLDER [--label fast]

PEER_LOG is what ``airbench94_cpu.py`` or ``airbench94_muon_cpu.py`` printed (either's
columns) when run on the folder ``scripts/peer_split.py`` lays out (its "test" folder is
the workbench's validation split); the run's ``history.csv`` has the same split's
``val_accuracy`` per epoch. Prints a Markdown table: per epoch, each side's validation
accuracy (no TTA) and the seconds that epoch took (the peer prints its training time so
far; the run records each epoch's own), then each side's final figures. Both sides' seconds
leave out the validation pass after each epoch: the peers stop their timer for it, and a
run's history records it apart (``validation_s``; runs before that column include it).
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path


def peer_epochs(log: str) -> tuple[list[dict], dict]:
    """(rows of epoch, train_acc, val_acc, seconds for that epoch), final figures. The
    columns are found by the header's names: airbench94 prints a train_loss column and
    total_time_seconds, airbench94_muon neither of the first and time_seconds."""
    rows, final, previous, columns = [], {}, 0.0, None
    for line in log.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "epoch" in cells and "val_acc" in cells:
            columns = {name: i for i, name in enumerate(cells)}
            time_column = next(i for name, i in columns.items() if name.endswith("time_seconds"))
            continue
        if columns is None or len(cells) != len(columns):
            continue
        epoch = cells[columns["epoch"]]
        if not re.fullmatch(r"\d+|eval", epoch):
            continue
        total = float(cells[time_column])
        if epoch == "eval":
            tta = float(cells[columns["tta_val_acc"]])
            final = {"tta_val_acc": tta, "seconds": total, "tta_seconds": total - previous}
            continue
        rows.append(
            {
                "epoch": int(epoch) + 1,
                "train_acc": float(cells[columns["train_acc"]]),
                "val_acc": float(cells[columns["val_acc"]]),
                "seconds": total - previous,
            }
        )
        previous = total
    extra = re.search(r"extra test set: tta ([\d.]+), no tta ([\d.]+)", log)
    if extra:
        final["extra_tta"], final["extra_no_tta"] = float(extra.group(1)), float(extra.group(2))
    return rows, final


def run_epochs(folder: Path) -> list[dict]:
    with open(folder / "history.csv", newline="") as handle:
        return [
            {
                "epoch": int(row["epoch"]) + 1,
                "val_acc": float(row["val_accuracy"]),
                "seconds": float(row["epoch_time_s"]) - float(row.get("validation_s") or 0),
            }
            for row in csv.DictReader(handle)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer_log", type=Path)
    parser.add_argument("run", type=Path, help="a run folder, or an unfinished run's work folder")
    parser.add_argument("--label", default="fast")
    parser.add_argument("--peer-label", default="peer")
    args = parser.parse_args()
    peer, final = peer_epochs(args.peer_log.read_text())
    ours = {row["epoch"]: row for row in run_epochs(args.run)}
    print(f"| epoch | {args.peer_label} val | {args.label} val | {args.peer_label} s | {args.label} s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for epoch in sorted({row["epoch"] for row in peer} | set(ours)):
        p = next((row for row in peer if row["epoch"] == epoch), None)
        o = ours.get(epoch)
        cells = [
            f"{p['val_acc']:.2%}" if p else "",
            f"{o['val_acc']:.2%}" if o else "",
            f"{p['seconds']:.0f}" if p else "",
            f"{o['seconds']:.0f}" if o else "",
        ]
        print(f"| {epoch} | " + " | ".join(cells) + " |")
    total_ours = sum(row["seconds"] for row in ours.values())
    print(f"\n{args.label}: {len(ours)} epochs, {total_ours:.0f} s of training")
    if final:
        print(
            f"{args.peer_label}: {len(peer)} epochs, {final['seconds']:.0f} s of training + TTA "
            f"(TTA {final['tta_seconds']:.0f} s); val with TTA {final['tta_val_acc']:.2%}"
            + (
                f"; extra test set with TTA {final['extra_tta']:.2%}, without {final['extra_no_tta']:.2%}"
                if "extra_tta" in final
                else ""
            )
        )


if __name__ == "__main__":
    main()
