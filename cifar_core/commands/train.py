"""``list-models``, ``train`` and ``run``: the zoo, and training it."""

from __future__ import annotations

import argparse

from cifar_core.commands.options import (
    EPILOG,
    add_common,
    add_queue,
    add_train_options,
    overrides,
    parse_seeds,
    prepare_runtime,
)


def register(sub) -> None:
    p = sub.add_parser(
        "list-models", help="the model zoo: parameters, and each model's recipes with their committed figures"
    )
    p.add_argument("--family", choices=["scratch", "transfer"], help="only this family")
    add_common(p, data=False)
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
    add_queue(
        p,
        "queue one job per run on this PostgreSQL server (postgresql://USER:PASSWORD@HOST/DB) "
        "instead of training: `worker` processes on any machine train them",
    )
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


def add_no_export(parser) -> None:
    parser.add_argument(
        "--no-export",
        action="store_true",
        help="do not export the new run to ONNX at the end (python -m cifar_core export RUN does it later)",
    )


def list_models(args: argparse.Namespace) -> int:
    import keras

    from cifar_core import recipes
    from cifar_core.analysis.report import accuracy_text, results_frame
    from cifar_core.models import create_model, get_spec, list_models

    groups = results_frame(args.artifacts_dir)
    figures = {} if groups.empty else {row["label"]: row for _, row in groups.iterrows()}
    print(f"{'model':<20} {'family':<9} {'params':>11} {'input':>5}  description")
    for name in list_models(args.family):
        spec = get_spec(name)
        # Random weights: the parameter count is the same, and nothing is downloaded.
        params = create_model(name, **({"weights": "none"} if spec.is_transfer else {})).count_params()
        keras.backend.clear_session()
        print(f"{name:<20} {spec.family:<9} {params:>11,} {spec.input_size:>5}  {spec.description}")
        for recipe in recipes.names(name):
            row = figures.get(recipe)
            figure = f"{accuracy_text(row)} test, {row['precisions']}" if row is not None else "no run here"
            print(f"    {recipe:<24} {figure:<44} python -m cifar_core train --model {recipe}")
    return 0


def train(args: argparse.Namespace) -> int:
    from cifar_core.training import jobs

    planned = jobs.plan(
        [args.model], args.settings, overrides(args), args.seeds, args.run_id, keep_finished=False
    )
    return _train(args, planned)


def run(args: argparse.Namespace) -> int:
    from cifar_core.config import ConfigError
    from cifar_core.models import list_models
    from cifar_core.training import jobs

    if not args.all and not args.models:
        raise ConfigError("say which models: --all or --models a,b")
    names = (
        list_models(zoo_only=True) if args.all else [n.strip() for n in args.models.split(",") if n.strip()]
    )
    planned = jobs.plan(names, args.settings, overrides(args), args.seeds)
    return _train(
        args, planned, dry_run=args.dry_run, batch_label="run --all" if args.all else "run --models"
    )


def _train(args: argparse.Namespace, planned: list, **options) -> int:
    """Train the planned jobs (a wrong model, recipe or setting has failed in ``plan``): a
    builder file's faults first, then the data, then each run."""
    from cifar_core import artifacts
    from cifar_core.data import load_cifar10
    from cifar_core.models.registry import check_builder
    from cifar_core.training import jobs

    for model, args_of_model in {j.config.model: j.config.model_args for j in planned}.items():
        check_builder(model, args_of_model)
    queued = getattr(args, "queue", None) and not options.get("dry_run")
    if queued:
        from cifar_core import database

        url = database.url_from(args.queue)
        database.check(url)  # a wrong URL, password or database: one line, before anything else
    prepare_runtime(args)
    data = load_cifar10(args.data_dir)
    root = artifacts.artifacts_root(args.artifacts_dir)
    if queued:
        from cifar_core.cluster import queue

        count = queue.enqueue(url, planned, data, root, args.data_dir, export=not args.no_export)
        print(
            f"{count} jobs queued at {database.where(url)}: "
            "start `python -m cifar_core worker` on each machine"
        )
        return 0
    jobs.train_jobs(planned, data, root, strategy_name=args.strategy, export=not args.no_export, **options)
    return 0
