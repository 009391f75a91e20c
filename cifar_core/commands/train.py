"""``list-models``, ``train`` and ``run``: the zoo, and training it."""

from __future__ import annotations

import argparse

from cifar_core.commands import export
from cifar_core.commands.options import EPILOG, add_common, add_train_options, overrides, prepare_runtime


def register(sub) -> None:
    p = sub.add_parser("list-models", help="the model zoo with parameters and presets")
    p.add_argument("--family", choices=["scratch", "transfer"], help="only this family")
    p.set_defaults(handler=list_models)

    p = sub.add_parser("train", help="train one model and write a run folder", epilog=EPILOG)
    help = "a name from list-models, or your own builder: path/to/file.py:function"
    p.add_argument("--model", required=True, help=help)
    p.add_argument("--run-id", help="run folder name (default: <model>-<hash of config and data>)")
    add_common(p)
    add_train_options(p)
    add_no_export(p)
    p.set_defaults(handler=train)

    p = sub.add_parser(
        "run", help="train several models with their presets, skipping finished runs", epilog=EPILOG
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="the reference zoo: every model that needs nothing but the data "
        "(keras.applications backbones download weights: name them with --models)",
    )
    p.add_argument(
        "--models", help="comma-separated model names or FILE.py:FUNCTION builders (instead of --all)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say which runs are kept and which would train, train nothing"
    )
    add_common(p)
    add_train_options(p)
    add_no_export(p)
    p.set_defaults(handler=run)


def add_no_export(parser) -> None:
    parser.add_argument(
        "--no-export",
        action="store_true",
        help="do not export the new run to ONNX at the end (python -m cifar_core export RUN does it later)",
    )


def list_models(args: argparse.Namespace) -> int:
    import keras

    from cifar_core.models import create_model, get_spec, list_models

    print(f"{'model':<20} {'family':<9} {'params':>11} {'input':>5}  description")
    for name in list_models(args.family):
        spec = get_spec(name)
        # Random weights: the parameter count is the same, and nothing is downloaded.
        params = create_model(name, **({"weights": "none"} if spec.is_transfer else {})).count_params()
        keras.backend.clear_session()
        print(f"{name:<20} {spec.family:<9} {params:>11,} {spec.input_size:>5}  {spec.description}")
    return 0


def train(args: argparse.Namespace) -> int:
    from cifar_core.config import TrainConfig
    from cifar_core.data import load_cifar10
    from cifar_core.models import get_spec
    from cifar_core.models.registry import check_builder
    from cifar_core.train import train_model

    get_spec(args.model)  # fail on a wrong name before loading any data
    config = TrainConfig.from_preset(args.model, args.settings, **overrides(args))
    check_builder(config.model, config.model_args)  # a builder file's faults, before anything else
    prepare_runtime(args)
    data = load_cifar10(args.data_dir)
    path = train_model(config, data, args.artifacts_dir, run_id=args.run_id, strategy_name=args.strategy)
    if not args.no_export:
        export.after_training(args.artifacts_dir, path)
    return 0


def run(args: argparse.Namespace) -> int:
    from cifar_core import artifacts, progress
    from cifar_core.config import ConfigError, TrainConfig
    from cifar_core.data import load_cifar10
    from cifar_core.models import get_spec, list_models
    from cifar_core.models.registry import check_builder
    from cifar_core.train import default_run_id, find_finished_run, train_model

    if not args.all and not args.models:
        raise ConfigError("say which models: --all or --models a,b")
    names = (
        list_models(zoo_only=True) if args.all else [n.strip() for n in args.models.split(",") if n.strip()]
    )
    for name in names:
        get_spec(name)
        check_builder(name, TrainConfig.from_preset(name, args.settings, **overrides(args)).model_args)
    prepare_runtime(args)
    data = load_cifar10(args.data_dir)
    root = artifacts.artifacts_root(args.artifacts_dir)
    with progress.batch("zoo", "run --all" if args.all else "run --models", len(names)) as batch:
        for i, name in enumerate(names, 1):
            config = TrainConfig.from_preset(name, args.settings, **overrides(args))
            finished = find_finished_run(root, config, data)
            if finished:
                print(f"[{i}/{len(names)}] {name}: finished run {finished} kept")
                continue
            run_id = default_run_id(config, data)
            if args.dry_run:
                print(f"[{i}/{len(names)}] {name}: would train run {run_id}")
                continue
            print(f"[{i}/{len(names)}] {name}: training run {run_id}")
            batch.at(i, [{"label": n, "model": n} for n in names[i:]])
            path = train_model(config, data, root, run_id=run_id, strategy_name=args.strategy)
            if not args.no_export:
                export.after_training(args.artifacts_dir, path)
    return 0
