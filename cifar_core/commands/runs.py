"""Commands on finished runs: ``evaluate``, ``predict``, ``embed``, ``report``, ``migrate``,
and ``probe`` (linear probes of frozen features)."""

from __future__ import annotations

import argparse

from cifar_core.commands.options import add_common

TRUST_HELP = (
    "import the run's stored code (its source/ folder: your custom layers) to load its model; "
    "importing a file runs it, so only for code you trust"
)


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a saved run on a labelled image folder")
    p.add_argument("--run", required=True, help="run id (see the artifacts/runs folder)")
    p.add_argument("--data-dir", required=True, help="folder of <class>/ or test/<class>/ images")
    p.add_argument("--name", help="evaluation name (default: the folder name)")
    p.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    add_common(p, data=False)
    p.set_defaults(handler=evaluate)

    p = sub.add_parser("predict", help="top-3 classes for image files")
    p.add_argument("--run", required=True, help="run id")
    p.add_argument("images", nargs="+", help="image files (jpg, png, webp, bmp, gif, tiff)")
    p.add_argument("--all-classes", action="store_true", help="all ten probabilities, most likely first")
    p.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    add_common(p, data=False)
    p.set_defaults(handler=predict)

    p = sub.add_parser("show", help="a run's card: facts, how to reproduce it, architecture, report")
    p.add_argument("run", help="run id")
    help = "skip the layer table and FLOPs (they load the model and trace it: seconds)"
    p.add_argument("--no-architecture", action="store_true", help=help)
    p.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    add_common(p, data=False)
    p.set_defaults(handler=show)

    p = sub.add_parser("embed", help="a finished run's map of the test set and data facts")
    p.add_argument("runs", nargs="*", help="run ids (default with --all: every run without a map)")
    p.add_argument("--all", action="store_true", help="every run that has no map yet")
    help = "only the data facts (no features, no t-SNE)"
    p.add_argument("--facts-only", action="store_true", help=help)
    p.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    add_common(p)
    p.set_defaults(handler=embed)

    p = sub.add_parser("probe", help="linear probes of frozen Lite0 features per size (validation only)")
    p.add_argument("--sizes", default="128,160", help="comma-separated input sizes in px")
    p.add_argument("--train", type=int, default=8000, help="train images for the probe")
    p.add_argument("--val", type=int, default=3000, help="validation images (carved from train)")
    add_common(p)
    p.set_defaults(handler=probe)

    p = sub.add_parser("migrate", help="convert runs of older versions to run format v2, once")
    add_common(p, data=False)
    p.set_defaults(handler=migrate)

    p = sub.add_parser("report", help="results table of the runs")
    p.add_argument("--markdown", action="store_true", help="Markdown table (for the README)")
    p.add_argument("--readme", help="rewrite the generated blocks of this file (README.md)")
    add_common(p, data=False)
    p.set_defaults(handler=report)


def evaluate(args: argparse.Namespace) -> int:
    from cifar_core.serving.inference import evaluate_folder

    run_id, result, path = evaluate_folder(
        args.artifacts_dir, args.run, args.data_dir, args.name, trust_code=args.trust_code
    )
    print(
        f"{run_id} on {args.data_dir} ({result['n_images']} images): accuracy {result['accuracy']:.2%}, "
        f"macro F1 {result['macro_f1']:.3f}  -> {path}"
    )
    return 0


def predict(args: argparse.Namespace) -> int:
    from cifar_core import artifacts
    from cifar_core.data.images import MAX_FILE_BYTES, decode_image
    from cifar_core.errors import ImageError
    from cifar_core.serving.inference import Predictor, classify, load_model

    run = artifacts.read_run(artifacts.artifacts_root(args.artifacts_dir), args.run)
    model = Predictor(load_model(run.model_path, run.code_files if args.trust_code else ())).warm()
    failures = 0
    for file in args.images:
        try:
            pixels = decode_image(file, max_bytes=MAX_FILE_BYTES)
        except ImageError as error:
            print(f"{file}: error: {error}")
            failures += 1
            continue
        top_k = len(run.class_names) if args.all_classes else 3
        result = classify(model, [pixels], run.class_names, top_k=top_k)[0]
        if args.all_classes:
            print(f"{file}:")
            for name, p in result["top"]:
                print(f"  {name:<12} {p:7.2%}  {'#' * round(p * 40)}")
        else:
            print(f"{file}: " + ", ".join(f"{name} {p:.1%}" for name, p in result["top"]))
    return 2 if failures else 0


def show(args: argparse.Namespace) -> int:
    """``show RUN``: the Run page's card in the terminal."""
    from cifar_core import artifacts
    from cifar_core.analysis.cardtext import render

    run = artifacts.read_run(artifacts.artifacts_root(args.artifacts_dir), args.run)
    print(render(run, architecture=not args.no_architecture, trust_code=args.trust_code))
    return 0


def embed(args: argparse.Namespace) -> int:
    """``embed RUN... | --all [--facts-only] [--data-dir DIR]``: maps of finished runs."""
    from cifar_core import artifacts
    from cifar_core.analysis.runmap import map_existing_run
    from cifar_core.errors import ConfigError

    root = artifacts.artifacts_root(args.artifacts_dir)
    if not args.runs and not args.all:
        raise ConfigError("name the runs to map, or pass --all")
    ids = args.runs or (artifacts.list_runs(root) if args.facts_only else artifacts.runs_without_map(root))
    for run_id in ids:
        took = map_existing_run(
            root, run_id, args.data_dir, facts_only=args.facts_only, trust_code=args.trust_code
        )
        made = f"map of the test set from {took['dims']}-D features" if took["dims"] else "data facts"
        print(f"{run_id}: {made} in {took['facts_s'] + took['embedding_s']:.0f} s")
    return 0


def probe(args: argparse.Namespace) -> int:
    from cifar_core.data import load_cifar10
    from cifar_core.training.probe import probe

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


def migrate(args: argparse.Namespace) -> int:
    from cifar_core.artifacts import artifacts_root
    from cifar_core.artifacts.migrate import migrate_all

    root = artifacts_root(args.artifacts_dir)
    results = [(run, outcome + _add_architecture(root, run, outcome)) for run, outcome in migrate_all(root)]
    for run_id, outcome in results:
        print(f"{run_id}: {outcome}")
    if not results:
        print(f"no runs in {root}")
    return 2 if any(outcome.startswith("skipped") for _, outcome in results) else 0


def _add_architecture(root, run_id: str, outcome: str) -> str:
    """A run written before runs kept their layer table gets it (its model loaded once)."""
    from cifar_core import artifacts
    from cifar_core.analysis import runcard
    from cifar_core.errors import CifarError

    if outcome.startswith("skipped") or (artifacts.run_dir(root, run_id) / artifacts.ARCHITECTURE).exists():
        return ""
    try:
        runcard.record_architecture(root, run_id)
    except CifarError as error:
        return f"; no layer table: {error}"
    return "; layer table recorded"


def report(args: argparse.Namespace) -> int:
    from cifar_core.analysis import readme, report

    if args.readme:
        changed = readme.update_readme(args.readme, args.artifacts_dir)
        print(f"{args.readme}: generated blocks {'updated' if changed else 'already up to date'}")
        return 0
    print(report.render(args.artifacts_dir, markdown=args.markdown))
    return 0
