"""Command line: ``python -m cifar_core <command>`` (list-models, train, run, ladder, tune,
evaluate, predict, embed, probe, benchmark, report, migrate).

    python -m cifar_core list-models
    python -m cifar_core train --model fast --data-dir ../shared/data/cifar10-jpeg
    python -m cifar_core run --all --data-dir ../shared/data/cifar10-jpeg
    python -m cifar_core evaluate --run fast-1a2b3c4d --data-dir my_photos/
    python -m cifar_core predict --run fast-1a2b3c4d cat.jpg dog.png

Every error that comes from bad input (a model name, a data folder, an artifact, an
image) prints one line, ``error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

EPILOG = (
    "Data: --data-dir (or $CIFAR_DATA_DIR) takes cifar-10-python.tar.gz, its extracted "
    "cifar-10-batches-py/ folder, or an image folder with train/<class>/ and test/<class>/. "
    "Without it, keras.datasets.cifar10 downloads CIFAR-10 once. Artifacts go to "
    "--artifacts-dir, else $CIFAR_ARTIFACTS, else ./artifacts."
)


VERBOSE_HELP = "show TensorFlow's start-up and log messages (hidden by default)"


def _add_common(parser: argparse.ArgumentParser, data: bool = True) -> None:
    if data:
        parser.add_argument(
            "--data-dir",
            default=os.environ.get("CIFAR_DATA_DIR"),
            help="CIFAR-10 source (see below); default: keras.datasets download",
        )
    parser.add_argument(
        "--artifacts-dir", default=None, help="artifacts root (default: $CIFAR_ARTIFACTS or ./artifacts)"
    )


def add_set(parser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.settings``: see config.apply_setting."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings", help=help)


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """The training overrides, generated from TrainConfig's fields (their defaults, choices
    and help are defined there once); None means "the model's preset"."""
    from cifar_core.config import cli_fields

    groups = {
        "train": parser.add_argument_group("training overrides (default: the model's preset)"),
        "transfer": parser.add_argument_group("transfer models (frozen backbone, then fine-tuned)"),
    }
    for f, kind in cli_fields():
        meta = f.metadata
        flags = meta["flags"] or (f"--{f.name.replace('_', '-')}",)
        groups[meta["group"]].add_argument(
            *flags, dest=f.name, type=kind, choices=meta["choices"], default=None, help=meta["help"]
        )
    g = groups["train"]
    g.add_argument("--no-augment", action="store_true", help="train without augmentation")
    add_set(
        g, "any other config field, repeatable: model_args.widths=[64,256,256], augment.flip_alternate=true"
    )
    help = "run the frozen backbone on every step instead of caching its output"
    groups["transfer"].add_argument("--no-cache-features", action="store_true", help=help)
    strategies = ["default", "mirrored", "multiworker"]
    help = "mirrored: all local GPUs (or --logical-cpus); multiworker: from TF_CONFIG"
    g.add_argument("--strategy", choices=strategies, default="default", help=help)
    help = "split the CPU into N logical devices (to try --strategy mirrored)"
    g.add_argument("--logical-cpus", type=int, default=0, help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cifar_core", description=__doc__.split("\n")[0], epilog=EPILOG
    )
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list-models", help="the model zoo with parameters and presets")
    p.add_argument("--family", choices=["scratch", "transfer"], help="only this family")

    p = sub.add_parser("train", help="train one model and write a run folder", epilog=EPILOG)
    p.add_argument("--model", required=True, help="a name from list-models")
    p.add_argument("--run-id", help="run folder name (default: <model>-<hash of config and data>)")
    _add_common(p)
    _add_train_options(p)

    p = sub.add_parser(
        "run", help="train several models with their presets, skipping finished runs", epilog=EPILOG
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="the reference zoo: every model that needs nothing but the data "
        "(keras.applications backbones download weights: name them with --models)",
    )
    p.add_argument("--models", help="comma-separated model names (instead of --all)")
    p.add_argument(
        "--dry-run", action="store_true", help="say which runs are kept and which would train, train nothing"
    )
    _add_common(p)
    _add_train_options(p)

    p = sub.add_parser("evaluate", help="score a saved run on a labelled image folder")
    p.add_argument("--run", required=True, help="run id (see the artifacts/runs folder)")
    p.add_argument("--data-dir", required=True, help="folder of <class>/ or test/<class>/ images")
    p.add_argument("--name", help="evaluation name (default: the folder name)")
    _add_common(p, data=False)

    p = sub.add_parser("predict", help="top-3 classes for image files")
    p.add_argument("--run", required=True, help="run id")
    p.add_argument("images", nargs="+", help="image files (jpg, png, webp, bmp, gif, tiff)")
    _add_common(p, data=False)

    p = sub.add_parser("ladder", help="the write-ups' step-by-step studies: list them, train their rungs")
    from cifar_core.ladders import add_arguments as add_ladder_arguments

    add_ladder_arguments(p, _add_common)

    p = sub.add_parser("tune", help="hyper-parameter search with Optuna: a study per model")
    from cifar_core.tuning import add_arguments as add_tune_arguments

    add_tune_arguments(p, add_set, _add_common)

    p = sub.add_parser("embed", help="a finished run's map of the test set and data facts")
    from cifar_core.analyse import add_arguments as add_embed_arguments

    add_embed_arguments(p)
    _add_common(p)

    p = sub.add_parser("benchmark", help="training/inference speed and memory per model")
    from cifar_core.benchmark import add_arguments

    add_arguments(p, add_set)
    _add_common(p)

    p = sub.add_parser("probe", help="linear probes of frozen Lite0 features per size (validation only)")
    p.add_argument("--sizes", default="128,160", help="comma-separated input sizes in px")
    p.add_argument("--train", type=int, default=8000, help="train images for the probe")
    p.add_argument("--val", type=int, default=3000, help="validation images (carved from train)")
    _add_common(p)

    p = sub.add_parser("migrate", help="convert runs of older versions to run format v2, once")
    _add_common(p, data=False)

    p = sub.add_parser("report", help="results table of the runs")
    p.add_argument("--markdown", action="store_true", help="Markdown table (for the README)")
    p.add_argument("--readme", help="rewrite the generated results block of this file (README.md)")
    _add_common(p, data=False)
    for command in sub.choices.values():  # also accepted after the command
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    from cifar_core.config import NO_AUGMENT, cli_fields

    values = {f.name: getattr(args, f.name) for f, _ in cli_fields()}
    if args.no_cache_features:
        values["cache_features"] = False
    if args.no_augment:
        values["augment"] = dict(NO_AUGMENT)
    return values


def cmd_list_models(args: argparse.Namespace) -> int:
    import keras

    from cifar_core.models import create_model, get_spec, list_models

    print(f"{'model':<20} {'family':<9} {'params':>11} {'input':>5}  description")
    for name in list_models(args.family):
        spec = get_spec(name)
        # Random weights: the parameter count is the same, and nothing is downloaded.
        params = create_model(
            name, **({"weights": "none"} if spec.family == "transfer" else {})
        ).count_params()
        keras.backend.clear_session()
        print(f"{name:<20} {spec.family:<9} {params:>11,} {spec.input_size:>5}  {spec.description}")
    return 0


def _prepare_runtime(args: argparse.Namespace) -> None:
    if getattr(args, "logical_cpus", 0) and args.logical_cpus > 1:
        from cifar_core.runtime import split_cpu

        split_cpu(args.logical_cpus)


def cmd_train(args: argparse.Namespace) -> int:
    from cifar_core.config import TrainConfig
    from cifar_core.data import load_cifar10
    from cifar_core.models import get_spec
    from cifar_core.train import train_model

    get_spec(args.model)  # fail on a wrong name before loading any data
    config = TrainConfig.from_preset(args.model, args.settings, **_overrides(args))
    _prepare_runtime(args)
    data = load_cifar10(args.data_dir)
    train_model(config, data, args.artifacts_dir, run_id=args.run_id, strategy_name=args.strategy)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from cifar_core import artifacts
    from cifar_core.config import ConfigError, TrainConfig
    from cifar_core.data import load_cifar10
    from cifar_core.models import get_spec, list_models
    from cifar_core.train import default_run_id, find_finished_run, train_model

    if not args.all and not args.models:
        raise ConfigError("say which models: --all or --models a,b")
    names = (
        list_models(zoo_only=True) if args.all else [n.strip() for n in args.models.split(",") if n.strip()]
    )
    for name in names:
        get_spec(name)
    _prepare_runtime(args)
    data = load_cifar10(args.data_dir)
    root = artifacts.artifacts_root(args.artifacts_dir)
    for i, name in enumerate(names, 1):
        config = TrainConfig.from_preset(name, args.settings, **_overrides(args))
        finished = find_finished_run(root, config, data)
        if finished:
            print(f"[{i}/{len(names)}] {name}: finished run {finished} kept")
            continue
        run_id = default_run_id(config, data)
        if args.dry_run:
            print(f"[{i}/{len(names)}] {name}: would train run {run_id}")
            continue
        print(f"[{i}/{len(names)}] {name}: training run {run_id}")
        train_model(config, data, root, run_id=run_id, strategy_name=args.strategy)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cifar_core.inference import evaluate_folder

    run_id, result, path = evaluate_folder(args.artifacts_dir, args.run, args.data_dir, args.name)
    print(
        f"{run_id} on {args.data_dir} ({result['n_images']} images): accuracy {result['accuracy']:.2%}, "
        f"macro F1 {result['macro_f1']:.3f}  -> {path}"
    )
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from cifar_core.data import load_cifar10
    from cifar_core.probe import probe

    sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
    rows = probe(load_cifar10(args.data_dir), sizes, args.train, args.val)
    print("| size | images/s | features | dims | val accuracy |")
    print("| ---: | ---: | --- | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['size']} | {r['images_per_s']:.0f} | {r['features']} | {r['dims']} | "
            f"{r['val_accuracy']:.2%} |"
        )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from cifar_core.artifacts import artifacts_root
    from cifar_core.artifacts.migrate import migrate_all

    root = artifacts_root(args.artifacts_dir)
    results = migrate_all(root)
    for run_id, outcome in results:
        print(f"{run_id}: {outcome}")
    if not results:
        print(f"no runs in {root}")
    return 2 if any(outcome.startswith("skipped") for _, outcome in results) else 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cifar_core import artifacts
    from cifar_core.errors import ImageError
    from cifar_core.images import MAX_FILE_BYTES, decode_image
    from cifar_core.inference import Predictor, classify, load_model

    run = artifacts.read_run(artifacts.artifacts_root(args.artifacts_dir), args.run)
    model = Predictor(load_model(run.model_path)).warm()
    failures = 0
    for file in args.images:
        try:
            pixels = decode_image(file, max_bytes=MAX_FILE_BYTES)
        except ImageError as error:
            print(f"{file}: error: {error}")
            failures += 1
            continue
        result = classify(model, [pixels], run.class_names, top_k=3)[0]
        tops = ", ".join(f"{name} {p:.1%}" for name, p in result["top"])
        print(f"{file}: {tops}")
    return 2 if failures else 0


def cmd_embed(args: argparse.Namespace) -> int:
    from cifar_core.analyse import main as embed

    return embed(args)


def cmd_ladder(args: argparse.Namespace) -> int:
    from cifar_core.ladders import main as ladder

    return ladder(args)


def cmd_tune(args: argparse.Namespace) -> int:
    from cifar_core.tuning import main as tune

    return tune(args)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from cifar_core import benchmark

    return benchmark.main(args)


def cmd_report(args: argparse.Namespace) -> int:
    from cifar_core import report

    if args.readme:
        changed = report.update_readme(args.readme, args.artifacts_dir)
        print(f"{args.readme}: results block {'updated' if changed else 'already up to date'}")
        return 0
    print(report.render(args.artifacts_dir, markdown=args.markdown))
    return 0


COMMANDS = {
    "list-models": cmd_list_models,
    "train": cmd_train,
    "run": cmd_run,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "embed": cmd_embed,
    "ladder": cmd_ladder,
    "tune": cmd_tune,
    "migrate": cmd_migrate,
    "probe": cmd_probe,
    "benchmark": cmd_benchmark,
    "report": cmd_report,
}


# Commands that never touch TensorFlow (it takes seconds to import): no quiet import.
NO_TENSORFLOW = {"report", "migrate"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cifar_core.errors import CifarError

    quiet = args.command in NO_TENSORFLOW or getattr(args, "ladder_command", None) == "list"
    if not args.verbose and not quiet:
        from cifar_core.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
    try:
        return COMMANDS[args.command](args)
    except CifarError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: start the same command again to resume", file=sys.stderr)
        return 130
