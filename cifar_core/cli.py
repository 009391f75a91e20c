"""Command line: ``python -m cifar_core <command>`` (list-models, train, run, evaluate,
predict, compact, probe, benchmark, report).

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
from pathlib import Path

EPILOG = (
    "Data: --data-dir (or $CIFAR_DATA_DIR) takes cifar-10-python.tar.gz, its extracted "
    "cifar-10-batches-py/ folder, or an image folder with train/<class>/ and test/<class>/. "
    "Without it, keras.datasets.cifar10 downloads CIFAR-10 once. Artifacts go to "
    "--artifacts-dir, else $CIFAR_ARTIFACTS, else ./artifacts."
)


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


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("training overrides (default: the model's preset)")
    g.add_argument("--epochs", type=int, help="maximum epochs")
    g.add_argument("--batch-size", type=int, help="images per step")
    g.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], help="optimizer")
    g.add_argument("--learning-rate", "--lr", type=float, dest="learning_rate", help="(peak) learning rate")
    g.add_argument(
        "--lr-schedule",
        choices=["constant", "plateau", "cosine", "one_cycle"],
        help="plateau: ReduceLROnPlateau on val_loss; cosine/one_cycle: per step",
    )
    g.add_argument("--weight-decay", type=float, help="decoupled weight decay")
    g.add_argument("--label-smoothing", type=float, help="label smoothing in [0, 1)")
    g.add_argument(
        "--precision",
        choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"],
        help="auto: mixed_float16 on GPU, mixed_bfloat16 on CPUs with native bf16, else float32",
    )
    g.add_argument("--seed", type=int, help="random seed (split, init, shuffling)")
    g.add_argument("--val-size", type=int, help="validation images carved from train (5000)")
    g.add_argument("--train-limit", type=int, help="train on at most this many images (quick runs)")
    g.add_argument(
        "--patience",
        type=int,
        dest="early_stopping_patience",
        help="early-stopping patience in epochs; 0 = off",
    )
    g.add_argument("--tta", choices=["none", "flip", "flip_translate"], help="test-time augmentation")
    g.add_argument("--no-augment", action="store_true", help="train without augmentation")
    t = parser.add_argument_group("transfer models (frozen backbone, then fine-tuned)")
    t.add_argument(
        "--weights", help='"imagenet" (default), a local weights file, or "none" (random, recorded)'
    )
    t.add_argument("--input-size", type=int, help="backbone input size in px (images are resized inside)")
    t.add_argument("--fine-tune-epochs", type=int, help="phase 2 epochs; 0 = frozen backbone only")
    t.add_argument("--fine-tune-layers", type=int, help="top backbone layers unfrozen in phase 2")
    t.add_argument("--fine-tune-lr-factor", type=float, help="phase 2 learning rate = --lr x this")
    t.add_argument(
        "--no-cache-features",
        action="store_true",
        help="run the frozen backbone on every step instead of caching its output",
    )
    g.add_argument(
        "--strategy",
        choices=["default", "mirrored", "multiworker"],
        default="default",
        help="mirrored: all local GPUs (or --logical-cpus); multiworker: from TF_CONFIG",
    )
    g.add_argument(
        "--logical-cpus",
        type=int,
        default=0,
        help="split the CPU into N logical devices (to try --strategy mirrored)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cifar_core", description=__doc__.split("\n")[0], epilog=EPILOG
    )
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

    p = sub.add_parser("benchmark", help="training/inference speed and memory per model")
    p.add_argument(
        "--models", help="comma-separated names (default: the reference zoo that run --all trains)"
    )
    p.add_argument("--steps", type=int, default=8, help="timed training steps per precision")
    p.add_argument("--precisions", default="float32,mixed_bfloat16", help="comma-separated")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--input-size", type=int, help="transfer models: measure at this input size (px)")
    p.add_argument("--single", help=argparse.SUPPRESS)  # internal: one model in this process
    _add_common(p)

    p = sub.add_parser(
        "probe", help="linear probes of frozen Lite0 features per input size (validation only)"
    )
    p.add_argument("--sizes", default="128,160", help="comma-separated input sizes in px")
    p.add_argument("--train", type=int, default=8000, help="train images for the probe")
    p.add_argument("--val", type=int, default=3000, help="validation images (carved from train)")
    _add_common(p)

    p = sub.add_parser(
        "compact", help="store finished runs' models with float16 weights (checked on validation)"
    )
    p.add_argument("runs", nargs="+", help="run ids")
    _add_common(p)

    p = sub.add_parser("report", help="results table of the runs")
    p.add_argument("--markdown", action="store_true", help="Markdown table (for the README)")
    p.add_argument("--readme", help="rewrite the generated results block of this file (README.md)")
    _add_common(p, data=False)
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    keys = [
        "epochs",
        "batch_size",
        "optimizer",
        "learning_rate",
        "lr_schedule",
        "weight_decay",
        "label_smoothing",
        "precision",
        "seed",
        "val_size",
        "train_limit",
        "early_stopping_patience",
        "tta",
        "weights",
        "input_size",
        "fine_tune_epochs",
        "fine_tune_layers",
        "fine_tune_lr_factor",
    ]
    values = {k: getattr(args, k) for k in keys}
    if args.no_cache_features:
        values["cache_features"] = False
    if args.no_augment:
        values["augment"] = {"flip": False, "translate": 0, "rotation": 0.0, "zoom": 0.0}
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
    config = TrainConfig.from_preset(args.model, **_overrides(args))
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
        config = TrainConfig.from_preset(name, **_overrides(args))
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
    from cifar_core import artifacts, evaluate
    from cifar_core.data import load_labelled_folder
    from cifar_core.inference import load_model, predict_probs

    root = artifacts.artifacts_root(args.artifacts_dir)
    run = artifacts.read_run(root, args.run)
    x, y, ids = load_labelled_folder(args.data_dir, run.class_names)
    model = load_model(run.model_path)
    probs = predict_probs(model, x, run.manifest["config"].get("tta", "none"))
    result = evaluate.classification_metrics(y, probs, run.class_names)
    result.update(
        {
            "data_dir": str(Path(args.data_dir).resolve()),
            "n_images": int(len(y)),
            "per_class": evaluate.per_class_report(y, probs.argmax(1), run.class_names),
        }
    )
    name = args.name or Path(args.data_dir).resolve().name
    path = artifacts.write_evaluation(root, run.run_id, name, result)
    print(
        f"{run.run_id} on {args.data_dir} ({len(y)} images): accuracy {result['accuracy']:.2%}, "
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


def cmd_compact(args: argparse.Namespace) -> int:
    from cifar_core import artifacts
    from cifar_core.data import load_cifar10
    from cifar_core.train import compact_run

    root = artifacts.artifacts_root(args.artifacts_dir)
    for run_id in args.runs:
        artifacts.read_run(root, run_id)  # fail on a bad id before loading data
    data = load_cifar10(args.data_dir)
    for run_id in args.runs:
        info = compact_run(root, run_id, data)
        print(
            f"{run_id}: model.keras {info['bytes_float32'] / 1e6:.1f} MB -> {info['bytes'] / 1e6:.1f} MB "
            f"({info['weights_dtype']}); validation accuracy {info['val_accuracy_float32']:.2%} -> "
            f"{info['val_accuracy']:.2%}, predictions agree on {info['val_agreement']:.2%}"
        )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cifar_core import artifacts
    from cifar_core.inference import ImageError, classify, load_model, open_image, to_model_input

    run = artifacts.read_run(artifacts.artifacts_root(args.artifacts_dir), args.run)
    model = load_model(run.model_path)
    failures = 0
    for file in args.images:
        try:
            pixels = to_model_input(open_image(file))
        except ImageError as error:
            print(f"{file}: error: {error}")
            failures += 1
            continue
        result = classify(model, [pixels], run.class_names, top_k=3)[0]
        tops = ", ".join(f"{name} {p:.1%}" for name, p in result["top"])
        print(f"{file}: {tops}")
    return 2 if failures else 0


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
    "compact": cmd_compact,
    "probe": cmd_probe,
    "benchmark": cmd_benchmark,
    "report": cmd_report,
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ chatter out
    args = build_parser().parse_args(argv)
    from cifar_core.artifacts import ArtifactError
    from cifar_core.config import ConfigError
    from cifar_core.data import DataError
    from cifar_core.inference import ImageError, ModelLoadError
    from cifar_core.models import UnknownModelError
    from cifar_core.models.efficientnet_lite import WeightsError

    try:
        return COMMANDS[args.command](args)
    except (
        ArtifactError,
        ConfigError,
        DataError,
        ImageError,
        ModelLoadError,
        UnknownModelError,
        WeightsError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: start the same command again to resume", file=sys.stderr)
        return 130
