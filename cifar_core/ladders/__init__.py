"""Ladders: a write-up's step-by-step improvement study, one run per rung.

    python -m cifar_core ladder list
    python -m cifar_core ladder run seed000 --data-dir ../shared/data/cifar10-jpeg [--dry-run]
    python -m cifar_core ladder table seed004     # this machine's rungs beside the write-up's

Every rung trains as an ordinary run (resumable; a finished rung is kept) on the same split
as the zoo, its manifest naming the ladder, the rung and its change. The Ladder page reads
them back through ``ladder_table``.
"""

from __future__ import annotations

from cifar_core.errors import ConfigError
from cifar_core.ladders.declared import LADDERS
from cifar_core.ladders.model import Ladder, Rung, parse_rungs
from cifar_core.ladders.study import (
    confusion_change,
    correct_on_test,
    idle_reason,
    ladder_table,
    mcnemar,
    rung_runs,
)

__all__ = [
    "LADDERS",
    "Ladder",
    "Rung",
    "confusion_change",
    "correct_on_test",
    "get_ladder",
    "idle_reason",
    "ladder_table",
    "mcnemar",
    "rung_runs",
]


def get_ladder(name: str) -> Ladder:
    try:
        return LADDERS[name]
    except KeyError:
        raise ConfigError(f"unknown ladder {name!r}; ladders: {', '.join(LADDERS)}") from None


def _figures(values) -> str:
    return " / ".join("-" if v is None else f"{v:.1%}" for v in values)


def describe(ladder: Ladder, done: set[str] = frozenset()) -> list[str]:
    lines = [f"{ladder.name}: {ladder.title}", f"  source: {ladder.source}", f"  {ladder.epochs_note}"]
    for i, rung in enumerate(ladder.rungs):
        mark = "done" if ladder.run_id(i) in done else "    "
        lines.append(
            f"  {mark} {i + 1:2d}. {rung.change}  (write-up train/val/test: {_figures(rung.reported)})"
        )
    return lines


def markdown_table(ladder: Ladder, runs) -> str:
    """The trained rungs beside the write-up's figures, as a Markdown table (README, notes)."""
    table = ladder_table(ladder, runs)
    pct = lambda v: "-" if v is None or v != v else f"{v:.1%}"  # noqa: E731  (NaN: not trained)
    lines = [
        "| rung | change | train / val / test here | write-up train / val / test | test gain (McNemar p) "
        "| epochs | minutes |",
        "| ---: | --- | --- | --- | --- | ---: | ---: |",
    ]
    for row in table.itertuples():
        reported = _figures((row.reported_train, row.reported_val, row.reported_test))
        if not isinstance(row.run_id, str):
            lines.append(f"| {row.rung} | {row.change} | not trained | {reported} | | | |")
            continue
        here = " / ".join(pct(v) for v in (row.train, row.val, row.test))
        gain = "" if row.gain != row.gain else f"{row.gain * 100:+.1f} pts (p={row.p_value:.2g})"
        cost = f"{row.epochs:.0f} | {row.minutes:.1f}"
        lines.append(f"| {row.rung} | {row.change} | {here} | {reported} | {gain} | {cost} |")
    idle = [
        f"- Rung {r.rung} equals rung {r.rung - 1}: {r.idle}."
        for r in table.itertuples()
        if isinstance(r.idle, str)
    ]
    return "\n".join(lines + ([""] + idle if idle else []))


def add_arguments(parser, add_common) -> None:
    """``python -m cifar_core ladder list | run NAME | table NAME``."""
    sub = parser.add_subparsers(
        dest="ladder_command", required=True, metavar="ACTION", help="list, run or table"
    )
    p = sub.add_parser("list", help="the ladders, their rungs and the write-ups' figures")
    add_common(p, data=False)
    p = sub.add_parser("table", help="the trained rungs beside the write-up's figures (Markdown)")
    p.add_argument("name", help="ladder name (see ladder list)")
    add_common(p, data=False)
    p = sub.add_parser("run", help="train every rung of a ladder not yet trained")
    p.add_argument("name", help="ladder name (see ladder list)")
    p.add_argument("--rungs", default=None, help="only these rungs, e.g. 1-3,5 (default: all)")
    p.add_argument("--dry-run", action="store_true", help="say what would be trained, train nothing")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs per rung (a quick look; default: the ladder's)"
    )
    p.add_argument("--val-size", type=int, default=None, help="validation images (default: as every run)")
    p.add_argument("--train-limit", type=int, default=None, help="train on at most this many images")
    add_common(p)


def trim_thumbnails(root, run_id: str, most: int) -> int:
    """Keep the first ``most`` mistakes' thumbnails of a finished rung (what a rung trained
    now stores); returns how many were dropped."""
    from cifar_core import artifacts, evaluate

    run = artifacts.read_run(root, run_id)
    wrong = evaluate.mistakes_first(run.predictions["y_true"], run.predictions["y_pred"], run.class_names)
    return artifacts.keep_thumbnails(run.path / artifacts.THUMBNAILS, wrong[:most])


def main(args) -> int:
    from cifar_core import artifacts

    root = artifacts.artifacts_root(args.artifacts_dir)
    done = set(artifacts.list_runs(root)) if root.exists() else set()
    if args.ladder_command == "list":
        for ladder in LADDERS.values():
            print("\n".join(describe(ladder, done)), end="\n\n")
        return 0
    ladder = get_ladder(args.name)
    if args.ladder_command == "table":
        runs, _ = artifacts.load_runs(root) if root.exists() else ([], {})
        print(markdown_table(ladder, runs))
        return 0
    try:
        chosen = parse_rungs(args.rungs, len(ladder.rungs))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    overrides = {"epochs": args.epochs, "val_size": args.val_size, "train_limit": args.train_limit}
    configs = {i: ladder.config(i, **overrides) for i in chosen}  # a bad declaration fails here
    if args.dry_run:
        for i in chosen:
            state = "kept (finished)" if ladder.run_id(i) in done else "would train"
            print(f"[{i + 1}/{len(ladder.rungs)}] {ladder.run_id(i)}: {state}: {ladder.rungs[i].change}")
        return 0
    from cifar_core.data import load_cifar10
    from cifar_core.train import LADDER_THUMBNAILS, same_config, train_model

    data = load_cifar10(args.data_dir)
    for i in chosen:
        run_id = ladder.run_id(i)
        if artifacts.run_exists(root, run_id):
            same = same_config(artifacts.read_manifest(root, run_id)["config"], configs[i])
            note = "" if same else " (trained with another config: delete its folder to retrain it)"
            dropped = trim_thumbnails(root, run_id, LADDER_THUMBNAILS)
            note += f" ({dropped} thumbnails dropped: a rung keeps {LADDER_THUMBNAILS})" if dropped else ""
            print(f"[{i + 1}/{len(ladder.rungs)}] {run_id}: finished, kept{note}")
            continue
        print(f"[{i + 1}/{len(ladder.rungs)}] {run_id}: {ladder.rungs[i].change}", flush=True)
        train_model(configs[i], data, root, run_id=run_id, ladder=ladder.record(i))
    return 0
