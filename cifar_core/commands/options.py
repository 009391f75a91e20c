"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
import os

EPILOG = (
    "Data: --data-dir (or $CIFAR_DATA_DIR) takes cifar-10-python.tar.gz, its extracted "
    "cifar-10-batches-py/ folder, or an image folder with train/<class>/ and test/<class>/. "
    "Without it, keras.datasets.cifar10 downloads CIFAR-10 once. Artifacts go to "
    "--artifacts-dir, else $CIFAR_ARTIFACTS, else ./artifacts."
)
VERBOSE_HELP = "show TensorFlow's start-up and log messages (hidden by default)"


def add_common(parser: argparse.ArgumentParser, data: bool = True) -> None:
    """``--data-dir`` (unless ``data`` is False) and ``--artifacts-dir``."""
    if data:
        parser.add_argument(
            "--data-dir",
            default=os.environ.get("CIFAR_DATA_DIR"),
            help="CIFAR-10 source (see below); default: keras.datasets download",
        )
    parser.add_argument(
        "--artifacts-dir", default=None, help="artifacts root (default: $CIFAR_ARTIFACTS or ./artifacts)"
    )


def add_queue(parser, help: str) -> None:
    """``--queue URL``: the job queue's PostgreSQL server (default: none, or $CIFAR_DB where
    ``help`` says so)."""
    parser.add_argument("--queue", metavar="URL", help=help)


def add_set(parser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.settings``: see config.apply_setting."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings", help=help)


def add_train_options(parser: argparse.ArgumentParser) -> None:
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


def overrides(args: argparse.Namespace) -> dict:
    """The TrainConfig overrides the training options carry (None: the preset's value)."""
    from cifar_core.config import NO_AUGMENT, cli_fields

    values = {f.name: getattr(args, f.name) for f, _ in cli_fields()}
    if args.no_cache_features:
        values["cache_features"] = False
    if args.no_augment:
        values["augment"] = dict(NO_AUGMENT)
    return values


def prepare_runtime(args: argparse.Namespace) -> None:
    if getattr(args, "logical_cpus", 0) and args.logical_cpus > 1:
        from cifar_core.runtime import split_cpu

        split_cpu(args.logical_cpus)


def parse_seeds(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: seeds are integers separated by commas, e.g. 0,1,2"
        ) from None
    if not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct seeds, e.g. 0,1,2")
    return values
