"""``robustness``: each run's accuracy under the CIFAR-10-C corruptions, regenerated."""

from __future__ import annotations

import argparse
import sys

from cifar_core.commands.options import add_common


def register(sub) -> None:
    p = sub.add_parser(
        "robustness",
        help="accuracy under the 15 CIFAR-10-C corruptions (regenerated) at 5 severities, per run",
        description="Corrupts N test images (the same for every model) 75 ways and scores each "
        "run's model on them; results are stored in the run (robustness/n<N>.json) and reused.",
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or --all)")
    p.add_argument("--all", action="store_true", help="every run with a model file")
    p.add_argument("--images", type=int, default=1000, help="test images per cell (default: %(default)s)")
    p.add_argument("--corruptions", help="only these, comma-separated (default: all 15)")
    p.add_argument("--again", action="store_true", help="measure even when a result for N is stored")
    add_common(p)
    p.set_defaults(handler=main)


def _bar(run_id: str):
    def say(name: str, k: int, n: int) -> None:
        done = int(20 * k / n)
        sys.stderr.write(f"\r{run_id}: [{'#' * done}{'.' * (20 - done)}] {k}/{n} {name:<18}")
        sys.stderr.flush()

    return say


def main(args: argparse.Namespace) -> int:
    from cifar_core import artifacts
    from cifar_core.analysis import robustness
    from cifar_core.data import corruptions, load_cifar10
    from cifar_core.errors import CifarError, ConfigError

    root = artifacts.artifacts_root(args.artifacts_dir)
    names = corruptions.NAMES
    if args.corruptions:
        names = tuple(n.strip() for n in args.corruptions.split(",") if n.strip())
        for name in names:
            corruptions.check(name, 1)  # an unknown one: one line, nothing measured
    robustness.sample(10, args.images)  # --images < 1: one line
    if not args.all and not args.runs:
        raise ConfigError("say which runs: RUN... or --all")
    runs = [artifacts.read_run(root, r) for r in (args.runs or artifacts.list_runs(root))]
    if args.all:
        runs = [r for r in runs if r.model_path.is_file()]
    else:
        for run in runs:
            if not run.model_path.is_file():
                raise ConfigError(f"{run.run_id} has no model file (a lean run): nothing to measure")
    data = load_cifar10(args.data_dir)
    print(f"{robustness.LABEL}: {len(names)} corruptions x 5 severities on {args.images} test images")
    for run in runs:
        found = None if args.again or args.corruptions else robustness.cached(root, run, args.images)
        if found is None:
            try:
                found = robustness.measure(
                    root, run.run_id, data, args.images, names, progress=_bar(run.run_id)
                )
            except CifarError as error:
                if not args.all:
                    raise
                print(f"\n{run.run_id}: skipped ({error})")  # --all goes on with the others
                continue
            sys.stderr.write("\n")
        name, worst = robustness.worst(found)
        print(
            f"{run.run_id}: clean {found['clean']:.2%}, mean corruption accuracy "
            f"{found['mean_corruption_accuracy']:.2%} (drop {found['drop'] * 100:.1f} pts); worst {name} "
            f"({worst:.2%} at severity 5); {found['seconds']:.0f} s ({found['runtime']})"
        )
    return 0
