"""``ladder list | run NAME | table NAME``: the write-ups' step-by-step studies."""

from __future__ import annotations

import argparse

from cifar_core.commands.options import add_common, add_queue, parse_seeds


def register(sub) -> None:
    parser = sub.add_parser(
        "ladder", help="the write-ups' step-by-step studies: list them, train their rungs"
    )
    actions = parser.add_subparsers(
        dest="ladder_command", required=True, metavar="ACTION", help="list, run or table"
    )
    p = actions.add_parser("list", help="the ladders, their rungs and the write-ups' figures")
    add_common(p, data=False)
    p = actions.add_parser("table", help="the trained rungs beside the write-up's figures (Markdown)")
    p.add_argument("name", help="ladder name (see ladder list)")
    add_common(p, data=False)
    p = actions.add_parser("run", help="train every rung of a ladder not yet trained")
    p.add_argument("name", help="ladder name (see ladder list)")
    p.add_argument("--rungs", default=None, help="only these rungs, e.g. 1-3,5 (default: all)")
    p.add_argument("--dry-run", action="store_true", help="say what would be trained, train nothing")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs per rung (a quick look; default: the ladder's)"
    )
    p.add_argument("--val-size", type=int, default=None, help="validation images (default: as every run)")
    p.add_argument("--train-limit", type=int, default=None, help="train on at most this many images")
    p.add_argument(
        "--seeds",
        type=parse_seeds,
        default=[0],
        metavar="0,1,2",
        help="train every rung with each seed (default: 0): the table then gives each step's gain "
        "with its 95%% interval over test images and seeds",
    )
    add_queue(p, "queue one job per rung on this PostgreSQL server instead of training (see worker)")
    add_common(p)
    parser.set_defaults(handler=main)


def _figures(values) -> str:
    return " / ".join("-" if v is None else f"{v:.1%}" for v in values)


def describe(ladder, done: set[str] = frozenset()) -> list[str]:
    """``ladder list``'s lines for one ladder (``done``: the run ids already trained)."""
    lines = [f"{ladder.name}: {ladder.title}", f"  source: {ladder.source}", f"  {ladder.epochs_note}"]
    for i, rung in enumerate(ladder.rungs):
        mark = "done" if ladder.run_id(i) in done else "    "
        lines.append(
            f"  {mark} {i + 1:2d}. {rung.change}  (write-up train/val/test: {_figures(rung.reported)})"
        )
    return lines


def markdown_table(ladder, runs) -> str:
    """The trained rungs beside the write-up's figures, as a Markdown table (README, notes)."""
    from cifar_core.ladders import ladder_table

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


def main(args: argparse.Namespace) -> int:
    from cifar_core import artifacts
    from cifar_core.ladders import LADDERS, get_ladder

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
    return _run(args, root, ladder, done)


def _run(args: argparse.Namespace, root, ladder, done: set[str]) -> int:
    from cifar_core.errors import ConfigError
    from cifar_core.ladders import keep_finished_rung, parse_rungs, train_rung

    try:
        chosen = parse_rungs(args.rungs, len(ladder.rungs))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    overrides = {"epochs": args.epochs, "val_size": args.val_size, "train_limit": args.train_limit}
    configs = {i: ladder.config(i, **overrides) for i in chosen}  # a bad declaration fails here
    jobs = [(i, seed) for seed in args.seeds for i in chosen]  # a whole ladder per seed, in turn
    if args.dry_run:
        for i, seed in jobs:
            state = "kept (finished)" if ladder.run_id(i, seed) in done else "would train"
            print(
                f"[{i + 1}/{len(ladder.rungs)}] {ladder.run_id(i, seed)}: {state}: {ladder.rungs[i].change}"
            )
        return 0
    from cifar_core.data import load_cifar10
    from cifar_core.training import progress

    if args.queue:
        from cifar_core import database

        database.check(database.url_from(args.queue))  # one line, before the data is read
    data = load_cifar10(args.data_dir)
    if args.queue:
        return _enqueue(args, root, ladder, jobs, configs, overrides, data)
    with progress.batch("ladder", ladder.name, len(jobs)) as batch:
        for k, (i, seed) in enumerate(jobs, 1):
            config = _seeded(ladder, configs, overrides, i, seed)
            head = f"[{i + 1}/{len(ladder.rungs)}] {ladder.run_id(i, seed)}"
            note = keep_finished_rung(root, ladder, i, config, seed)
            if note is not None:
                print(f"{head}: finished, kept{note}")
                continue
            print(f"{head}: {ladder.rungs[i].change}", flush=True)
            batch.at(k, [{"label": ladder.run_id(j, s), "model": None} for j, s in jobs[k:]])
            train_rung(ladder, i, config, data, root, seed)
    return 0


def _seeded(ladder, configs: dict, overrides: dict, i: int, seed: int):
    """Rung ``i``'s config with ``seed`` (the declared one when the seed is its own)."""
    return configs[i] if seed == configs[i].seed else ladder.config(i, **overrides, seed=seed)


def _enqueue(args, root, ladder, jobs, configs, overrides, data) -> int:
    from cifar_core import database
    from cifar_core.cluster import queue
    from cifar_core.ladders import rung_job

    planned = [rung_job(ladder, i, _seeded(ladder, configs, overrides, i, seed), seed) for i, seed in jobs]
    url = database.url_from(args.queue)
    count = queue.enqueue(url, planned, data, root, args.data_dir, export=False)
    print(
        f"{count} rungs queued at {database.where(url)}: start `python -m cifar_core worker` on each machine"
    )
    return 0
