"""``list-models``, ``train`` and ``run``: the zoo, and training it."""

from __future__ import annotations

import argparse

from cifar_core.commands.export import after_training
from cifar_core.commands.options import (
    EPILOG,
    add_common,
    add_train_options,
    overrides,
    parse_seeds,
    prepare_runtime,
)


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
    add_seeds(p)
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
    add_seeds(p)
    add_no_export(p)
    p.set_defaults(handler=run)


def add_seeds(parser) -> None:
    parser.add_argument(
        "--seeds",
        type=parse_seeds,
        metavar="0,1,2",
        help="one run per seed (a seed group: runs that differ only in their seed); the first "
        "seed's run is stored in full, the others lean (no model file, no map, mistakes-only "
        "thumbnails); finished seeds are kept",
    )


def seed_plan(args) -> list[tuple[int | None, bool]]:
    """(seed, lean) per run to train: ``--seeds`` gives a group (its first seed in full),
    otherwise one run with ``--seed`` or the preset's."""
    if not getattr(args, "seeds", None):
        return [(None, False)]
    if args.seed is not None:
        from cifar_core.errors import ConfigError

        raise ConfigError("--seed and --seeds: give one of them")
    return [(seed, i > 0) for i, seed in enumerate(args.seeds)]


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
    from cifar_core import artifacts, seeds
    from cifar_core.config import TrainConfig
    from cifar_core.data import load_cifar10
    from cifar_core.models import get_spec, is_builder_ref
    from cifar_core.models.registry import check_builder
    from cifar_core.train import default_run_id, train_model

    get_spec(args.model)  # fail on a wrong name before loading any data
    plan = seed_plan(args)
    config = TrainConfig.from_preset(args.model, args.settings, **overrides(args))
    check_builder(config.model, config.model_args)  # a builder file's faults, before anything else
    if len(plan) > 1 and args.run_id:
        raise artifacts.ArtifactError("--run-id names one run: leave it out with --seeds")
    prepare_runtime(args)
    data = load_cifar10(args.data_dir)
    root = artifacts.artifacts_root(args.artifacts_dir)
    for seed, lean in plan:
        this = (
            config
            if seed is None
            else TrainConfig.from_preset(args.model, args.settings, **{**overrides(args), "seed": seed})
        )
        run_id = args.run_id or default_run_id(this, data)
        if seed is not None and artifacts.run_exists(root, run_id):
            print(f"seed {seed}: finished run {run_id} kept")
            continue
        marks = {"group": seeds.group_mark(this, data, args.seeds)} if seed is not None else None
        path = train_model(
            this, data, root, run_id=run_id, strategy_name=args.strategy, marks=marks, lean=lean
        )
        if not args.no_export and not lean:  # your builder file has just run: its layers load
            after_training(args.artifacts_dir, path, trust_code=is_builder_ref(this.model))
    return 0


def run(args: argparse.Namespace) -> int:
    from cifar_core import artifacts, progress, seeds
    from cifar_core.config import ConfigError, TrainConfig
    from cifar_core.data import load_cifar10
    from cifar_core.models import get_spec, is_builder_ref, list_models
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
    plan = seed_plan(args)
    jobs = [(name, seed, lean) for name in names for seed, lean in plan]
    label = "run --all" if args.all else "run --models"
    with progress.batch("zoo", label, len(jobs)) as batch:
        for i, (name, seed, lean) in enumerate(jobs, 1):
            extra = {} if seed is None else {"seed": seed}
            config = TrainConfig.from_preset(name, args.settings, **{**overrides(args), **extra})
            what = name if seed is None else f"{name} seed {seed}"
            finished = find_finished_run(root, config, data)
            if finished:
                print(f"[{i}/{len(jobs)}] {what}: finished run {finished} kept")
                continue
            run_id = default_run_id(config, data)
            if args.dry_run:
                print(f"[{i}/{len(jobs)}] {what}: would train run {run_id}" + (" (lean)" if lean else ""))
                continue
            print(f"[{i}/{len(jobs)}] {what}: training run {run_id}")
            batch.at(i, [{"label": n, "model": n} for n, _, _ in jobs[i:]])
            marks = {"group": seeds.group_mark(config, data, args.seeds)} if seed is not None else None
            path = train_model(
                config, data, root, run_id=run_id, strategy_name=args.strategy, marks=marks, lean=lean
            )
            if not args.no_export and not lean:
                after_training(args.artifacts_dir, path, trust_code=is_builder_ref(config.model))
    return 0
